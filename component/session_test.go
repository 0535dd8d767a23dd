package component

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"mellium.im/sasl"
	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"

	"github.com/gavelxmpp/gavel/internal/prosodytest"
	"github.com/gavelxmpp/gavel/policy"
)

// silentPeer is a logged-in client that receives IQs and answers none of
// them until released: the JID a request of gavel's is waiting on.
type silentPeer struct {
	JID     string
	ids     chan string
	release chan struct{}
}

func newSilentPeer(t *testing.T, srv *server) *silentPeer {
	t.Helper()
	user := fmt.Sprintf("silent-%d", accountSeq.Add(1))
	if err := srv.Register(user, prosodytest.Host, "pw"); err != nil {
		t.Fatal(err)
	}
	origin, _ := jid.New(user, prosodytest.Host, "")
	conn, err := net.Dial("tcp", srv.C2SAddr)
	if err != nil {
		t.Fatal(err)
	}
	features := []xmpp.StreamFeature{xmpp.SASL("", "pw", sasl.Plain), xmpp.BindResource()}
	xs, err := xmpp.NewSession(ctxT(t, 10*time.Second), origin.Domain(), origin, conn, xmpp.Secure, xmpp.NewNegotiator(func(*xmpp.Session, *xmpp.StreamConfig) xmpp.StreamConfig {
		return xmpp.StreamConfig{Features: features}
	}))
	if err != nil {
		conn.Close()
		t.Fatal(err)
	}
	p := &silentPeer{JID: xs.LocalAddr().String(), ids: make(chan string, 100), release: make(chan struct{})}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = xs.Serve(xmpp.HandlerFunc(func(_ xmlstream.TokenReadEncoder, start *xml.StartElement) error {
			if start.Name.Local != "iq" {
				return nil
			}
			for _, a := range start.Attr {
				if a.Name.Local == "id" {
					select {
					case p.ids <- a.Value:
					default:
					}
				}
			}
			<-p.release // then mellium answers service-unavailable
			return nil
		}))
	}()
	t.Cleanup(func() {
		select {
		case <-p.release:
		default:
			close(p.release)
		}
		_ = xs.Close()
		select {
		case <-done:
		case <-time.After(2 * time.Second):
		}
		conn.Close()
	})
	return p
}

// liveSession returns the running component's session.
func liveSession(t *testing.T, c *Component) *session {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sess == nil {
		t.Fatal("no session")
	}
	return c.sess
}

// A client that learns (or guesses) the id of an IQ gavel waits on and
// sends gavel a result with it must not be taken for the answer: only the
// JID the request went to can answer it.
// A write on a connection the server has dropped (Prosody stopping) means
// gavel is not connected: the room's change is sent again when gavel is
// back, and the disconnection is logged once, as a state change, rather
// than as a change the room did not answer. Found by gavel-soak's bridge
// scenario (a warning when Prosody stopped while gavel sent a change).
func TestWriteOnDroppedConnectionIsNotConnected(t *testing.T) {
	here, there := net.Pipe()
	there.Close()
	s := &session{conn: here}
	err := s.write([]byte("<iq/>"))
	if !errors.Is(err, ErrNotConnected) || !errors.Is(err, io.ErrClosedPipe) {
		t.Fatalf("write on a dropped connection: %v, want ErrNotConnected wrapping the cause", err)
	}
	if !s.closed.Load() {
		t.Error("the session is not marked closed")
	}
	if err := s.write([]byte("<iq/>")); !errors.Is(err, ErrNotConnected) {
		t.Errorf("second write: %v, want ErrNotConnected", err)
	}
}

