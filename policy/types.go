package policy

import (
	"fmt"
	"time"
)

// Affiliation is a XEP-0045 affiliation. The values are ordered, so they
// compare as ranks: Outcast < None < Member < Admin < Owner. The zero value is
// not a valid affiliation.
type Affiliation uint8

// The affiliations, lowest first.
const (
	Outcast Affiliation = iota + 1
	None
	Member
	Admin
	Owner
)

var affiliationNames = [...]string{Outcast: "outcast", None: "none", Member: "member", Admin: "admin", Owner: "owner"}

// String returns the XEP-0045 word for a.
func (a Affiliation) String() string {
	if a >= Outcast && a <= Owner {
		return affiliationNames[a]
	}
	return fmt.Sprintf("Affiliation(%d)", uint8(a))
}

// ParseAffiliation returns the affiliation named by the XEP-0045 word s.
func ParseAffiliation(s string) (Affiliation, error) {
	for a := Outcast; a <= Owner; a++ {
		if affiliationNames[a] == s {
			return a, nil
		}
	}
	return 0, fmt.Errorf("policy: unknown affiliation %q", s)
}

// Role is a XEP-0045 role. The values are ordered:
// RoleNone < Visitor < Participant < Moderator.
type Role uint8

// The roles, lowest first.
const (
	RoleNone Role = iota
	Visitor
	Participant
	Moderator
)

var roleNames = [...]string{RoleNone: "none", Visitor: "visitor", Participant: "participant", Moderator: "moderator"}

// String returns the XEP-0045 word for r.
func (r Role) String() string {
	if r <= Moderator {
		return roleNames[r]
	}
	return fmt.Sprintf("Role(%d)", uint8(r))
}

// ParseRole returns the role named by the XEP-0045 word s.
func ParseRole(s string) (Role, error) {
	for r := RoleNone; r <= Moderator; r++ {
		if roleNames[r] == s {
			return r, nil
		}
	}
	return 0, fmt.Errorf("policy: unknown role %q", s)
}

// Kind is a moderation policy.
type Kind uint8

// The policies. The zero value is Token.
const (
	// Token gives owner to joiners whose token says moderator; other token
	// holders participate.
	Token Kind = iota
	// AutoOwner keeps one present owner: the first joiner, then the
	// longest-present eligible occupant whenever no owner is left.
	AutoOwner
	// AllOwners makes every joiner owner, except in Options.ModeratedRooms,
	// which use Token.
	AllOwners
)

var kindNames = [...]string{Token: "token", AutoOwner: "auto-owner", AllOwners: "all-owners"}

// String returns the configuration word for k.
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// ParseKind returns the policy named by the configuration word s.
func ParseKind(s string) (Kind, error) {
	for k, name := range kindNames {
		if name == s {
			return Kind(k), nil
		}
	}
	return 0, fmt.Errorf("policy: unknown policy %q", s)
}

// Guests says what joiners without a token get.
type Guests uint8

// The guest settings. The zero value is GuestsDeny.
const (
	// GuestsDeny refuses them: the room is members-only.
	GuestsDeny Guests = iota
	// GuestsMember lets them participate like token holders.
	GuestsMember
	// GuestsVisitor lets them in without voice: the room is moderated.
	GuestsVisitor
)

var guestsNames = [...]string{GuestsDeny: "deny", GuestsMember: "member", GuestsVisitor: "visitor"}

// String returns the configuration word for g.
func (g Guests) String() string {
	if int(g) < len(guestsNames) {
		return guestsNames[g]
	}
	return fmt.Sprintf("Guests(%d)", uint8(g))
}

// ParseGuests returns the guest setting named by the configuration word s.
func ParseGuests(s string) (Guests, error) {
	for g, name := range guestsNames {
		if name == s {
			return Guests(g), nil
		}
	}
	return 0, fmt.Errorf("policy: unknown guests setting %q", s)
}

