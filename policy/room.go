package policy

import (
	"iter"
	"slices"
	"strings"
	"time"
)

// echoWindow is how long after gavel sets an affiliation a presence or change
// showing another affiliation for the same JID is taken to predate the set
// and is ignored. The server's round trip is milliseconds; a set that failed
// stops shadowing later presences after this window.
const echoWindow = int64(10 * time.Second)

// flags describe an occupant or a pending knock.
type flags uint8

const (
	fKnocked   flags = 1 << iota // a knock or identity was attached
	fToken                       // the identity had a token
	fModerator                   // the token claimed moderator
	fViewer                      // the token claimed viewer
	fGuest                       // no token
	fBot                         // bot domain
	fDemoted                     // someone else took ownership away (auto-owner skips it)
)

// occupant is one tracked occupant. Times are Unix nanoseconds.
type occupant struct {
	nick, full, bare, userID string
	joined, tokenExp         int64
	aff                      Affiliation // mirrors affs[bare]
	role                     Role
	flags                    flags
}

// affState is what gavel knows of one bare JID's affiliation.
type affState struct {
	expires int64 // expiry of the token behind gavel's grant; 0 none
	sentAt  int64 // when gavel last set aff; 0 once seen confirmed
	aff     Affiliation
	granted bool // gavel set aff (ClearOnLeave resets it)
	expired bool // the token behind the grant expired while its holder was present
}

// Room is the policy state of one room. It is not safe for concurrent use:
// the caller serializes every event of a room. Each method returns the
// actions to perform, in order; the returned slice belongs to the Room and is
// valid until the next method call.
type Room struct {
	jid     string
	opts    Options
	kind    Kind // effective: AllOwners rooms in ModeratedRooms use Token
	cfg     RoomConfig
	occ     []occupant // in join order
	pending []pending  // oldest first
	affs    map[string]affState
	next    int64 // earliest deadline to look at; 0 none (may be early, never late)
	acts    []Action
	due     []string
	// unapplied are affiliation changes that never reached the server
	// (Unapplied), by bare JID: Reconcile sends them again.
	unapplied map[string]Affiliation
	rt        runState // run-time decisions: admin roles, policy switch, host rules (roles.go, host.go)
}

// NewRoom returns the state of the room jid ("[tenant]name@muc-domain" or
// "name@muc-domain") under opts.
func NewRoom(jid string, opts Options) *Room {
	r := &Room{jid: jid, opts: opts, kind: opts.Kind, cfg: opts.RoomConfig()}
	if opts.Kind == AllOwners && moderatedRoom(jid, opts.ModeratedRooms) {
		r.kind = Token
	}
	return r
}

// JID returns the room's JID.
func (r *Room) JID() string { return r.jid }

// Kind returns the policy in force: Token for an AllOwners room listed in
// ModeratedRooms.
func (r *Room) Kind() Kind { return r.kind }

// Config returns the MUC configuration the room needs.
func (r *Room) Config() RoomConfig { return r.cfg }

// Joined records a presence from the room: a join, or an update of an
// occupant already present (same nick, or same full JID under a new nick
// after a nick change). A joiner whose full JID knocked gets the identity and
// grant of that knock; one that never knocked is treated by the Guests
// setting (a bot domain is left alone).
func (r *Room) Joined(p Presence, now time.Time) []Action {
	n := r.begin(now)
	return r.finish(n, r.join(p, n))
}

// Left records that the occupant nick left, was kicked or banned. When the
// unavailable presence shows a new affiliation (a ban), call
// AffiliationChanged first, so that ClearOnLeave cannot undo the ban.
func (r *Room) Left(nick string, now time.Time) []Action {
	n := r.begin(now)
	if i := r.byNick(nick); i >= 0 {
		r.leave(i, n)
	}
	return r.finish(n, ReasonHandover)
}

