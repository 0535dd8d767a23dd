package policy

import (
	"slices"
	"strings"
)

// This file holds the decisions about a room as a whole and about joiners
// that never knocked: the configuration submitted to the server, guests the
// tenant refuses, the clients that created a room gavel adopted, and bans.
// They are pure: the caller gathers what the server said and performs the
// Actions.

// ServerConfig returns the configuration to submit when gavel creates the
// room. open is set where clients that never knock join (trusted
// identities, secure domains, discovery): a members-only room would refuse
// them, so it stays open and the caller removes denied guests itself
// (DeniesGuest).
func (r *Room) ServerConfig(open bool) RoomConfig {
	cfg := r.cfg
	if open {
		cfg.MembersOnly = false
	}
	return cfg
}

// Configure returns the action that configures a room gavel just created
// (ServerConfig).
func (r *Room) Configure(open bool) Action {
	return Action{Kind: ActionConfigure, Config: r.ServerConfig(open), Reason: "created"}
}

// Joiner is what the caller knows of an occupant that may not have knocked.
type Joiner struct {
	// Knocked: a granted knock from its full JID.
	Knocked bool
	// Identified: the server vouches for it (a trusted identity, a secure
	// domain).
	Identified bool
	// JoinAffiliation is the affiliation its join presence showed (zero
	// counts as none).
	JoinAffiliation Affiliation
}

// DeniesGuest reports whether j is a guest the tenant refuses: it did not
// knock, the server does not vouch for it, and it held no affiliation of its
// own when it joined. Such a guest cannot enter a members-only room; one in
// an open room is to be removed (KickGuest).
func (r *Room) DeniesGuest(j Joiner) bool {
	return r.opts.Guests == GuestsDeny && !j.Knocked && !j.Identified && j.JoinAffiliation < Member
}

// KickGuest returns the actions that remove the denied guest nick (of
// bare): what it holds from creating the room (creator) or from the policy
// is taken back first, or it would outlive the kick.
func (r *Room) KickGuest(nick, bare string, creator bool) []Action {
	var acts []Action
	if creator || r.Known(bare) >= Member {
		acts = append(acts, Action{Kind: ActionSetAffiliation, BareJID: bare, Affiliation: None, Reason: RefusalTokenRequired})
	}
	return append(acts, Action{Kind: ActionKick, Nick: nick, Reason: RefusalTokenRequired, Text: "this room needs a token"})
}

// WithoutGrantsTo removes from acts the grants (member or above) for bare:
// a joiner about to be removed gets nothing meanwhile.
func WithoutGrantsTo(acts []Action, bare string) []Action {
	return slices.DeleteFunc(slices.Clone(acts), func(a Action) bool {
		return a.Kind == ActionSetAffiliation && a.BareJID == bare && a.Affiliation >= Member
	})
}

// AdoptCreators looks at the occupants of a room a client created while
// gavel watched, as gavel enters it: the owners there, bots apart, are
// owners only because they created it. It returns the occupants as the
// policy is to see them (creators as participants without affiliation) and
// the creators' bare JIDs; their ownership is settled once their identity is
// known (SettleCreator).
func (r *Room) AdoptCreators(present []Presence) (shown []Presence, creators []string) {
	shown = slices.Clone(present)
	for i := range shown {
		p := &shown[i]
		if p.Affiliation != Owner || r.isBot(p.BareJID) {
			continue
		}
		creators = append(creators, p.BareJID)
		p.Affiliation, p.Role = None, Participant
	}
	return shown, creators
}

// HoldCreatorGrants removes from acts the owner grants for creators (they
// are owners already) and returns the creators the policy wants owner.
func HoldCreatorGrants(acts []Action, creators []string) (out []Action, wanted []string) {
	for _, a := range acts {
		if a.Kind == ActionSetAffiliation && a.Affiliation == Owner && slices.Contains(creators, a.BareJID) {
			wanted = append(wanted, a.BareJID)
			continue
		}
		out = append(out, a)
	}
	return out, wanted
}

// SettleCreator decides, once, the ownership the client bare got by
// creating a room gavel adopted: it stays when the policy grants owner
// anyway (wanted when the room was adopted, or an owner grant in acts, which
// is then dropped: there is nothing to send), and is taken away otherwise
// (the policy already treats the creator as holding none).
func SettleCreator(bare string, wanted bool, acts []Action) (out []Action, withdrawn bool) {
	for _, a := range acts {
		if a.Kind == ActionSetAffiliation && a.BareJID == bare && a.Affiliation == Owner {
			wanted = true
			continue
		}
		out = append(out, a)
	}
	if wanted {
		return out, false
	}
	return append([]Action{{Kind: ActionSetAffiliation, BareJID: bare, Affiliation: None, Reason: "creator"}}, out...), true
}

// ReasonBan and ReasonUnban are the reasons of ban and unban actions.
const (
	ReasonBan   = "ban"
	ReasonUnban = "unban"
)

// Ban returns the actions that make outcasts of the present occupants match
// selects and of the bare JIDs in also (knockers whose join the caller has
// not seen yet), each bare JID once. Their waiting knocks are dropped; the
// server's echo confirms the ban (AffiliationChanged).
func (r *Room) Ban(match func(Occupant) bool, also ...string) []Action {
	var bares []string
	add := func(bare string) {
		if bare != "" && !slices.ContainsFunc(bares, func(b string) bool { return strings.EqualFold(b, bare) }) {
			bares = append(bares, bare)
		}
	}
	for o := range r.Occupants() {
		if match != nil && match(o) {
			add(o.BareJID)
		}
	}
	for _, b := range also {
		add(b)
	}
	acts := make([]Action, 0, len(bares))
	for _, bare := range bares {
		r.dropPendingBare(bare)
		acts = append(acts, Action{Kind: ActionSetAffiliation, BareJID: bare, Affiliation: Outcast, Reason: ReasonBan})
	}
	return acts
}

// Unban returns the actions that lift the room's outcast affiliation of the
// bare JIDs match selects, back to none, among those gavel knows as outcasts
// (it saw the ban, or set it).
func (r *Room) Unban(match func(bare string) bool) []Action {
	var bares []string
	for bare, st := range r.affs {
		if st.aff == Outcast && match(bare) {
			bares = append(bares, bare)
		}
	}
	slices.Sort(bares)
	acts := make([]Action, 0, len(bares))
	for _, bare := range bares {
		// The server tells occupants, not gavel, of changes for JIDs that
		// are not in the room: forget the ban now, so a knock passes.
		delete(r.affs, bare)
		acts = append(acts, Action{Kind: ActionSetAffiliation, BareJID: bare, Affiliation: None, Reason: ReasonUnban})
	}
	return acts
}