// Options are one room's effective settings. The caller resolves the tenant
// and passes its settings; the Room keeps the slices without copying them, so
// they must not change afterwards.
type Options struct {
	Kind   Kind
	Guests Guests
	// ReassertOwners (AllOwners) re-grants owner when someone demotes a
	// present owner to admin, member or none. Bans (outcast) stand.
	ReassertOwners bool
	// ClearOnLeave resets affiliations gavel granted to none when their holder
	// leaves and no other session of the same bare JID is in the room or
	// knocking, and when a granted knock expires without a join.
	ClearOnLeave bool
	// Viewers says tokens of this tenant may carry the viewer claim. The room
	// is then moderated (and not members-only), so viewers join as visitors
	// without a role change, while token participants need the member
	// affiliation. Where rooms are not moderated, a knock with the viewer
	// claim is refused (RefusalViewerNotAdmitted): it would get voice.
	Viewers bool
	// TokenHolders is the affiliation of token holders whose token does
	// not make them owner (no moderator claim, and the policy does not
	// either): Member makes them members in every room, as Jitsi's
	// token_affiliation does; None (and the zero value) sets member only
	// where the room needs it (members-only or moderated). Viewers and
	// joiners without a token are not affected. A member grant for a JID
	// not in the room makes the server message every occupant, unless the
	// bridge module writes it at pre-join.
	TokenHolders Affiliation
	// BotDomains are JID domains (exact, case-insensitive) never chosen as
	// auto-owner and not counted as owners or occupants. Joiners of these
	// domains that never knocked are left alone. The caller adds gavel's
	// own domain.
	BotDomains []string
	// ModeratedRooms (AllOwners) are room local parts, without the tenant
	// prefix, that use the Token policy instead.
	ModeratedRooms []string
	// WaitForHost refuses knocks that would not make an owner while no
	// owner is present or granted (RefusalHostAbsent, Jitsi's
	// muc_wait_for_host); the client may retry.
	WaitForHost bool
	// HostOpens refuses knocks that would not make an owner until an owner
	// has been in the room since it was last empty (RefusalHostAbsent,
	// Jitsi's token_owner_party).
	HostOpens bool
	// EndWithoutHost destroys the room when it has had occupants but no
	// owner for this long (Jitsi's owner_restricted with role_timeout);
	// zero never does.
	EndWithoutHost time.Duration
	// OwnerGrace (AutoOwner) is how long an owner that left gets ownership
	// back when a session of the same user id (or bare JID) knocks again,
	// as a reload does; zero turns it off.
	OwnerGrace time.Duration
	// KeepInterimOwner (AutoOwner) lets the occupant promoted while the
	// owner was away keep ownership when the owner comes back.
	KeepInterimOwner bool
	// MaxParticipants bounds the occupants with voice (owners, moderators
	// and participants); joiners beyond it become viewers (ReasonCapacity)
	// where the room is moderated, and are refused (RefusalRoomFull)
	// elsewhere. Zero: no bound. SetMaxParticipants overrides it per room.
	MaxParticipants int
	// HoldTimeout is how long a knock held by a locked room waits for a
	// host's answer (DefaultHoldTimeout when zero); MaxHeld bounds the
	// knocks held at once (DefaultMaxHeld when zero). lock.go.
	HoldTimeout time.Duration
	MaxHeld     int
}

// RoomConfig is the MUC configuration a room needs for its policy to work.
// The caller applies it when it creates or adopts the room.
type RoomConfig struct {
	// MembersOnly (GuestsDeny): the server refuses joiners without an
	// affiliation, so token participants get member and clients that never
	// knocked cannot enter.
	MembersOnly bool
	// Moderated (GuestsVisitor or Viewers): joiners without an affiliation
	// get the visitor role, so token participants get member.
	Moderated bool
}

// RoomConfig returns the configuration rooms with these options need.
//
// A room that admits viewers is moderated from its creation, so that a
// viewer's first presence is already visitor and the server refuses its
// messages. Such a room is never members-only: a member of a moderated room
// gets voice as it joins, and a viewer would need member to enter. Guests a
// tenant denies can then enter it without knocking; they join voiceless and
// the caller removes them (DeniesGuest).
func (o Options) RoomConfig() RoomConfig {
	return RoomConfig{
		MembersOnly: o.Guests == GuestsDeny && !o.Viewers,
		Moderated:   o.Guests == GuestsVisitor || o.Viewers,
	}
}

// Identity is what a validated token or a server-stamped identity says of a
// joiner. The caller has already interpreted the claims.
type Identity struct {
	// HasToken is false for guests.
	HasToken bool
	// UserID is the token's user id, kept for the caller's commands (bans).
	UserID string
	// Moderator means the token grants moderation (owner).
	Moderator bool
	// Viewer means the token asks for the visitor role. It wins over
	// Moderator when a token claims both.
	Viewer bool
	// Expires is the token's expiry; the zero time means none.
	Expires time.Time
}

// Reasons say why an affiliation or role was chosen. They are stable words,
// fit for logs and metric labels.
const (
	ReasonTokenModerator   = "token-moderator"
	ReasonTokenParticipant = "token-participant"
	ReasonViewer           = "viewer-claim"
	ReasonFirstJoiner      = "first-joiner"
	ReasonHandover         = "handover"
	ReasonAllOwners        = "all-owners"
	ReasonReassert         = "reassert"
	ReasonGuestMember      = "guest-member"
	ReasonGuestVisitor     = "guest-visitor"
	ReasonExisting         = "existing-affiliation"
	ReasonClearOnLeave     = "clear-on-leave"
	ReasonKnockExpired     = "knock-expired"
	ReasonTokenExpired     = "token-expired"
	// ReasonAdminRole: an admin set the role at run time (SetRole).
	ReasonAdminRole = "set-by-admin"
	// ReasonAdminPolicy: an admin switched the room's policy (SetKind).
	ReasonAdminPolicy = "admin-policy"
	// ReasonOwnerReturned: the auto-owner came back within OwnerGrace;
	// ReasonInterimOwner: the occupant that stood in gave ownership back.
	ReasonOwnerReturned = "owner-returned"
	ReasonInterimOwner  = "interim-owner"
	// ReasonCapacity: the room had MaxParticipants, so the joiner views.
	ReasonCapacity = "capacity"
	// ReasonHostAbsent: no owner for EndWithoutHost (a destroy).
	ReasonHostAbsent = "host-absent"
)