// AffiliationChanged records that bareJID's affiliation is now aff, set by
// someone (the server reports it in presence or in a message to occupants).
// Echoes of gavel's own sets are recognised and change nothing.
func (r *Room) AffiliationChanged(bareJID string, aff Affiliation, now time.Time) []Action {
	n := r.begin(now)
	if aff == 0 {
		aff = None
	}
	r.observe(bareJID, aff, n, false)
	return r.finish(n, ReasonHandover)
}

// SetIdentity attaches a trusted identity (stamped into presence by the
// server) to the present occupant fullJID and applies the policy to it, as a
// knock would have. Unknown JIDs and refused identities change nothing.
func (r *Room) SetIdentity(fullJID string, id Identity, now time.Time) []Action {
	n := r.begin(now)
	if i := r.byFull(fullJID); i >= 0 {
		r.identify(i, id, n)
	}
	return r.finish(n, ReasonHandover)
}

// Occupants returns the tracked occupants in join order, bots included.
func (r *Room) Occupants() iter.Seq[Occupant] {
	return func(yield func(Occupant) bool) {
		for i := range r.occ {
			if !yield(r.occ[i].view()) {
				return
			}
		}
	}
}

// Len returns the number of tracked occupants, bots included.
func (r *Room) Len() int { return len(r.occ) }

// Owners returns the number of present occupants, bots excepted, whose
// affiliation is owner.
func (r *Room) Owners() int {
	c := 0
	for i := range r.occ {
		if r.occ[i].aff == Owner && r.occ[i].flags&fBot == 0 {
			c++
		}
	}
	return c
}

// Empty reports whether no occupant other than bots is present.
func (r *Room) Empty() bool {
	for i := range r.occ {
		if r.occ[i].flags&fBot == 0 {
			return false
		}
	}
	return true
}

// Known returns bareJID's affiliation as gavel knows it: set by gavel, seen
// in presence or a change, or read back by Reconcile. Unknown JIDs are None.
func (r *Room) Known(bareJID string) Affiliation { return r.affOf(bareJID) }

func (o *occupant) view() Occupant {
	v := Occupant{
		Nick: o.nick, FullJID: o.full, BareJID: o.bare, UserID: o.userID,
		Affiliation: o.aff, Role: o.role, Joined: time.Unix(0, o.joined),
		Knocked: o.flags&fKnocked != 0, Token: o.flags&fToken != 0,
		Moderator: o.flags&fModerator != 0, Viewer: o.flags&fViewer != 0,
		Bot: o.flags&fBot != 0,
	}
	if o.tokenExp != 0 {
		v.Expires = time.Unix(0, o.tokenExp)
	}
	return v
}

// begin starts an event: it clears the action list and does what is due.
func (r *Room) begin(now time.Time) int64 {
	r.acts = r.acts[:0]
	n := now.UnixNano()
	r.advance(n)
	return n
}

// finish ends an event: under auto-owner it makes sure an owner is present,
// then returns the actions.
func (r *Room) finish(n int64, reason string) []Action {
	r.settle(n, reason)
	if len(r.acts) == 0 {
		return nil
	}
	return r.acts[:len(r.acts):len(r.acts)]
}

// join handles one presence and returns the reason for a promotion it may
// cause under auto-owner.
func (r *Room) join(p Presence, n int64) string {
	if p.Affiliation == 0 {
		p.Affiliation = None
	}
	i := r.byNick(p.Nick)
	if i >= 0 && r.occ[i].bare != p.BareJID {
		r.leave(i, n) // a leave we missed: the nick is someone else's now
		i = -1
	}
	if i < 0 {
		if i = r.byFull(p.FullJID); i >= 0 {
			r.occ[i].nick = p.Nick // nick change
		}
	}
	if i >= 0 {
		o := &r.occ[i]
		o.full = p.FullJID
		// Take the role too, unless the presence is stale or the change
		// made gavel re-grant (then the role follows the grant).
		if !r.observe(o.bare, p.Affiliation, n, false) && o.aff == p.Affiliation {
			o.role = p.Role
		}
		return ReasonHandover
	}
	r.add(p, n)
	return ReasonFirstJoiner
}

