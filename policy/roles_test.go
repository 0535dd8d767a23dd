package policy

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

// doRuntime runs the steps of this file's scripts on top of sim.do:
//
//	role NICK ROLE [for=DURATION]   an admin sets ROLE for NICK's bare JID
//	userrole UID ROLE [for=DURATION] an admin sets ROLE for user id UID
//	policy KIND                     an admin switches the room's policy
//
// A role for a nick not present gives "no-occupant".
func (s *sim) doRuntime(step string) string {
	w := strings.Fields(step)
	switch w[0] {
	case "role", "userrole":
		role, err := ParseAdminRole(w[2])
		if err != nil {
			s.t.Fatal(err)
		}
		var until time.Time
		if len(w) > 3 && strings.HasPrefix(w[3], "for=") {
			d, err := time.ParseDuration(w[3][4:])
			if err != nil {
				s.t.Fatal(err)
			}
			until = s.now.Add(d)
		}
		t := RoleTarget{Nick: w[1]}
		if w[0] == "userrole" {
			t = RoleTarget{UserID: w[1]}
		}
		_, acts, err := s.r.SetRole(t, role, until, s.now)
		s.apply(acts)
		if errors.Is(err, ErrNoOccupant) {
			return "no-occupant"
		}
		if err != nil {
			s.t.Fatal(err)
		}
		return ""
	case "policy":
		k, err := ParseKind(w[1])
		if err != nil {
			s.t.Fatal(err)
		}
		s.apply(s.r.SetKind(k, s.now))
		return ""
	}
	return s.doLock(step)
}

// runRuntime plays steps as sim.run does, with doRuntime.
func runRuntime(t *testing.T, opts Options, steps []step) *sim {
	t.Helper()
	s := newSim(t, "meet@conference.example.test", opts)
	for i, st := range steps {
		s.log = nil
		got := s.doRuntime(st.do)
		if got != st.want {
			t.Errorf("step %d %q: got %q, want %q", i, st.do, got, st.want)
		}
		if !slices.Equal(s.log, st.acts) && !(len(s.log) == 0 && len(st.acts) == 0) {
			t.Errorf("step %d %q: actions\n got %q\nwant %q", i, st.do, s.log, st.acts)
		}
		if s.r.Kind() != AutoOwner {
			s.check() // the model's auto-owner check knows no admin roles
		}
		if t.Failed() {
			t.FailNow()
		}
	}
	return s
}