func TestForgedIQAnswerIsDropped(t *testing.T) {
	onEachServer(t, func(t *testing.T, srv *server) {
		r := startComponent(t, srv, nil)
		r.waitConnected(t, 5*time.Second)
		sess := liveSession(t, r.c)
		victim := newSilentPeer(t, srv)
		attacker := login(t, srv)
		ctx := ctxT(t, 10*time.Second)

		wait := sess.iqAsync(prosodytest.Component, victim.JID, "get", func(b *xb) { b.empty("ping", "xmlns", nsPing) })
		var id string
		select {
		case id = <-victim.ids:
		case <-ctx.Done():
			t.Fatal("the request never reached its target")
		}
		// The strongest attacker knows the id; guesses are the same to gavel.
		forged := []string{id}
		for n := 1; n <= 20; n++ {
			forged = append(forged, fmt.Sprintf("g%d-%d", r.c.epoch, n))
		}
		for _, fid := range forged {
			for _, to := range []string{prosodytest.Component, prosodytest.Component + "/" + "gavel-1"} {
				if err := attacker.Send(ctx, `<iq type='result' id='`+fid+`' to='`+to+`'><query xmlns='http://jabber.org/protocol/disco#info'><identity category='conference' type='text'/></query></iq>`); err != nil {
					t.Fatal(err)
				}
			}
		}
		// gavel reads one stream in order: once it answers this ping, it
		// has read every forgery.
		if err := attacker.IQ(ctx, prosodytest.Component, "get", `<ping xmlns='urn:xmpp:ping'/>`, nil); err != nil {
			t.Fatal(err)
		}
		close(victim.release)
		resp, err := wait()
		if resp == nil {
			t.Fatalf("no answer: %v", err)
		}
		if !strings.EqualFold(resp.From, victim.JID) {
			t.Fatalf("gavel took an answer from %s for its request to %s", resp.From, victim.JID)
		}
		var se *stanzaError
		if !errors.As(err, &se) || se.Condition != "service-unavailable" {
			t.Errorf("answer = %v, want the victim's service-unavailable", err)
		}
		if got := metricValue(r.c.metrics.DroppedIQs); got < 2 {
			t.Errorf("dropped answers = %v, want the forgeries with the real id counted", got)
		}
		if n := r.c.PendingIQs(); n != 0 {
			t.Errorf("%d IQs still pending", n)
		}
	})
}

// IQs whose wait is dropped, and discovery's fire-and-forget cancel, leave
// nothing in the pending table: it returns to zero.
func TestPendingIQsReturnToZero(t *testing.T) {
	t.Run("abandoned waits", func(t *testing.T) {
		r := startComponent(t, shared, func(o *Options) { o.iqTimeout = 300 * time.Millisecond })
		r.waitConnected(t, 5*time.Second)
		sess := liveSession(t, r.c)
		victim := newSilentPeer(t, shared)
		for range 20 {
			_ = sess.iqAsync(prosodytest.Component, victim.JID, "get", func(b *xb) { b.empty("ping", "xmlns", nsPing) })
		}
		if n := r.c.PendingIQs(); n != 20 {
			t.Errorf("%d pending right after sending 20", n)
		}
		waitPending(t, r.c, 0, 3*time.Second)
	})
	t.Run("discovery", func(t *testing.T) {
		g := startModeratedMUC(t, shared, MUC{Domain: prosodytest.MUC, Discover: true, DiscoverInterval: 20 * time.Millisecond},
			map[string]Tenant{"": tenant(policy.Token, policy.GuestsMember)}, nil)
		cl := login(t, shared)
		room := newRoom("")
		knockJoin(t, cl, room, mint(t, room, true, nil), "host")
		// Let discovery poll (and cancel its command) many times: each
		// poll sends two IQs, the list and the cancel.
		sess := liveSession(t, g.c)
		deadline := time.Now().Add(10 * time.Second)
		maxSeen := 0
		for sess.iqsSent.Load() < 100 && time.Now().Before(deadline) {
			maxSeen = max(maxSeen, g.c.PendingIQs())
			time.Sleep(5 * time.Millisecond)
		}
		if n := sess.iqsSent.Load(); n < 100 {
			t.Fatalf("discovery sent %d IQs in 10s", n)
		}
		if maxSeen > 4 {
			t.Errorf("up to %d IQs pending during discovery: the table grows", maxSeen)
		}
		g.stop()
		if n := g.c.PendingIQs(); n != 0 {
			t.Errorf("%d IQs pending after stop", n)
		}
		if v := metricValue(g.c.metrics.PendingIQs); v != 0 {
			t.Errorf("gavel_pending_iqs = %v after stop", v)
		}
	})
}

func waitPending(t *testing.T, c *Component, want int, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for c.PendingIQs() != want && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := c.PendingIQs(); n != want {
		t.Fatalf("%d IQs pending after %v, want %d", n, d, want)
	}
}

