package component

import (
	"errors"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/gavelxmpp/gavel/internal/prosodytest"
	"github.com/gavelxmpp/gavel/internal/xclient"
)

func TestConnectAnswersDiscoPingVersion(t *testing.T) {
	r := startComponent(t, shared, nil)
	r.waitConnected(t, 5*time.Second)
	cl := login(t, shared)
	ctx := ctxT(t, 5*time.Second)

	var info struct {
		Query struct {
			Identity []struct {
				Category string `xml:"category,attr"`
				Type     string `xml:"type,attr"`
				Name     string `xml:"name,attr"`
			} `xml:"identity"`
			Features []struct {
				Var string `xml:"var,attr"`
			} `xml:"feature"`
		} `xml:"http://jabber.org/protocol/disco#info query"`
	}
	if err := cl.IQ(ctx, prosodytest.Component, "get", `<query xmlns='http://jabber.org/protocol/disco#info'/>`, &info); err != nil {
		t.Fatal(err)
	}
	if len(info.Query.Identity) != 1 || info.Query.Identity[0].Name != "gavel" || info.Query.Identity[0].Category != "component" {
		t.Errorf("identity = %+v", info.Query.Identity)
	}
	var features []string
	for _, f := range info.Query.Features {
		features = append(features, f.Var)
	}
	for _, want := range []string{"urn:xmpp:ping", "jabber:iq:version", "http://jabber.org/protocol/disco#info"} {
		if !strings.Contains(strings.Join(features, " "), want) {
			t.Errorf("feature %s missing from %v", want, features)
		}
	}
	// Without moderation there is no knock to serve: it is not advertised.
	if strings.Contains(strings.Join(features, " "), "urn:gavel:knock:0") {
		t.Errorf("knock advertised without moderation: %v", features)
	}
	if err := cl.IQ(ctx, prosodytest.Component, "get", `<ping xmlns='urn:xmpp:ping'/>`, nil); err != nil {
		t.Errorf("ping: %v", err)
	}
	var ver struct {
		Query struct {
			Name string `xml:"name"`
		} `xml:"jabber:iq:version query"`
	}
	if err := cl.IQ(ctx, prosodytest.Component, "get", `<query xmlns='jabber:iq:version'/>`, &ver); err != nil || ver.Query.Name != "gavel" {
		t.Errorf("version = %+v, %v", ver, err)
	}
	err := cl.IQ(ctx, prosodytest.Component, "get", `<query xmlns='urn:example:unknown'/>`, nil)
	var xe *xclient.Error
	if !errors.As(err, &xe) || xe.Condition != "service-unavailable" {
		t.Errorf("unknown IQ: %v, want service-unavailable", err)
	}
}

func TestReconnectAfterServerRestart(t *testing.T) {
	onEachServer(t, func(t *testing.T, srv *server) {
		for _, how := range []string{"SIGTERM", "SIGKILL"} {
			t.Run(how, func(t *testing.T) {
				srv := restartable(t, srv, prosodytest.Options{})
				r := startComponent(t, srv, nil)
				r.waitConnected(t, 5*time.Second)
				stop := srv.Stop
				if how == "SIGKILL" {
					stop = srv.Kill
				}
				if err := stop(); err != nil {
					t.Fatal(err)
				}
				deadline := time.Now().Add(5 * time.Second)
				for r.c.Connected() && time.Now().Before(deadline) {
					time.Sleep(5 * time.Millisecond)
				}
				if r.c.Connected() {
					t.Fatal("still connected after the server stopped")
				}
				time.Sleep(time.Second) // stay down a while: backoff grows
				if err := srv.Restart(); err != nil {
					t.Fatal(err)
				}
				listening := time.Now()
				r.waitConnected(t, 2*time.Second)
				t.Logf("reconnected %v after %s listened again", time.Since(listening), srv.Name)
				if got := r.logs.FilterMessage("component disconnected").Len(); got != 1 {
					t.Errorf("disconnected logged %d times, want once", got)
				}
				if r.c.Reconnects() != 1 {
					t.Errorf("reconnects = %d", r.c.Reconnects())
				}
			})
		}
	})
}

func TestWrongSecretIsRefusedAndBacksOff(t *testing.T) {
	r := startComponent(t, shared, func(o *Options) { o.Secret = []byte("not-the-secret") })
	time.Sleep(2500 * time.Millisecond)
	if r.c.Connected() {
		t.Fatal("connected with a wrong secret")
	}
	refused := r.logs.FilterMessage("component refused").FilterLevelExact(zap.WarnLevel).All()
	if len(refused) != 1 {
		t.Fatalf("refusal logged %d times at warn, want once", len(refused))
	}
	reason := refused[0].ContextMap()["reason"].(string)
	if !strings.Contains(reason, "not-authorized") || !strings.Contains(reason, "component_secret") {
		t.Errorf("reason = %q", reason)
	}
	// Backoff: 1s, then about 2s: at most 3 attempts in 2.5s.
	if n := len(r.logs.FilterMessageSnippet("component refused").All()); n > 3 {
		t.Errorf("%d attempts in 2.5s: not backing off", n)
	}
}

func TestSecondComponentWithSameNameIsRefused(t *testing.T) {
	first := startComponent(t, shared, nil)
	first.waitConnected(t, 5*time.Second)
	second := startComponent(t, shared, nil)
	deadline := time.Now().Add(3 * time.Second)
	for second.logs.FilterMessage("component refused").Len() == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	refused := second.logs.FilterMessage("component refused").All()
	if len(refused) == 0 {
		t.Fatal("second component was not refused")
	}
	if reason := refused[0].ContextMap()["reason"].(string); !strings.Contains(reason, "conflict") || !strings.Contains(reason, "second gavel") {
		t.Errorf("reason = %q", reason)
	}
	if !first.c.Connected() {
		t.Error("first component lost its connection")
	}
}
