package component

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gavelxmpp/gavel/internal/prosodytest"
	"github.com/gavelxmpp/gavel/internal/xclient"
)

// The module's own waiting for gavel (mod_gavel_bridge.lua: ask, expire,
// take_answer), tested against a stand-in for gavel on the component link
// that answers only when and what the test says.

// rawIQ is an IQ the stand-in received.
type rawIQ struct {
	Type string `xml:"type,attr"`
	ID   string `xml:"id,attr"`
	From string `xml:"from,attr"`
	To   string `xml:"to,attr"`
	Join *struct {
		Room string `xml:"room,attr"`
		JID  string `xml:"jid,attr"`
	} `xml:"urn:gavel:bridge:0 join"`
}

// rawGavel is connected to the server as gavel's component.
type rawGavel struct {
	conn net.Conn
	wmu  sync.Mutex
	iqs  chan rawIQ // every IQ but room events
	done chan struct{}
}

// connectRawGavel logs in to srv's component port as gavel. Right after
// a test that ran gavel the server may not have seen that connection end
// yet (conflict): it tries again for a while.
func connectRawGavel(t *testing.T, srv *server) *rawGavel {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		g, err := dialRawGavel(srv)
		if err == nil {
			t.Cleanup(g.close)
			return g
		}
		if time.Now().After(deadline) {
			t.Fatalf("component login: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func dialRawGavel(srv *server) (*rawGavel, error) {
	conn, err := net.DialTimeout("tcp", srv.ComponentAddr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	fail := func(err error) (*rawGavel, error) { conn.Close(); return nil, err }
	if _, err := fmt.Fprintf(conn, `<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' to='%s'>`, prosodytest.Component); err != nil {
		return fail(err)
	}
	d := xml.NewDecoder(conn)
	var streamID string
	for streamID == "" {
		tok, err := d.Token()
		if err != nil {
			return fail(err)
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "stream" {
			for _, a := range se.Attr {
				if a.Name.Local == "id" {
					streamID = a.Value
				}
			}
			if streamID == "" {
				return fail(errors.New("stream header without id"))
			}
		}
	}
	sum := sha1.Sum([]byte(streamID + srv.Secret))
	if _, err := fmt.Fprintf(conn, "<handshake>%s</handshake>", hex.EncodeToString(sum[:])); err != nil {
		return fail(err)
	}
	for {
		tok, err := d.Token()
		if err != nil {
			return fail(err)
		}
		if se, ok := tok.(xml.StartElement); ok {
			if se.Name.Local == "handshake" {
				break
			}
			return fail(fmt.Errorf("handshake answered with <%s/>", se.Name.Local))
		}
	}
	_ = conn.SetDeadline(time.Time{})
	g := &rawGavel{conn: conn, iqs: make(chan rawIQ, 64), done: make(chan struct{})}
	go g.read(d)
	return g, nil
}

func (g *rawGavel) read(d *xml.Decoder) {
	defer close(g.done)
	for {
		tok, err := d.Token()
		if err != nil {
			return
		}
		se, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		if se.Name.Local != "iq" {
			if err := d.Skip(); err != nil {
				return
			}
			continue
		}
		var iq rawIQ
		if err := d.DecodeElement(&iq, &se); err != nil {
			return
		}
		if iq.Type == "set" && iq.Join == nil {
			// A room event (created, destroyed): not waited for.
			continue
		}
		g.iqs <- iq
	}
}

// send writes one raw stanza.
func (g *rawGavel) send(t *testing.T, raw string) {
	t.Helper()
	g.wmu.Lock()
	defer g.wmu.Unlock()
	if _, err := io.WriteString(g.conn, raw); err != nil {
		t.Fatalf("component write: %v", err)
	}
}

// next returns the next IQ gavel got, within d.
func (g *rawGavel) next(t *testing.T, d time.Duration) rawIQ {
	t.Helper()
	select {
	case iq := <-g.iqs:
		return iq
	case <-time.After(d):
		t.Fatalf("no IQ to gavel within %v", d)
	}
	return rawIQ{}
}

// quiet fails when anything but a room event reaches gavel within d.
func (g *rawGavel) quiet(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case iq := <-g.iqs:
		t.Errorf("gavel got %+v, want nothing", iq)
	case <-time.After(d):
	}
}

// result answers iq with a join result.
func (g *rawGavel) result(t *testing.T, iq rawIQ, affiliation, role string) {
	t.Helper()
	g.send(t, fmt.Sprintf(`<iq type='result' from='%s' to='%s' id='%s'><join xmlns='%s' room='%s' affiliation='%s' role='%s'/></iq>`,
		iq.To, iq.From, iq.ID, NSBridge, iq.Join.Room, affiliation, role))
}

func (g *rawGavel) close() {
	g.wmu.Lock()
	_, _ = io.WriteString(g.conn, "</stream:stream>")
	g.wmu.Unlock()
	// The server closes its side: it no longer counts gavel as connected.
	select {
	case <-g.done:
	case <-time.After(5 * time.Second):
	}
	g.conn.Close()
}

// bridgeShell evaluates a Lua expression in srv (a bridge Prosody) and
// returns what the admin shell prints.
func bridgeShell(t *testing.T, srv *server, expr string) string {
	t.Helper()
	v, ok := bridgeServers.Load(srv.Name + "\x00") // the default bridge Prosody (sharedBridge)
	if !ok || v.(*bridgeServer).p == nil {
		t.Fatalf("%s is not a bridge Prosody", srv.Name)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := v.(*bridgeServer).p.ProsodyCtl(ctx, "shell", ">"+expr)
	if err != nil {
		t.Fatalf("prosodyctl shell: %v: %s", err, out)
	}
	return strings.TrimSpace(string(out))
}

// waitNothingInFlight waits until the module holds no request: none
// waited for, no deadline queued (answered requests leave theirs until it
// passes), no answer kept.
func waitNothingInFlight(t *testing.T, srv *server) {
	t.Helper()
	expr := fmt.Sprintf(`(function() local w, q, a = prosody.hosts[%q].modules.gavel_bridge.requests_in_flight(); return ("in flight %%d, queued %%d, unread %%d"):format(w, q, a) end)()`, prosodytest.MUC)
	var last string
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if last = bridgeShell(t, srv, expr); strings.Contains(last, "in flight 0, queued 0, unread 0") {
			return
		}
	}
	t.Errorf("module still holds requests: %q", last)
}

// moduleErrors returns the lines of srv's log written since offset that
// report an error.
func moduleErrors(srv *server, offset int) []string {
	var bad []string
	log := srv.Log()
	if offset > len(log) {
		offset = 0
	}
	for _, line := range strings.Split(log[offset:], "\n") {
		if strings.Contains(line, "\terror\t") || strings.Contains(line, "Traceback") {
			bad = append(bad, line)
		}
	}
	return bad
}

// When gavel does not answer within gavel_bridge_timeout (2 s), the join
// is refused (fail closed). gavel's answer after that is dropped without
// an error to anyone and without a trace in the module; an answer from
// anyone but gavel is not taken; and the next join waits and is answered
// as usual.
func TestBridgeTimeoutAndLateAnswer(t *testing.T) {
	onEachProsody(t, func(t *testing.T, srv *server) {
		logStart := len(srv.Log())
		g := connectRawGavel(t, srv)
		focus := loginFocus(t, srv)
		room := newRoom("")
		joinWith(t, focus, room, "focus", "")

		slow := loginToken(t, srv, mint(t, room, true, nil))
		start := time.Now()
		joined := make(chan error, 1)
		go func() { _, err := slow.Join(ctxT(t, 10*time.Second), room, "slow"); joined <- err }()
		iq := g.next(t, 5*time.Second)
		if iq.Type != "set" || iq.From != prosodytest.MUC || iq.To != prosodytest.Component || iq.Join.JID != slow.JID.String() || iq.ID == "" {
			t.Fatalf("join request %+v", iq)
		}
		err := <-joined
		took := time.Since(start)
		var xe *xclient.Error
		if !errors.As(err, &xe) || xe.Type != "wait" || xe.Condition != "service-unavailable" {
			t.Errorf("join without an answer: %v, want wait/service-unavailable", err)
		}
		if took < 1900*time.Millisecond || took > 4*time.Second {
			t.Errorf("join refused after %v, want about the 2 s timeout", took)
		}

		// The answer comes too late: nothing comes back to gavel (no
		// error), the joiner is not let in.
		g.result(t, iq, "owner", "moderator")
		g.quiet(t, 500*time.Millisecond)
		for _, p := range focus.Presences() {
			if strings.EqualFold(p.From, room+"/slow") {
				t.Errorf("the timed-out joiner entered: %+v", p)
			}
		}

		// An answer from a client, with the right id, is not gavel's.
		next := loginToken(t, srv, mint(t, room, false, nil))
		type joinResult struct {
			p   xclient.Presence
			err error
		}
		nextJoined := make(chan joinResult, 1)
		go func() {
			p, err := next.Join(ctxT(t, 10*time.Second), room, "next")
			nextJoined <- joinResult{p, err}
		}()
		iq2 := g.next(t, 5*time.Second)
		if iq2.ID == iq.ID {
			t.Errorf("two requests with the id %q", iq.ID)
		}
		forger := login(t, srv)
		if err := forger.Send(ctxT(t, 5*time.Second), fmt.Sprintf(`<iq type='result' to='%s' id='%s'><join xmlns='%s' room='%s' affiliation='owner' role='moderator'/></iq>`,
			prosodytest.MUC, iq2.ID, NSBridge, room)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond)
		select {
		case r := <-nextJoined:
			t.Fatalf("the join went on without gavel's answer: %+v %v", r.p, r.err)
		default:
		}
		g.result(t, iq2, "none", "participant")
		r := <-nextJoined
		if r.err != nil || r.p.Affiliation == "owner" || r.p.Role != "participant" {
			t.Errorf("join answered by gavel: %+v %v, want participant", r.p, r.err)
		}

		waitNothingInFlight(t, srv)
		if bad := moduleErrors(srv, logStart); len(bad) > 0 {
			t.Errorf("errors in Prosody's log:\n%s", strings.Join(bad, "\n"))
		}
	})
}

// A room destroyed while a joiner waits for gavel stays destroyed: gavel's
// answer is not applied, the joiner gets item-not-found.
func TestBridgeDestroyedWhileWaiting(t *testing.T) {
	onEachProsody(t, func(t *testing.T, srv *server) {
		g := connectRawGavel(t, srv)
		focus := loginFocus(t, srv)
		room := newRoom("")
		joinWith(t, focus, room, "focus", "")

		cl := loginToken(t, srv, mint(t, room, true, nil))
		joined := make(chan error, 1)
		go func() { _, err := cl.Join(ctxT(t, 10*time.Second), room, "late"); joined <- err }()
		iq := g.next(t, 5*time.Second)
		if err := focus.IQ(ctxT(t, 5*time.Second), room, "set", `<query xmlns='http://jabber.org/protocol/muc#owner'><destroy/></query>`, nil); err != nil {
			t.Fatalf("destroy: %v", err)
		}
		g.result(t, iq, "owner", "moderator")
		err := <-joined
		var xe *xclient.Error
		if !errors.As(err, &xe) || xe.Type != "cancel" || xe.Condition != "item-not-found" {
			t.Errorf("join into a room destroyed meanwhile: %v, want cancel/item-not-found", err)
		}
		waitNothingInFlight(t, srv)
	})
}
