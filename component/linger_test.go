package component

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gavelxmpp/gavel/internal/xclient"
	"github.com/gavelxmpp/gavel/policy"
)

// announcements counts the messages c got from room that carry no body:
// Prosody's affiliation-change announcements to the room's moderators.
func announcements(c *xclient.Client, room string) int {
	n := 0
	for _, m := range c.Messages() {
		if strings.EqualFold(m.From, room) && m.Body == "" {
			n++
		}
	}
	return n
}

func leaveAndWait(t *testing.T, c *xclient.Client, room, nick string) {
	t.Helper()
	ctx := ctxT(t, 10*time.Second)
	if err := c.Leave(ctx, room, nick); err != nil {
		t.Fatal(err)
	}
	occupant := room + "/" + nick
	if _, err := c.WaitPresence(ctx, func(p xclient.Presence) bool {
		return p.Type == "unavailable" && strings.EqualFold(p.From, occupant)
	}); err != nil {
		t.Fatal(err)
	}
}

// A member who leaves and knocks again within the grace costs the room no
// affiliation change; after the grace the reset is sent, and the room is
// closed to them again.
func TestClearGraceKeepsAReturningMember(t *testing.T) {
	srv := shared
	ten := tenant(policy.Token, policy.GuestsDeny)
	ten.ClearGrace = 2 * time.Second
	startModerated(t, srv, map[string]Tenant{"": ten}, nil)
	room := newRoom("")
	host := login(t, srv)
	knockJoin(t, host, room, mint(t, room, true, nil), "host")
	part := login(t, srv)
	knockJoin(t, part, room, mint(t, room, false, nil), "part")
	ctx := ctxT(t, 15*time.Second)
	seen := func(nick string, k int) {
		t.Helper()
		occupant := room + "/" + nick
		n := 0
		if _, err := host.WaitPresence(ctx, func(p xclient.Presence) bool {
			if strings.EqualFold(p.From, occupant) && p.Type == "" {
				n++
			}
			return n >= k
		}); err != nil {
			t.Fatal(err)
		}
	}
	seen("part", 1)
	before := announcements(host, room)
	leaveAndWait(t, part, room, "part")
	_, p := knockJoin(t, part, room, mint(t, room, false, nil), "part2")
	if p.Affiliation != "member" || p.Role != "participant" {
		t.Errorf("returning member: %s/%s, want member/participant", p.Affiliation, p.Role)
	}
	seen("part2", 1) // everything the room sent the host before it has arrived
	if got := announcements(host, room); got != before {
		t.Errorf("%d affiliation announcements for a member who came back within the grace, want none", got-before)
	}
	leaveAndWait(t, part, room, "part2")
	n := 0
	if _, err := host.WaitMessage(ctx, func(m xclient.Message) bool {
		if strings.EqualFold(m.From, room) && m.Body == "" {
			n++
		}
		return n > before
	}); err != nil {
		t.Fatalf("the held reset was never sent: %v", err)
	}
	_, err := part.Join(ctx, room, "part3")
	var xe *xclient.Error
	if !errors.As(err, &xe) || xe.Condition != "registration-required" {
		t.Errorf("join without a knock after the grace: %v, want registration-required", err)
	}
}

// An owner who comes back with a participant's token gets the reset
// first: held rights never outlast what the new knock grants.
func TestClearGraceNeverCarriesMoreRights(t *testing.T) {
	srv := shared
	ten := tenant(policy.Token, policy.GuestsMember)
	ten.ClearGrace = time.Minute
	startModerated(t, srv, map[string]Tenant{"": ten}, nil)
	room := newRoom("")
	host := login(t, srv)
	knockJoin(t, host, room, mint(t, room, true, nil), "host")
	mod := login(t, srv)
	_, p := knockJoin(t, mod, room, mint(t, room, true, nil), "mod")
	if p.Affiliation != "owner" {
		t.Fatalf("moderator joined as %s", p.Affiliation)
	}
	leaveAndWait(t, mod, room, "mod")
	_, p = knockJoin(t, mod, room, mint(t, room, false, nil), "mod2")
	if p.Affiliation != "none" || p.Role != "participant" {
		t.Errorf("came back with a participant token as %s/%s, want none/participant", p.Affiliation, p.Role)
	}
	// And one who comes back without knocking loses the held rights at
	// its join.
	leaveAndWait(t, mod, room, "mod2")
	knockJoin(t, mod, room, mint(t, room, true, nil), "mod3")
	leaveAndWait(t, mod, room, "mod3")
	ctx := ctxT(t, 10*time.Second)
	if _, err := mod.Join(ctx, room, "mod4"); err != nil {
		t.Fatal(err)
	}
	if _, err := mod.WaitPresence(ctx, func(p xclient.Presence) bool {
		return strings.EqualFold(p.From, room+"/mod4") && p.Affiliation == "none"
	}); err != nil {
		t.Errorf("an unknocked return kept the held ownership: %v", err)
	}
}