func TestAdminRoles(t *testing.T) {
	tok := Options{Kind: Token, Guests: GuestsMember, ClearOnLeave: true}
	moderated := Options{Kind: Token, Guests: GuestsDeny, Viewers: true, ClearOnLeave: true}
	for _, tc := range []struct {
		name  string
		opts  Options
		steps []step
	}{
		{"moderator by nick, kept over a reload of the same JID", tok, []step{
			{"enter alice tok", "none/participant token-participant", nil},
			{"role alice moderator", "", []string{"aff alice owner set-by-admin"}},
			{"leave alice", "", []string{"aff alice none clear-on-leave"}},
			{"enter alice tok", "owner/moderator set-by-admin set", []string{"aff alice owner set-by-admin"}},
		}},
		{"moderator by user id, for every session", tok, []step{
			{"enter alice tok uid=u1", "none/participant token-participant", nil},
			{"userrole u1 moderator", "", []string{"aff alice owner set-by-admin"}},
			{"leave alice", "", []string{"aff alice none clear-on-leave"}},
			// A reload as an anonymous client: a new JID, the same user id.
			{"enter carol tok uid=u1", "owner/moderator set-by-admin set", []string{"aff carol owner set-by-admin"}},
			{"enter dave tok uid=u2", "none/participant token-participant", nil},
		}},
		{"a user id role set before the user arrives", tok, []step{
			{"userrole u9 viewer", "", nil},
			{"enter alice mod uid=u9", "none/visitor set-by-admin", []string{"role alice visitor set-by-admin"}},
		}},
		{"viewer lowers a token moderator; clearing gives the token's right back", tok, []step{
			{"enter alice mod", "owner/moderator token-moderator set", []string{"aff alice owner token-moderator"}},
			{"role alice viewer", "", []string{"aff alice none set-by-admin", "role alice visitor set-by-admin"}},
			{"role alice default", "", []string{"aff alice owner set-by-admin"}},
		}},
		{"participant in a moderated room", moderated, []step{
			{"enter alice viewer", "none/visitor viewer-claim", nil},
			// Member gives voice in a moderated room: no role change.
			{"role alice participant", "", []string{"aff alice member set-by-admin"}},
			{"leave alice", "", []string{"aff alice none clear-on-leave"}},
			{"enter alice viewer", "member/participant set-by-admin set", []string{"aff alice member set-by-admin"}},
		}},
		{"a token expiry does not end an admin's role", tok, []step{
			{"enter alice tok exp=1m", "none/participant token-participant", nil},
			{"role alice moderator", "", []string{"aff alice owner set-by-admin"}},
			{"wait 2m", "", nil},
		}},
		{"an end time does", tok, []step{
			{"enter alice tok", "none/participant token-participant", nil},
			{"role alice moderator for=1m", "", []string{"aff alice owner set-by-admin"}},
			{"wait 30s", "", nil},
			{"wait 31s", "", []string{"aff alice none set-by-admin"}},
		}},
		{"all-owners: a viewer stays a viewer", Options{Kind: AllOwners, Guests: GuestsMember}, []step{
			{"enter alice tok", "owner/moderator all-owners set", []string{"aff alice owner all-owners"}},
			{"role alice viewer", "", []string{"aff alice none set-by-admin", "role alice visitor set-by-admin"}},
			{"leave alice", "", nil},
			{"enter alice tok", "none/visitor set-by-admin", []string{"role alice visitor set-by-admin"}},
		}},
		{"an unknown nick", tok, []step{
			{"role nobody moderator", "no-occupant", nil},
		}},
		{"the role survives gavel's restart", tok, []step{
			{"enter alice tok uid=u1", "none/participant token-participant", nil},
			{"userrole u1 moderator", "", []string{"aff alice owner set-by-admin"}},
			{"restart", "", nil},
			{"reconcile", "", nil},
			{"leave alice", "", []string{"aff alice none clear-on-leave"}},
			{"enter alice tok uid=u1", "owner/moderator set-by-admin set", []string{"aff alice owner set-by-admin"}},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) { runRuntime(t, tc.opts, tc.steps) })
	}
}

func TestAdminRolesUnderAutoOwner(t *testing.T) {
	opts := Options{Kind: AutoOwner, Guests: GuestsMember, ClearOnLeave: true}
	runRuntime(t, opts, []step{
		{"enter alice tok", "owner/moderator first-joiner set", []string{"aff alice owner first-joiner"}},
		{"enter bob tok", "none/participant token-participant", nil},
		// An admin says alice only participates: bob is promoted, and
		// alice is never picked again.
		{"role alice participant", "", []string{"aff alice none set-by-admin", "aff bob owner handover"}},
		{"leave bob", "", []string{"aff bob none clear-on-leave"}},
		{"enter carol tok", "owner/moderator first-joiner set", []string{"aff carol owner first-joiner"}},
	})
}

func TestSetKind(t *testing.T) {
	for _, tc := range []struct {
		name  string
		opts  Options
		steps []step
	}{
		{"token to all-owners and back", Options{Kind: Token, Guests: GuestsMember, ClearOnLeave: true}, []step{
			{"enter alice mod", "owner/moderator token-moderator set", []string{"aff alice owner token-moderator"}},
			{"enter bob tok", "none/participant token-participant", nil},
			{"policy all-owners", "", []string{"aff bob owner admin-policy"}},
			{"enter dave tok", "owner/moderator all-owners set", []string{"aff dave owner all-owners"}},
			{"policy token", "", []string{"aff bob none admin-policy", "aff dave none admin-policy"}},
			{"enter erin tok", "none/participant token-participant", nil},
		}},
		{"an admin's role stands", Options{Kind: Token, Guests: GuestsMember}, []step{
			{"enter bob tok", "none/participant token-participant", nil},
			{"role bob viewer", "", []string{"role bob visitor set-by-admin"}},
			{"policy all-owners", "", nil},
		}},
		{"the switch survives gavel's restart", Options{Kind: Token, Guests: GuestsMember}, []step{
			{"policy all-owners", "", nil},
			{"restart", "", nil},
			{"enter bob tok", "owner/moderator all-owners set", []string{"aff bob owner all-owners"}},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) { runRuntime(t, tc.opts, tc.steps) })
	}
}