// Refusals say why a knock was refused. They are stable words; the caller
// maps them to stanza errors.
const (
	// RefusalTokenRequired: a guest knocked where guests are denied.
	RefusalTokenRequired = "token-required"
	// RefusalTokenExpired: the token had expired when the knock was decided.
	RefusalTokenExpired = "token-expired"
	// RefusalBanned: the joiner's bare JID is an outcast of the room.
	RefusalBanned = "banned"
	// RefusalViewerNotAdmitted: the token claims viewer, and the room is not
	// moderated, so the server would give the viewer voice.
	RefusalViewerNotAdmitted = "viewer-not-admitted"
	// RefusalHostAbsent: WaitForHost or HostOpens, and no owner is here
	// (yet). The client may knock again later.
	RefusalHostAbsent = "host-absent"
	// RefusalRoomFull: MaxParticipants is reached and the room is not
	// moderated, so a joiner cannot be admitted as a viewer.
	RefusalRoomFull = "room-full"
)

// Grant is the answer to a knock.
type Grant struct {
	// Affiliation is the joiner's affiliation once the Actions are done.
	Affiliation Affiliation
	// Role is the role the joiner ends up with. When the room gives another
	// role on join (a viewer in a room that is not moderated), Joined emits
	// the role change.
	Role Role
	// Reason is one of the Reason words.
	Reason string
	// Refusal is empty, or one of the Refusal words; then nothing else holds.
	Refusal string
	// SetAffiliation says the Actions set Affiliation on the room. Affiliations
	// are set only where they change the outcome: each set for a JID that has
	// not joined makes the server message every occupant.
	SetAffiliation bool
}

// Refused reports whether the knock was refused.
func (g Grant) Refused() bool { return g.Refusal != "" }

// ActionKind says what an Action does.
type ActionKind uint8

// The action kinds.
const (
	// ActionSetAffiliation sets BareJID's affiliation on the room.
	ActionSetAffiliation ActionKind = iota + 1
	// ActionSetRole sets the role of the occupant Nick.
	ActionSetRole
	// ActionKick removes the occupant Nick (role none), telling it Text.
	ActionKick
	// ActionConfigure submits Config as the room's configuration.
	ActionConfigure
	// ActionDestroy destroys the room, telling the occupants Text.
	ActionDestroy
)

// Action is one change the caller must make on the server.
type Action struct {
	Kind        ActionKind
	BareJID     string // ActionSetAffiliation
	Nick        string // ActionSetRole
	Affiliation Affiliation
	Role        Role
	Reason      string
	Text        string     // ActionKick: what the removed occupant is told
	Config      RoomConfig // ActionConfigure
}

// String describes a for logs.
func (a Action) String() string {
	switch a.Kind {
	case ActionSetAffiliation:
		return fmt.Sprintf("set-affiliation %s %s (%s)", a.BareJID, a.Affiliation, a.Reason)
	case ActionSetRole:
		return fmt.Sprintf("set-role %s %s (%s)", a.Nick, a.Role, a.Reason)
	case ActionKick:
		return fmt.Sprintf("kick %s (%s)", a.Nick, a.Reason)
	case ActionConfigure:
		return fmt.Sprintf("configure members-only=%t moderated=%t (%s)", a.Config.MembersOnly, a.Config.Moderated, a.Reason)
	case ActionDestroy:
		return fmt.Sprintf("destroy (%s)", a.Reason)
	}
	return fmt.Sprintf("Action(%d)", uint8(a.Kind))
}

// Presence is an occupant as a presence from the room shows it. gavel is a
// moderator, so it sees real JIDs.
type Presence struct {
	Nick        string
	FullJID     string
	BareJID     string
	Affiliation Affiliation // the zero value counts as None
	Role        Role
}

// Occupant is a read-only view of one tracked occupant.
type Occupant struct {
	Nick, FullJID, BareJID string
	// UserID is the token's user id, if the occupant knocked or was
	// identified.
	UserID      string
	Affiliation Affiliation
	Role        Role
	// Joined is when the occupant's join was seen.
	Joined time.Time
	// Expires is the token's expiry; the zero time means none.
	Expires time.Time
	// Knocked is true when a knock or identity was attached.
	Knocked, Token, Moderator, Viewer, Bot bool
}
