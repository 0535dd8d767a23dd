package policy

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"
)

// doLock runs the lock steps of the scripts on top of sim.do:
//
//	max N              the room's own bound on participants (0: the option's)
//	lock, unlock       lock or unlock; unlock gives the released knocks
//	hold NAME [ID...]  a knock of NAME meets the lock: pass, hold, no-host or busy
//	answer NAME BY     host BY answers NAME's held knock: ok, no-held or not-host
//	expire             the held knocks refused for their time (or no host)
func (s *sim) doLock(step string) string {
	w := strings.Fields(step)
	names := func(hs []HeldKnock) string {
		var out []string
		for _, h := range hs {
			out = append(out, h.ID)
		}
		return strings.Join(out, " ")
	}
	switch w[0] {
	case "max":
		n, err := strconv.Atoi(w[1])
		if err != nil {
			s.t.Fatal(err)
		}
		s.r.SetMaxParticipants(n)
		return ""
	case "lock":
		s.r.SetLocked(true)
		return ""
	case "unlock":
		return names(s.r.SetLocked(false))
	case "hold":
		_, full, bare := who(w[1])
		v, _ := s.r.Hold(HeldKnock{ID: w[1], BareJID: bare, FullJID: full}, s.identity(w[2:]), s.now)
		return [...]string{"pass", "hold", "no-host", "busy"}[v]
	case "admits": // a join that cannot be held (the bridge)
		_, _, bare := who(w[1])
		if s.r.LockAdmits(bare, s.identity(w[2:]), s.now) {
			return "pass"
		}
		return "refuse"
	case "answer":
		_, _, by := who(w[2])
		_, err := s.r.AnswerHeld(w[1], by)
		switch {
		case errors.Is(err, ErrNoHeldKnock):
			return "no-held"
		case errors.Is(err, ErrNotHost):
			return "not-host"
		case err != nil:
			s.t.Fatal(err)
		}
		return "ok"
	case "expire":
		return names(s.r.ExpireHolds(s.now))
	}
	return s.do(step)
}

func TestLock(t *testing.T) {
	base := Options{Kind: Token, Guests: GuestsMember, HoldTimeout: time.Minute, MaxHeld: 2}
	for _, tc := range []struct {
		name  string
		opts  Options
		steps []step
	}{
		{"unlocked rooms pass", base, []step{
			{"hold bob tok", "pass", nil},
		}},
		{"no host to admit", base, []step{
			{"lock", "", nil},
			{"hold bob tok", "no-host", nil},
			{"hold alice mod", "pass", nil}, // hosts enter directly
		}},
		{"a host admits, denies, lets one time out", base, []step{
			{"lock", "", nil},
			{"enter alice mod", "owner/moderator token-moderator set", []string{"aff alice owner token-moderator"}},
			{"hold bob tok", "hold", nil},
			{"hold carl tok", "hold", nil},
			{"hold dave tok", "busy", nil}, // MaxHeld
			{"answer bob carl", "not-host", nil},
			{"answer bob alice", "ok", nil},
			{"answer bob alice", "no-held", nil},
			{"wait 30s", "", nil},
			{"expire", "", nil},
			{"hold dave tok", "hold", nil},
			{"wait 31s", "", nil},
			{"expire", "carl", nil},
			{"unlock", "dave", nil},
			{"hold erin tok", "pass", nil},
		}},
		{"an admin's moderator is a host; its viewer is not", base, []step{
			{"enter alice mod", "owner/moderator token-moderator set", []string{"aff alice owner token-moderator"}},
			{"userrole u1 moderator", "", nil},
			{"userrole u2 viewer", "", nil},
			{"lock", "", nil},
			{"hold bob tok uid=u1", "pass", nil},
			{"hold carl mod uid=u2", "hold", nil},
		}},
		{"joins that cannot wait: hosts pass, others are refused", base, []step{
			{"admits bob tok", "pass", nil},
			{"lock", "", nil},
			{"admits bob tok", "refuse", nil},
			{"admits alice mod", "pass", nil},
			{"enter alice mod", "owner/moderator token-moderator set", []string{"aff alice owner token-moderator"}},
			{"admits bob tok", "refuse", nil}, // a host here changes nothing: it cannot be asked in time
			{"unlock", "", nil},
			{"admits bob tok", "pass", nil},
		}},
		{"the last host leaving refuses the held", base, []step{
			{"lock", "", nil},
			{"enter alice mod", "owner/moderator token-moderator set", []string{"aff alice owner token-moderator"}},
			{"hold bob tok", "hold", nil},
			{"leave alice", "", nil},
			{"expire", "bob", nil},
		}},
		{"the room's own bound on participants", Options{Kind: Token, Guests: GuestsDeny, Viewers: true, MaxParticipants: 5}, []step{
			{"max 1", "", nil},
			{"enter alice tok", "member/participant token-participant set", []string{"aff alice member token-participant"}},
			{"enter bob tok", "none/visitor capacity", nil},
			{"max 0", "", nil},
			{"enter carl tok", "member/participant token-participant set", []string{"aff carl member token-participant"}},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) { runRuntime(t, tc.opts, tc.steps) })
	}
}

// TestLockSettings keeps the lock, the bound and KeepUntil across a
// restart (Snapshot, Restore), and not the held knocks.
func TestLockSettings(t *testing.T) {
	r := NewRoom("meet@conference.example.test", Options{Kind: Token, Guests: GuestsMember})
	r.SetLocked(true)
	r.SetMaxParticipants(3)
	keep := t0.Add(48 * time.Hour).UTC()
	r.KeepSettingsUntil(keep)
	set := r.Settings()
	if !set.Locked || set.MaxParticipants != 3 || !set.KeepUntil.Equal(keep) || set.IsZero() {
		t.Fatalf("settings %+v", set)
	}
	r2 := NewRoom(r.JID(), Options{Kind: Token, Guests: GuestsMember})
	r2.Restore(Snapshot{Settings: set})
	if got := r2.Settings(); !got.Locked || got.MaxParticipants != 3 || !got.KeepUntil.Equal(keep) {
		t.Fatalf("restored %+v", got)
	}
	if !(SnapshotSettings{}).IsZero() {
		t.Fatal("zero settings")
	}
}
