package prosodytest

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gavelxmpp/gavel/internal/xclient"
)

// The harness starts the system's Prosody (0.12) and the Prosody 13 that
// make deps-servers unpacks beside it, reports each one's version, and a
// user it registers can log in.
func TestStartEachVersion(t *testing.T) {
	for _, tc := range []struct {
		name, version string
		find          func() (string, error)
		env           string // a variable that may pick another version
	}{
		{"prosody-0.12", "0.12.", Binary, "GAVEL_PROSODY"},
		{"prosody-13", "13.", Prosody13, "GAVEL_PROSODY13"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bin, err := tc.find()
			if err != nil {
				// On CI every server must be there; elsewhere make
				// deps-servers may not have run.
				if os.Getenv("CI") != "true" {
					t.Skip(err)
				}
				t.Fatal(err)
			}
			s, err := Start(t.TempDir(), Options{Prosody: bin})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			v, err := s.Version()
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(v, tc.version) && os.Getenv(tc.env) == "" {
				t.Fatalf("%s is Prosody %s, want %s*", bin, v, tc.version)
			}
			t.Logf("Prosody %s (%s)", v, bin)
			if err := s.Register("alice", Host, "pw"); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c, err := xclient.Login(ctx, s.C2SAddr, "alice", Host, "pw")
			if err != nil {
				t.Fatalf("login: %v\n%s", err, s.Log())
			}
			c.Close()
		})
	}
}

// Options.Names gives a shard its own domains: a user of its host logs in,
// and the template names its MUC and component.
func TestNames(t *testing.T) {
	names := Names{Host: "b.test", MUC: "conference.b.test", Component: "mod.b.test"}
	s, err := Start(t.TempDir(), Options{Names: names})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Names.GuestHost != GuestHost || s.Names.MUC != names.MUC {
		t.Errorf("Names = %+v", s.Names)
	}
	cfg, err := os.ReadFile(s.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`VirtualHost "b.test"`, `Component "conference.b.test" "muc"`, `admins = { "mod.b.test" }`, `Component "mod.b.test"`} {
		if !strings.Contains(string(cfg), want) {
			t.Errorf("config lacks %s", want)
		}
	}
	if err := s.Register("bob", names.Host, "pw"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := xclient.Login(ctx, s.C2SAddr, "bob", names.Host, "pw")
	if err != nil {
		t.Fatalf("login: %v\n%s", err, s.Log())
	}
	c.Close()
}
