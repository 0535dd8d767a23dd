package component

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"mellium.im/xmpp"
	mcomponent "mellium.im/xmpp/component"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stream"
)

// ErrNotConnected is returned for work that needs the server while gavel is
// disconnected.
var ErrNotConnected = errors.New("component: not connected to the XMPP server")

// HandshakeError is a refusal of the XEP-0114 handshake by the server.
type HandshakeError struct {
	Condition string // not-authorized, conflict, host-unknown, ...
	Domain    string
}

func (e *HandshakeError) Error() string {
	switch e.Condition {
	case "not-authorized":
		return fmt.Sprintf("component: the server refused the secret for %s (not-authorized): component.secret must equal the server's component_secret", e.Domain)
	case "conflict":
		return fmt.Sprintf("component: another component is already connected as %s (conflict): is a second gavel running?", e.Domain)
	case "host-unknown", "improper-addressing":
		return fmt.Sprintf("component: the server does not know component %s (%s): add it to the server config", e.Domain, e.Condition)
	}
	return fmt.Sprintf("component: the server refused the handshake for %s: %s", e.Domain, e.Condition)
}

// session is one XEP-0114 connection. mellium negotiates the stream; after
// that gavel reads stanzas itself (so IQs can be answered asynchronously) and
// writes whole stanzas under one lock.
type session struct {
	domain string
	conn   net.Conn
	xs     *xmpp.Session
	epoch  string

	wmu    sync.Mutex
	closed atomic.Bool

	pmu     sync.Mutex
	pending map[string]chan *stanza
	seq     atomic.Uint64
	done    chan struct{}
}

// dial connects and performs the handshake.
func dial(ctx context.Context, addr, domain string, secret []byte, epoch int) (*session, error) {
	d := net.Dialer{Timeout: 5 * time.Second, KeepAlive: 15 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("component: connect to %s: %w", addr, err)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	j, err := jid.Parse(domain)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("component: bad component JID %q: %w", domain, err)
	}
	hctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	xs, err := mcomponent.NewSession(hctx, j, secret, conn)
	if err != nil {
		conn.Close()
		var se stream.Error
		if errors.As(err, &se) {
			return nil, &HandshakeError{Condition: se.Err, Domain: domain}
		}
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("component: %s closed the connection during the handshake (is %s a component port?)", addr, addr)
		}
		return nil, fmt.Errorf("component: handshake with %s: %w", addr, err)
	}
	_ = conn.SetDeadline(time.Time{})
	return &session{
		domain:  domain,
		conn:    conn,
		xs:      xs,
		epoch:   strconv.Itoa(epoch),
		pending: map[string]chan *stanza{},
		done:    make(chan struct{}),
	}, nil
}

// write sends one complete stanza.
func (s *session) write(b []byte) error {
	if s.closed.Load() {
		return ErrNotConnected
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	_ = s.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, err := s.conn.Write(b)
	if err != nil {
		s.closed.Store(true)
		return fmt.Errorf("component: write: %w", err)
	}
	return nil
}

// nextID returns a stanza id unique for this connection.
func (s *session) nextID() string {
	return "g" + s.epoch + "-" + strconv.FormatUint(s.seq.Add(1), 36)
}

// iq sends an IQ and waits for its response (at most 15 s, or until ctx
// ends). A response of type error is returned as a *stanzaError.
func (s *session) iq(ctx context.Context, from, to, typ string, payload func(*xb)) (*stanza, error) {
	return s.send(from, to, typ, payload)(ctx)
}

// readLoop reads stanzas until the stream ends; IQ responses go to their
// waiters, everything else to handle. It returns why the stream ended.
func (s *session) readLoop(handle func(*stanza)) error {
	defer func() {
		s.closed.Store(true)
		close(s.done)
	}()
	r := s.xs.TokenReader()
	defer r.Close()
	d := xml.NewTokenDecoder(r)
	for {
		tok, err := d.Token()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return io.EOF
			}
			var se *xml.SyntaxError
			if errors.As(err, &se) {
				return io.EOF // the server closed the stream (Prosody sends a bare EOF)
			}
			return err
		}
		start, ok := tok.(xml.StartElement)
		if !ok {
			if _, end := tok.(xml.EndElement); end {
				return io.EOF
			}
			continue // whitespace keepalive
		}
		if start.Name.Space == stream.NS && start.Name.Local == "error" {
			var se stream.Error
			if err := d.DecodeElement(&se, &start); err != nil {
				return err
			}
			return fmt.Errorf("component: the server closed the stream: %s", se.Err)
		}
		st := new(stanza)
		if err := d.DecodeElement(st, &start); err != nil {
			return fmt.Errorf("component: malformed stanza from server: %w", err)
		}
		if st.XMLName.Local == "iq" && (st.Type == "result" || st.Type == "error") {
			s.pmu.Lock()
			ch, ok := s.pending[st.ID]
			s.pmu.Unlock()
			if ok {
				select {
				case ch <- st:
				default:
				}
				continue
			}
		}
		handle(st)
	}
}

// close ends the stream politely and closes the connection after the
// server's answer or the deadline.
func (s *session) close(deadline time.Time) {
	if !s.closed.Swap(true) {
		s.wmu.Lock()
		_ = s.conn.SetWriteDeadline(deadline)
		_, _ = io.WriteString(s.conn, "</stream:stream>")
		s.wmu.Unlock()
	}
	_ = s.conn.SetReadDeadline(deadline)
	select {
	case <-s.done:
	case <-time.After(time.Until(deadline)):
	}
	s.conn.Close()
}

// iqAsync sends an IQ and returns a function that waits for its response,
// so several IQs can be in flight at once.
func (s *session) iqAsync(from, to, typ string, payload func(*xb)) func() (*stanza, error) {
	wait := s.send(from, to, typ, payload)
	return func() (*stanza, error) { return wait(context.Background()) }
}

// send writes an IQ and returns the wait for its response: at most 15 s,
// or until ctx ends or the session does.
func (s *session) send(from, to, typ string, payload func(*xb)) func(context.Context) (*stanza, error) {
	id := s.nextID()
	ch := make(chan *stanza, 1)
	s.pmu.Lock()
	s.pending[id] = ch
	s.pmu.Unlock()
	forget := func() {
		s.pmu.Lock()
		delete(s.pending, id)
		s.pmu.Unlock()
	}
	var b xb
	b.open("iq", "from", from, "to", to, "type", typ, "id", id)
	payload(&b)
	b.close("iq")
	if err := s.write(b.Bytes()); err != nil {
		forget()
		return func(context.Context) (*stanza, error) { return nil, err }
	}
	return func(ctx context.Context) (*stanza, error) {
		defer forget()
		t := time.NewTimer(15 * time.Second)
		defer t.Stop()
		select {
		case r := <-ch:
			if r.Type == "error" {
				if r.Error == nil {
					return r, &stanzaError{Type: "cancel", Condition: "undefined-condition"}
				}
				return r, r.Error
			}
			return r, nil
		case <-s.done:
			return nil, ErrNotConnected
		case <-ctx.Done():
			return nil, fmt.Errorf("component: no answer from %s: %w", to, ctx.Err())
		case <-t.C:
			return nil, fmt.Errorf("component: no answer from %s within 15s", to)
		}
	}
}
