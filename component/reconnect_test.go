package component

import (
	"strings"
	"testing"
	"time"

	"github.com/gavelxmpp/gavel/internal/xclient"
	"github.com/gavelxmpp/gavel/policy"
)

// TestConnectionDropMidMeeting: gavel's TCP connection drops while the
// server stays up (its old occupant lingers as a ghost). gavel reconnects,
// rejoins under a new resource, reads the affiliation lists back, and keeps
// governing: no second owner appears, and a handover still happens.
func TestConnectionDropMidMeeting(t *testing.T) {
	g := startModerated(t, shared, map[string]Tenant{"": tenant(policy.AutoOwner, policy.GuestsMember)}, nil)
	room := newRoom("")
	carol, dave := login(t, shared), login(t, shared)
	knockJoin(t, carol, room, mint(t, room, false, nil), "carol")
	knockJoin(t, dave, room, mint(t, room, false, nil), "dave")

	sess := g.mod.session()
	if sess == nil {
		t.Fatal("no session")
	}
	sess.conn.Close()
	deadline := time.Now().Add(5 * time.Second)
	for g.c.Reconnects() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	g.waitConnected(t, 3*time.Second)
	// The rejoin is done, and the worker has finished the read-back and
	// what followed once a command queued after it has run.
	waitFor(t, "the rejoin", func() bool { return counter(g.mod.metrics.Joins.WithLabelValues("joined")) == 2 })
	g.mod.waiting(room)
	for _, p := range dave.Presences() {
		if strings.EqualFold(p.From, room+"/dave") && p.Affiliation == "owner" {
			t.Fatalf("dave became owner while carol still owned the room")
		}
	}
	_ = carol.Leave(ctxT(t, time.Second), room, "carol")
	if _, err := dave.WaitPresence(ctxT(t, 5*time.Second), func(p xclient.Presence) bool {
		return strings.EqualFold(p.From, room+"/dave") && p.Affiliation == "owner"
	}); err != nil {
		t.Fatalf("no handover after the reconnect: %v", err)
	}
	// A knock still works.
	erin := login(t, shared)
	_, p := knockJoin(t, erin, room, mint(t, room, false, nil), "erin")
	if p.Role != "participant" {
		t.Errorf("erin after reconnect: %s/%s", p.Affiliation, p.Role)
	}
}