// A syntax error in the middle of the stream is reported as one, with its
// line; it is not taken for the server closing the connection.
func TestXMLSyntaxErrorIsReported(t *testing.T) {
	for _, tt := range []struct{ name, send string }{
		{"between stanzas", "<message from='a@example.test/x' to='mod.example.test'/>\n<1bad/>"},
		{"inside a stanza", "<message from='a@example.test/x' to='mod.example.test'>\n<body>x</bdy></message>"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { ln.Close() })
			go fakeComponentServer(ln, tt.send)
			r := startComponent(t, &server{ComponentAddr: ln.Addr().String(), Secret: "s"}, nil)
			deadline := time.Now().Add(5 * time.Second)
			for r.logs.FilterMessage("component disconnected").Len() == 0 && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			ends := r.logs.FilterMessage("component disconnected").All()
			if len(ends) == 0 {
				t.Fatal("never disconnected")
			}
			reason, _ := ends[0].ContextMap()["reason"].(string)
			if !strings.HasPrefix(reason, "component: XML syntax error from the server at line 2: ") {
				t.Errorf("reason = %q", reason)
			}
		})
	}
}

// fakeComponentServer accepts XEP-0114 connections, accepts any handshake,
// sends then and closes. It serves until ln is closed.
func fakeComponentServer(ln net.Listener, then string) {
	for {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer conn.Close()
			d := xml.NewDecoder(conn)
			for {
				tok, err := d.Token()
				if err != nil {
					return
				}
				if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "stream" {
					io.WriteString(conn, `<?xml version='1.0'?><stream:stream xmlns:stream='http://etherx.jabber.org/streams' xmlns='jabber:component:accept' id='fake' from='mod.example.test'>`)
				}
				if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "handshake" {
					_ = d.Skip()
					io.WriteString(conn, `<handshake/>`)
					io.WriteString(conn, then)
					time.Sleep(time.Second)
					return
				}
			}
		}()
	}
}

// metricValue reads a gauge's or a counter's value.
func metricValue(m prometheus.Metric) float64 {
	var d dto.Metric
	_ = m.Write(&d)
	if d.Gauge != nil {
		return d.Gauge.GetValue()
	}
	return d.Counter.GetValue()
}

// A second gavel under the same name: Prosody refuses it (conflict) and it
// keeps retrying, saying why; ejabberd accepts it and splits the stanzas,
// so the probes find it and it stops with ErrDuplicateInstance. Either way
// the first keeps running and serving.
func TestSecondInstanceRefusesToRun(t *testing.T) {
	onEachServer(t, func(t *testing.T, srv *server) {
		first := startComponent(t, srv, nil)
		first.waitConnected(t, 5*time.Second)
		if n := first.logs.FilterMessage("no instance probe came back").Len(); n != 0 {
			t.Fatalf("%s does not route probes back to the component", srv.Name)
		}
		second := startComponent(t, srv, nil)
		const refusal = "another component instance is connected as mod.example.test: refusing to run as the second one"
		switch srv.Name {
		case "prosody":
			deadline := time.Now().Add(5 * time.Second)
			const retrying = "another component instance is connected as mod.example.test: the server refused this one (conflict); retrying"
			for second.logs.FilterMessage(retrying).Len() == 0 && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			if second.logs.FilterMessage(retrying).Len() == 0 {
				t.Fatal("the second instance did not say why it was refused")
			}
			select {
			case err := <-second.done:
				second.done <- err
				t.Fatalf("the second instance stopped retrying on Prosody: %v", err)
			default:
			}
		case "ejabberd":
			var err error
			select {
			case err = <-second.done:
				second.done <- err
			case <-time.After(10 * time.Second):
				t.Fatal("the second instance is still running")
			}
			if !errors.Is(err, ErrDuplicateInstance) {
				t.Fatalf("Run = %v, want ErrDuplicateInstance", err)
			}
			if second.logs.FilterMessage(refusal).Len() != 1 {
				t.Errorf("the refusal was not logged: %v", second.logs.All())
			}
			if first.logs.FilterMessage(refusal).Len() != 0 {
				t.Error("the first instance refused too")
			}
		}
		// The first still serves, and the connection it holds is the only
		// one: every ping is answered.
		cl := login(t, srv)
		for range 10 {
			if err := cl.IQ(ctxT(t, 5*time.Second), prosodytest.Component, "get", `<ping xmlns='urn:xmpp:ping'/>`, nil); err != nil {
				t.Fatalf("ping to the first instance: %v", err)
			}
		}
		if !first.c.Connected() || first.c.Reconnects() != 0 {
			t.Errorf("first instance: connected %v, reconnects %d", first.c.Connected(), first.c.Reconnects())
		}
	})
}