func TestAutoOwnerGrace(t *testing.T) {
	opts := Options{Kind: AutoOwner, Guests: GuestsMember, ClearOnLeave: true, OwnerGrace: 30 * time.Second}
	for _, tc := range []struct {
		name  string
		opts  Options
		steps []step
	}{
		{"the owner reloads within the grace", opts, []step{
			{"enter alice tok uid=u1", "owner/moderator first-joiner set", []string{"aff alice owner first-joiner"}},
			{"enter bob tok uid=u2", "none/participant token-participant", nil},
			{"leave alice", "", []string{"aff alice none clear-on-leave", "aff bob owner handover"}},
			{"wait 10s", "", nil},
			// A new session (anonymous JID) of the same user.
			{"enter carol tok uid=u1", "owner/moderator owner-returned set", []string{"aff carol owner owner-returned", "aff bob none interim-owner"}},
		}},
		{"the interim owner keeps it where the options say so", Options{Kind: AutoOwner, Guests: GuestsMember, ClearOnLeave: true, OwnerGrace: 30 * time.Second, KeepInterimOwner: true}, []step{
			{"enter alice tok uid=u1", "owner/moderator first-joiner set", []string{"aff alice owner first-joiner"}},
			{"enter bob tok uid=u2", "none/participant token-participant", nil},
			{"leave alice", "", []string{"aff alice none clear-on-leave", "aff bob owner handover"}},
			{"enter alice tok uid=u1", "owner/moderator owner-returned set", []string{"aff alice owner owner-returned"}},
		}},
		{"too late", opts, []step{
			{"enter alice tok uid=u1", "owner/moderator first-joiner set", []string{"aff alice owner first-joiner"}},
			{"enter bob tok uid=u2", "none/participant token-participant", nil},
			{"leave alice", "", []string{"aff alice none clear-on-leave", "aff bob owner handover"}},
			{"wait 31s", "", nil},
			{"enter alice tok uid=u1", "none/participant token-participant", nil},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) { runRuntime(t, tc.opts, tc.steps) })
	}
}

func TestHostRules(t *testing.T) {
	for _, tc := range []struct {
		name  string
		opts  Options
		steps []step
	}{
		{"wait for the host", Options{Kind: Token, Guests: GuestsMember, ClearOnLeave: true, WaitForHost: true}, []step{
			{"knock bob tok", "refused host-absent", nil},
			{"enter alice mod", "owner/moderator token-moderator set", []string{"aff alice owner token-moderator"}},
			{"enter bob tok", "none/participant token-participant", nil},
			{"leave alice", "", []string{"aff alice none clear-on-leave"}},
			{"knock carl tok", "refused host-absent", nil},
		}},
		{"a granted host knock counts", Options{Kind: Token, Guests: GuestsMember, WaitForHost: true}, []step{
			{"knock alice mod", "owner/moderator token-moderator set", []string{"aff alice owner token-moderator"}},
			{"knock bob tok", "none/participant token-participant", nil},
		}},
		{"only a host opens the room", Options{Kind: Token, Guests: GuestsMember, ClearOnLeave: true, HostOpens: true}, []step{
			{"knock bob tok", "refused host-absent", nil},
			{"enter alice mod", "owner/moderator token-moderator set", []string{"aff alice owner token-moderator"}},
			{"enter bob tok", "none/participant token-participant", nil},
			{"leave alice", "", []string{"aff alice none clear-on-leave"}},
			{"enter carl tok", "none/participant token-participant", nil}, // it is open
			{"leave bob", "", nil},
			{"leave carl", "", nil},
			{"knock dave tok", "refused host-absent", nil}, // emptied: closed again
		}},
		{"an admin's moderator is a host", Options{Kind: Token, Guests: GuestsMember, WaitForHost: true}, []step{
			{"userrole u1 moderator", "", nil},
			{"enter alice tok uid=u1", "owner/moderator set-by-admin set", []string{"aff alice owner set-by-admin"}},
			{"enter bob tok", "none/participant token-participant", nil},
		}},
		{"capacity: viewers beyond it", Options{Kind: Token, Guests: GuestsDeny, Viewers: true, MaxParticipants: 2}, []step{
			{"enter alice mod", "owner/moderator token-moderator set", []string{"aff alice owner token-moderator"}},
			{"enter bob tok", "member/participant token-participant set", []string{"aff bob member token-participant"}},
			{"enter carl tok", "none/visitor capacity", nil},
			{"enter dave mod", "owner/moderator token-moderator set", []string{"aff dave owner token-moderator"}},
			{"leave bob", "", nil},
			{"knock erin tok", "none/visitor capacity", nil}, // hosts count
			{"leave dave", "", nil},
			{"enter erin tok", "member/participant token-participant set", []string{"aff erin member token-participant"}},
		}},
		{"capacity: refused where there are no viewers", Options{Kind: Token, Guests: GuestsMember, MaxParticipants: 1}, []step{
			{"enter alice tok", "none/participant token-participant", nil},
			{"knock bob tok", "refused room-full", nil},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) { runRuntime(t, tc.opts, tc.steps) })
	}
}

