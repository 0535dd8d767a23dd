package component

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"

	"github.com/gavelxmpp/gavel/internal/prosodytest"
)

// waitOwnershipChecked waits until the server check of muc has a finding
// for the current session and returns it (nil: gavel is owner everywhere).
func waitOwnershipChecked(t *testing.T, m *Moderation, muc string) *OwnershipError {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		m.mu.Lock()
		found, done := m.ownership[muc]
		m.mu.Unlock()
		if done {
			return found
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("the server check of %s did not finish within 20s", muc)
	return nil
}

// checkRoomsLeft returns the check's rooms the MUC still lists.
func checkRoomsLeft(t *testing.T, srv *server) []string {
	t.Helper()
	cl := login(t, srv)
	var res struct {
		Items []struct {
			JID string `xml:"jid,attr"`
		} `xml:"query>item"`
	}
	if err := cl.IQ(ctxT(t, 5*time.Second), prosodytest.MUC, "get", `<query xmlns='`+nsDiscoItems+`'/>`, &res); err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, it := range res.Items {
		if isCheckRoom(it.JID) {
			left = append(left, it.JID)
		}
	}
	return left
}

// With the bridge, the module reports gavel's own presence in the check's
// room and tells gavel the room was created, as for any room: gavel must
// not govern it (reading its lists as the check destroys it, and warning
// that the room refused). Found by gavel-soak's bridge scenario.
func TestServerCheckRoomNotGovernedThroughTheBridge(t *testing.T) {
	onEachProsody(t, func(t *testing.T, srv *server) {
		g := startModeratedMUC(t, srv, bridgeMUC(), nil, nil)
		if found := waitOwnershipChecked(t, g.mod, prosodytest.MUC); found != nil {
			t.Fatalf("server check: %v", found)
		}
		// The module's reports and room events for the check's room
		// arrive within milliseconds; give a governed room time to show.
		time.Sleep(300 * time.Millisecond)
		for _, e := range g.logs.All() {
			if r, _ := e.ContextMap()["room"].(string); isCheckRoom(r) && !strings.Contains(e.Message, "server check") {
				t.Errorf("gavel handled the check's room as a room to govern: %s %q %v", e.Level, e.Message, e.ContextMap())
			}
		}
		if left := checkRoomsLeft(t, srv); len(left) > 0 {
			t.Errorf("rooms of the check left behind: %v", left)
		}
	})
}

// On every server of the matrix (configured as the README says) the check
// finds gavel owner in rooms it did not create, says nothing above debug,
// and leaves no room behind.
func TestServerCheckPasses(t *testing.T) {
	onEachServer(t, func(t *testing.T, srv *server) {
		g := startModeratedMUC(t, srv, MUC{Domain: prosodytest.MUC, Discover: true}, nil, nil)
		if found := waitOwnershipChecked(t, g.mod, prosodytest.MUC); found != nil {
			t.Fatalf("server check: %v", found)
		}
		if err := g.mod.ServerCheck(); err != nil {
			t.Fatalf("ServerCheck = %v, want nil", err)
		}
		for _, e := range g.logs.FilterMessageSnippet("server check").All() {
			if e.Level > zapcore.DebugLevel {
				t.Errorf("logged %s %q %v", e.Level, e.Message, e.ContextMap())
			}
		}
		if left := checkRoomsLeft(t, srv); len(left) > 0 {
			t.Errorf("rooms of the check left behind: %v", left)
		}
		// Discovery never took the check's room for a room to govern.
		for _, r := range g.mod.Rooms() {
			if isCheckRoom(r) {
				t.Errorf("gavel governs the check's room %s", r)
			}
		}
	})
}

// Prosody 13 without component_admins_as_room_owners: gavel is owner only
// in the rooms it created. Where the MUC's settings rely on more (room
// discovery), the check logs an error naming the option and /readyz's
// ServerCheck fails; elsewhere it warns.
func TestServerCheckProsody13WithoutAdminsAsOwners(t *testing.T) {
	bin, err := prosodytest.Prosody13()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	srv := startServer(t, prosodytest.Options{Prosody: bin, RestrictRoomCreation: true, NoAdminsAsOwners: true})
	for _, tc := range []struct {
		name   string
		muc    MUC
		relied bool
	}{
		{"discovery relies on it", MUC{Domain: prosodytest.MUC, Discover: true}, true},
		{"the bridge relies on it", MUC{Domain: prosodytest.MUC, Bridge: true}, true},
		{"knocks only", MUC{Domain: prosodytest.MUC}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := startModeratedMUC(t, srv, tc.muc, nil, nil)
			found := waitOwnershipChecked(t, g.mod, prosodytest.MUC)
			if found == nil {
				t.Fatal("server check passed, want an OwnershipError")
			}
			if found.Relied != tc.relied {
				t.Errorf("Relied = %v, want %v", found.Relied, tc.relied)
			}
			msg := found.Error()
			for _, want := range []string{"component_admins_as_room_owners = true", `Component "` + prosodytest.MUC + `" "muc"`, "auth/forbidden"} {
				if !strings.Contains(msg, want) {
					t.Errorf("error %q does not say %q", msg, want)
				}
			}
			level := zapcore.WarnLevel
			if tc.relied {
				level = zapcore.ErrorLevel
			}
			logged := g.logs.FilterMessageSnippet("server check").FilterLevelExact(level).All()
			if len(logged) != 1 || !strings.Contains(logged[0].ContextMap()["problem"].(string), "component_admins_as_room_owners") {
				t.Errorf("want one %s line naming the option, got %v", level, logged)
			}
			err := g.mod.ServerCheck()
			var oe *OwnershipError
			if tc.relied != (err != nil) || (err != nil && !errors.As(err, &oe)) {
				t.Errorf("ServerCheck = %v, want an OwnershipError: %v", err, tc.relied)
			}
			if left := checkRoomsLeft(t, srv); len(left) > 0 {
				t.Errorf("rooms of the check left behind: %v", left)
			}
		})
	}
}
