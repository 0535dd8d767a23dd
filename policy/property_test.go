package policy

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// TestRandomMeetings plays long random meetings against the server model and
// checks after every step that the Room tracks each occupant once, agrees
// with the server on affiliations, acts only on present nicks, and (under
// auto-owner) keeps an owner whenever an occupant is eligible. At the end,
// with ClearOnLeave, nothing gavel granted is left on the server.
func TestRandomMeetings(t *testing.T) {
	configs := []struct {
		name string
		opts Options
	}{
		{"auto-owner guests member", Options{Kind: AutoOwner, Guests: GuestsMember, ClearOnLeave: true, BotDomains: bots}},
		{"auto-owner guests visitor", Options{Kind: AutoOwner, Guests: GuestsVisitor, ClearOnLeave: true, BotDomains: bots}},
		{"auto-owner guests deny", Options{Kind: AutoOwner, Guests: GuestsDeny, ClearOnLeave: true, BotDomains: bots}},
		{"auto-owner viewers kept", Options{Kind: AutoOwner, Guests: GuestsMember, Viewers: true, BotDomains: bots}},
		{"token guests deny", Options{Kind: Token, Guests: GuestsDeny, ClearOnLeave: true, BotDomains: bots}},
		{"token viewers", Options{Kind: Token, Guests: GuestsMember, Viewers: true, ClearOnLeave: true, BotDomains: bots}},
		{"token holders member", Options{Kind: Token, Guests: GuestsMember, TokenHolders: Member, ClearOnLeave: true, BotDomains: bots}},
		{"auto-owner token holders member viewers", Options{Kind: AutoOwner, Guests: GuestsMember, Viewers: true, TokenHolders: Member, ClearOnLeave: true, BotDomains: bots}},
		{"all-owners reassert", Options{Kind: AllOwners, Guests: GuestsMember, ReassertOwners: true, ClearOnLeave: true, BotDomains: bots}},
		{"all-owners guests visitor", Options{Kind: AllOwners, Guests: GuestsVisitor, ClearOnLeave: true, BotDomains: bots}},
	}
	steps := 3000
	if testing.Short() {
		steps = 500
	}
	for _, c := range configs {
		for seed := uint64(1); seed <= 3; seed++ {
			t.Run(fmt.Sprintf("%s/seed %d", c.name, seed), func(t *testing.T) {
				playRandom(t, c.opts, seed, steps)
			})
		}
	}
}

// nameOf returns the test name of the occupant nick, which may have changed
// its nick.
func (s *sim) nameOf(nick string) string {
	_, o := s.find(nick)
	name := local(o.bare)
	if strings.HasSuffix(o.full, "/2") {
		name += "#2"
	}
	return name
}

var randomNames = []string{"alice", "bob", "carl", "dave", "erin", "frank", "alice#2", "bob#2", "guest1", "guest2", "guest3", "bot1"}

func playRandom(t *testing.T, opts Options, seed uint64, steps int) {
	rng := rand.New(rand.NewPCG(seed, 42))
	s := newSim(t, "meet@conference.example.test", opts)
	pick := func(list []string) string { return list[rng.IntN(len(list))] }
	spec := func() string {
		kind := pick([]string{"tok", "tok", "tok", "mod", "viewer", "guest", "guest"})
		switch {
		case kind == "guest":
		case rng.IntN(30) == 0:
			kind += " expired"
		case rng.IntN(2) == 0:
			kind += fmt.Sprintf(" exp=%dm", 1+rng.IntN(20))
		}
		return kind
	}
	var history []string
	for i := 0; i < steps; i++ {
		var absent, present []string
		for _, name := range randomNames {
			_, full, _ := who(name)
			if o := s.byFull(full); o != nil {
				present = append(present, o.nick)
			} else {
				absent = append(absent, name)
			}
		}
		var ev string
		switch n := rng.IntN(100); {
		case n < 30 && len(absent) > 0:
			ev = "enter " + pick(absent) + " " + spec()
		case n < 35 && len(absent) > 0:
			ev = "knock " + pick(absent) + " " + spec()
		case n < 45 && len(absent) > 0:
			ev = "join " + pick(absent)
		case n < 65 && len(present) > 0:
			ev = "leave " + pick(present)
		case n < 73:
			ev = "set " + pick(randomNames) + " " + pick([]string{"none", "member", "admin", "owner"})
		case n < 75:
			ev = "ban " + pick(randomNames)
		case n < 85:
			ev = fmt.Sprintf("wait %ds", rng.IntN(300))
		case n < 90 && len(present) > 0:
			ev = "redeliver " + pick(present)
		case n < 93 && len(present) > 0:
			ev = "identity " + s.nameOf(pick(present)) + " " + spec()
		case n < 96 && len(present) > 0:
			ev = "knock " + s.nameOf(pick(present)) + " " + spec() // a refreshed token
		case n < 98 && len(present) > 0:
			name := pick(present)
			if !strings.HasSuffix(name, "~") {
				ev = "nick " + name + " " + name + "~"
			}
		case n < 100:
			// gavel is away for a while
			if len(present) > 0 && rng.IntN(2) == 0 {
				name := pick(present)
				s.do("forget " + name)
				history = append(history, "forget "+name)
			}
			if rng.IntN(2) == 0 {
				ev := "quiet-set " + pick(randomNames) + " " + pick([]string{"none", "member", "owner"})
				s.do(ev)
				history = append(history, ev)
			}
			s.do("skip 3m")
			history = append(history, "skip 3m")
			ev = "reconcile"
		}
		if ev == "" {
			continue
		}
		history = append(history, ev)
		s.log = nil
		s.do(ev)
		s.check()
		if t.Failed() {
			tail := history
			if len(tail) > 30 {
				tail = tail[len(tail)-30:]
			}
			t.Fatalf("seed %d, step %d %q; last steps:\n%s\nactions: %q", seed, i, ev, strings.Join(tail, "\n"), s.log)
		}
	}

	// Everyone leaves; knocks expire.
	for len(s.occ) > 0 {
		s.leave(s.occ[0].nick)
		s.check()
	}
	s.wait(KnockTTL + time.Second)
	if !opts.ClearOnLeave {
		return
	}
	for bare, aff := range s.server {
		if aff >= Member && s.byGavel[bare] {
			t.Errorf("%s is still %s after everyone left", bare, aff)
		}
	}
	for bare, st := range s.r.affs {
		if st.granted {
			t.Errorf("%s still held as granted %s", bare, st.aff)
		}
	}
	if len(s.r.pending) != 0 {
		t.Errorf("%d knocks still wait", len(s.r.pending))
	}
}