func TestEndWithoutHost(t *testing.T) {
	opts := Options{Kind: Token, Guests: GuestsMember, EndWithoutHost: 2 * time.Minute}
	r := NewRoom("meet@conference.example.test", opts)
	p := func(name string, aff Affiliation) Presence {
		nick, full, bare := who(name)
		return Presence{Nick: nick, FullJID: full, BareJID: bare, Affiliation: aff, Role: Participant}
	}
	destroys := func(acts []Action) int {
		c := 0
		for _, a := range acts {
			if a.Kind == ActionDestroy {
				c++
			}
		}
		return c
	}
	r.Knock("alice@example.test", "alice@example.test/web", Identity{HasToken: true, Moderator: true}, t0)
	r.Joined(p("alice", Owner), t0)
	r.Joined(p("bob", None), t0)
	if !r.HostPresent(t0) {
		t.Fatal("alice is a host")
	}
	r.Left("alice", t0.Add(time.Second))
	if got := r.NextDeadline(); got.IsZero() || got.After(t0.Add(time.Second+2*time.Minute)) {
		t.Fatalf("NextDeadline = %v, want no later than the host timeout", got)
	}
	if n := destroys(r.Tick(t0.Add(time.Minute))); n != 0 {
		t.Fatalf("destroyed after a minute")
	}
	// The host comes back in time: the clock starts over when it leaves again.
	r.Knock("alice@example.test", "alice@example.test/web", Identity{HasToken: true, Moderator: true}, t0.Add(90*time.Second))
	r.Joined(p("alice", Owner), t0.Add(90*time.Second))
	r.Left("alice", t0.Add(100*time.Second))
	if n := destroys(r.Tick(t0.Add(200 * time.Second))); n != 0 {
		t.Fatalf("destroyed before the timeout of the second absence")
	}
	acts := r.Tick(t0.Add(221 * time.Second))
	if n := destroys(acts); n != 1 {
		t.Fatalf("Tick after the timeout = %v, want one destroy", acts)
	}
	if n := destroys(r.Tick(t0.Add(time.Hour))); n != 0 {
		t.Fatal("destroyed twice")
	}
}

func TestParseAdminRole(t *testing.T) {
	for s, want := range map[string]AdminRole{"": AdminNone, "default": AdminNone, "none": AdminNone, "moderator": AdminModerator, "participant": AdminParticipant, "viewer": AdminViewer} {
		if got, err := ParseAdminRole(s); err != nil || got != want {
			t.Errorf("ParseAdminRole(%q) = %v, %v", s, got, err)
		}
	}
	if _, err := ParseAdminRole("owner"); err == nil {
		t.Error("owner is not a role")
	}
}

func TestRolesBetweenKnockAndJoin(t *testing.T) {
	tok := Options{Kind: Token, Guests: GuestsMember, ClearOnLeave: true}
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"a role set before the join holds at the join", []step{
			{"knock alice tok uid=u1", "none/participant token-participant", nil},
			{"userrole u1 moderator", "", []string{"aff alice owner set-by-admin"}},
			{"join alice", "", nil},
			{"userrole u1 viewer", "", []string{"aff alice none set-by-admin", "role alice visitor set-by-admin"}},
		}},
		{"a policy switch before the join holds at the join", []step{
			{"knock alice tok", "none/participant token-participant", nil},
			{"policy all-owners", "", []string{"aff alice owner admin-policy"}},
			{"join alice", "", nil},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) { runRuntime(t, tok, tc.steps) })
	}
}