// add tracks a new occupant and applies its knock, or the policy for
// joiners that never knocked.
func (r *Room) add(p Presence, n int64) {
	o := occupant{nick: p.Nick, full: p.FullJID, bare: p.BareJID, joined: n, role: p.Role}
	if r.isBot(p.BareJID) {
		o.flags |= fBot
	}
	r.occ = append(r.occ, o)
	i := len(r.occ) - 1
	r.observe(p.BareJID, p.Affiliation, n, true)
	r.occ[i].aff = r.affOf(p.BareJID)
	r.occ[i].role = p.Role
	if pd, ok := r.takePending(p.FullJID, n); ok {
		q := &r.occ[i]
		q.userID, q.tokenExp, q.flags = pd.userID, pd.tokenExp, q.flags|pd.flags
		r.applyToPresent(i, pd.base, pd.role, pd.reason, pd.exp, n)
		return
	}
	if o.flags&fBot == 0 {
		r.unknocked(i, n)
	}
}

// leave forgets occupant i and releases what gavel granted its bare JID.
func (r *Room) leave(i int, n int64) {
	bare := r.occ[i].bare
	r.noteLeave(i, n)
	r.occ = slices.Delete(r.occ, i, i+1)
	r.release(bare, n, ReasonClearOnLeave)
}

// release resets what gavel granted bare once nobody holds it: no occupant
// of that bare JID is present and none is knocking. It resets under
// ClearOnLeave, and always when the token behind the grant has expired.
func (r *Room) release(bare string, n int64, reason string) {
	if r.presentBare(bare) || r.pendingBare(bare) {
		return
	}
	st, ok := r.affs[bare]
	if !ok {
		return
	}
	expired := st.expired || (st.expires != 0 && st.expires <= n)
	switch {
	case st.granted && st.aff >= Member && (r.opts.ClearOnLeave || expired):
		if expired {
			reason = ReasonTokenExpired
		}
		r.emitAff(bare, None, reason)
		delete(r.affs, bare)
	case st.aff == None:
		delete(r.affs, bare)
	}
}

// identify applies an identity to present occupant i.
func (r *Room) identify(i int, id Identity, n int64) Grant {
	o := &r.occ[i]
	g, base, exp := r.decide(o.bare, o.full, id, o.flags&(fBot|fDemoted) == 0, n)
	if g.Refused() {
		return g
	}
	o.flags = o.flags&(fBot|fDemoted) | identityFlags(id)
	o.userID, o.tokenExp = id.UserID, tokenExpiry(id)
	if g.SetAffiliation && g.Affiliation < o.aff {
		// A lower token replaces what gavel granted on an earlier one.
		r.grantAff(o.bare, g.Affiliation, g.Reason, n, exp)
		o = &r.occ[i]
		g.Affiliation, g.Role = o.aff, o.role
		return g
	}
	set := g.SetAffiliation && (g.Affiliation > Member || r.tokenMember(o, g.Affiliation))
	if !set {
		r.extend(o.bare, base, exp)
	}
	r.applyToPresent(i, g.Affiliation, g.Role, g.Reason, exp, n)
	g.Affiliation, g.Role, g.SetAffiliation = o.aff, o.role, set
	return g
}

// applyToPresent brings present occupant i to aff and role: it raises the
// affiliation to admin or owner (never lowers it), and sets a visitor or
// participant role the room did not give. Member is set for someone present
// only as TokenHolders asks (tokenMember): elsewhere the role change gives
// the same voice and leaves nothing behind.
func (r *Room) applyToPresent(i int, aff Affiliation, role Role, reason string, exp, n int64) {
	o := &r.occ[i]
	if aff > o.aff && (aff > Member || r.tokenMember(o, aff)) {
		r.grantAff(o.bare, aff, reason, n, exp)
	}
	if o.aff <= Member && o.role != Moderator && o.role != role && (role == Visitor || role == Participant) {
		r.acts = append(r.acts, Action{Kind: ActionSetRole, Nick: o.nick, Role: role, Reason: reason})
		o.role = role
	}
}

// observe records that the server shows bare with aff. fresh is true for a
// join presence and Reconcile, which are never stale. It reports whether the
// observation was ignored as older than gavel's last set.
func (r *Room) observe(bare string, aff Affiliation, n int64, fresh bool) (stale bool) {
	st, ok := r.affs[bare]
	cur := None
	if ok {
		cur = st.aff
	}
	if aff == cur {
		if ok && st.sentAt != 0 {
			st.sentAt = 0
			r.setAff(bare, st)
		}
		return false
	}
	if !fresh && ok && st.sentAt != 0 && n-st.sentAt < echoWindow && aff != Outcast {
		return true
	}
	r.setAff(bare, affState{aff: aff})
	r.react(bare, cur, aff, n)
	return false
}

// react applies the policy to someone else's change of bare from old to aff.
func (r *Room) react(bare string, old, aff Affiliation, n int64) {
	if aff == Outcast {
		r.dropPendingBare(bare)
	}
	switch r.kind {
	case AllOwners:
		r.reassert(bare, old, aff, n)
	case AutoOwner:
		r.markDemoted(bare, old, aff)
	}
}

// grantAff emits gavel's set of bare to aff and records it as granted.
func (r *Room) grantAff(bare string, aff Affiliation, reason string, n, exp int64) {
	r.emitAff(bare, aff, reason)
	r.setAff(bare, affState{aff: aff, granted: true, expires: exp, sentAt: n})
	if exp != 0 {
		r.bump(exp)
	}
}

func (r *Room) emitAff(bare string, aff Affiliation, reason string) {
	delete(r.unapplied, bare) // superseded
	r.acts = append(r.acts, Action{Kind: ActionSetAffiliation, BareJID: bare, Affiliation: aff, Reason: reason})
}

// setAff stores st for bare and mirrors it into present occupants, whose
// role follows the affiliation as the server's does.
func (r *Room) setAff(bare string, st affState) {
	if st.aff == None && !st.granted && st.sentAt == 0 {
		delete(r.affs, bare)
	} else {
		if r.affs == nil {
			r.affs = make(map[string]affState)
		}
		r.affs[bare] = st
	}
	for i := range r.occ {
		o := &r.occ[i]
		if o.bare != bare || o.aff == st.aff {
			continue
		}
		o.aff, o.role = st.aff, r.defaultRole(st.aff)
		if st.aff == Owner {
			o.flags &^= fDemoted
		}
	}
}

func (r *Room) affOf(bare string) Affiliation {
	if st, ok := r.affs[bare]; ok {
		return st.aff
	}
	return None
}

func (r *Room) byNick(nick string) int {
	for i := range r.occ {
		if r.occ[i].nick == nick {
			return i
		}
	}
	return -1
}

func (r *Room) byFull(full string) int {
	for i := range r.occ {
		if r.occ[i].full == full {
			return i
		}
	}
	return -1
}

func (r *Room) presentBare(bare string) bool {
	for i := range r.occ {
		if r.occ[i].bare == bare {
			return true
		}
	}
	return false
}

// isBot reports whether bare's domain is one of the bot domains.
func (r *Room) isBot(bare string) bool {
	domain := bare[strings.LastIndexByte(bare, '@')+1:]
	for _, d := range r.opts.BotDomains {
		if strings.EqualFold(d, domain) {
			return true
		}
	}
	return false
}

func identityFlags(id Identity) flags {
	f := fKnocked
	if !id.HasToken {
		return f | fGuest
	}
	f |= fToken
	if id.Moderator {
		f |= fModerator
	}
	if id.Viewer {
		f |= fViewer
	}
	return f
}
