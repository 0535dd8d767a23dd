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

	"mellium.im/xmlstream"
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
		return fmt.Sprintf("component: another component is already connected as %s (conflict): is a second gavel running? Retrying, in case it is this gavel's previous connection", e.Domain)
	case "host-unknown", "improper-addressing":
		return fmt.Sprintf("component: the server does not know component %s (%s): add it to the server config", e.Domain, e.Condition)
	}
	return fmt.Sprintf("component: the server refused the handshake for %s: %s", e.Domain, e.Condition)
}

// Timeouts of the session.
const (
	// defaultIQTimeout bounds every wait for an IQ answer.
	defaultIQTimeout = 15 * time.Second
	// writeTimeout bounds one socket write: a server that does not read
	// for that long has the connection closed.
	writeTimeout = 10 * time.Second
	// replyQueue is how many answers may wait for the socket. The read
	// loop never writes: it queues, and when the queue is full (the
	// server has not read for a while) the answer is dropped.
	replyQueue = 1024
)

// errQueueFull is returned for a reply dropped because the socket is slow.
var errQueueFull = errors.New("component: the outgoing queue is full: the server is not reading")

// session is one XEP-0114 connection. mellium negotiates the stream; after
// that gavel reads stanzas itself (so IQs can be answered asynchronously) and
// writes whole stanzas under one lock. Replies go through a queue that a
// writer goroutine drains, so the read loop never waits on the socket.
type session struct {
	domain string
	conn   net.Conn
	xs     *xmpp.Session
	epoch  string

	wmu    sync.Mutex // held only around one socket write, never with another lock
	closed atomic.Bool

	iqs       *iqTracker
	iqTimeout time.Duration
	out       chan []byte   // queued replies
	quit      chan struct{} // closed by close: drain out, then stop the writer
	wdone     chan struct{} // closed when the writer has stopped
	done      chan struct{} // closed when the read loop has ended

	dropped   atomic.Uint64 // replies dropped on a full queue
	iqsSent   atomic.Uint64 // IQs sent
	closeOnce sync.Once
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
	s := &session{
		domain:    domain,
		conn:      conn,
		xs:        xs,
		epoch:     strconv.Itoa(epoch),
		iqs:       newTracker(domain),
		iqTimeout: defaultIQTimeout,
		out:       make(chan []byte, replyQueue),
		quit:      make(chan struct{}),
		wdone:     make(chan struct{}),
		done:      make(chan struct{}),
	}
	go s.writer()
	return s, nil
}

// write sends one complete stanza, waiting for the socket (at most
// writeTimeout). A failed write closes the connection: the read loop
// ends and the component reconnects.
func (s *session) write(b []byte) error {
	if s.closed.Load() {
		return ErrNotConnected
	}
	s.wmu.Lock()
	_ = s.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	_, err := s.conn.Write(b)
	s.wmu.Unlock()
	if err != nil {
		// The connection is gone: callers treat the request as one sent
		// while disconnected (sent again once gavel is back), not as one
		// the server left unanswered.
		s.closed.Store(true)
		s.conn.Close()
		return fmt.Errorf("%w: write: %w", ErrNotConnected, err)
	}
	return nil
}

// queue hands one complete stanza to the writer without waiting. It is
// what code on the read loop uses.
func (s *session) queue(b []byte) error {
	if s.closed.Load() {
		return ErrNotConnected
	}
	select {
	case s.out <- b:
		return nil
	default:
		s.dropped.Add(1)
		return errQueueFull
	}
}

// writer writes queued stanzas until the session ends; on close it
// drains the queue first.
func (s *session) writer() {
	defer close(s.wdone)
	for {
		select {
		case b := <-s.out:
			_ = s.write(b)
		case <-s.done:
			return
		case <-s.quit:
			for {
				select {
				case b := <-s.out:
					_ = s.write(b)
				default:
					return
				}
			}
		}
	}
}

// iq sends an IQ and waits for its response (at most 15 s, or until ctx
// ends). A response of type error is returned as a *stanzaError.
func (s *session) iq(ctx context.Context, from, to, typ string, payload func(*xb)) (*stanza, error) {
	return s.send(from, to, typ, payload)(ctx)
}

// iqAsync sends an IQ and returns a function that waits for its response,
// so several IQs can be in flight at once. Not calling the function leaks
// nothing: the request is forgotten at its deadline.
func (s *session) iqAsync(from, to, typ string, payload func(*xb)) func() (*stanza, error) {
	wait := s.send(from, to, typ, payload)
	return func() (*stanza, error) { return wait(context.Background()) }
}

// iqNoWait sends an IQ whose answer nobody needs: nothing is kept for it,
// and its answer, when it comes, is dropped as a stray one.
func (s *session) iqNoWait(from, to, typ string, payload func(*xb)) error {
	var b xb
	b.open("iq", "from", from, "to", to, "type", typ, "id", newID())
	payload(&b)
	b.close("iq")
	s.iqsSent.Add(1)
	return s.write(b.Bytes())
}

// PendingIQs is the number of IQs waiting for an answer.
func (s *session) pendingIQs() int { return s.iqs.Len() }

// send writes an IQ and returns the wait for its response: at most 15 s,
// or until ctx ends or the session does. Only a result or an error from
// to is an answer (iqTracker).
func (s *session) send(from, to, typ string, payload func(*xb)) func(context.Context) (*stanza, error) {
	id, p := s.iqs.track(to, s.iqTimeout)
	var b xb
	b.open("iq", "from", from, "to", to, "type", typ, "id", id)
	payload(&b)
	b.close("iq")
	s.iqsSent.Add(1)
	if err := s.write(b.Bytes()); err != nil {
		s.iqs.forget(id, p)
		return func(context.Context) (*stanza, error) { return nil, err }
	}
	return func(ctx context.Context) (*stanza, error) {
		select {
		case r := <-p.resp:
			if r.Type == "error" {
				if r.Error == nil {
					return r, &stanzaError{Type: "cancel", Condition: "undefined-condition"}
				}
				return r, r.Error
			}
			return r, nil
		case <-p.expired:
			if s.closed.Load() {
				return nil, ErrNotConnected
			}
			return nil, fmt.Errorf("component: no answer from %s within %v", to, s.iqTimeout)
		case <-s.done:
			s.iqs.forget(id, p)
			return nil, ErrNotConnected
		case <-ctx.Done():
			s.iqs.forget(id, p)
			return nil, fmt.Errorf("component: no answer from %s: %w", to, ctx.Err())
		}
	}
}

// readLoop reads stanzas until the stream ends; IQ responses go to their
// waiters, everything else to handle. It returns why the stream ended:
// io.EOF when the server closed it (or the connection), an error naming
// the problem otherwise.
func (s *session) readLoop(handle func(*stanza)) error {
	defer func() {
		s.closed.Store(true)
		s.iqs.close()
		close(s.done)
	}()
	r := s.xs.TokenReader()
	defer r.Close()
	d := xml.NewTokenDecoder(r)
	for {
		tok, err := d.Token()
		if err != nil {
			return readError(err)
		}
		start, ok := tok.(xml.StartElement)
		if !ok {
			if _, end := tok.(xml.EndElement); end {
				return io.EOF
			}
			continue // whitespace keepalive
		}
		st, err := decodeStanza(d, start)
		if err != nil {
			return readError(err)
		}
		if st.XMLName.Local == "iq" && s.iqs.deliver(st) {
			continue
		}
		handle(st)
	}
}

// readError says why reading the stream failed.
func readError(err error) error {
	var syn *xml.SyntaxError
	var se stream.Error
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return io.EOF
	case errors.As(err, &syn) && syn.Msg == "unexpected EOF":
		// The connection ended inside the stream: Prosody closes the
		// component stream without </stream:stream> when it stops.
		return io.EOF
	case errors.As(err, &syn):
		return fmt.Errorf("component: XML syntax error from the server at line %d: %s", syn.Line, syn.Msg)
	case errors.As(err, &se):
		return fmt.Errorf("component: the server closed the stream: %s", se.Err)
	}
	return err
}

// decodeStanza decodes the stanza that start opens, reading the rest of it
// from r, and notes the name of its payload for the mux.
func decodeStanza(r xml.TokenReader, start xml.StartElement) (*stanza, error) {
	st := new(stanza)
	names := &payloadName{r: r}
	d := xml.NewTokenDecoder(xmlstream.MultiReader(xmlstream.Token(start), names))
	if err := d.Decode(st); err != nil {
		return nil, err
	}
	st.payload = names.first
	if st.XMLName.Local == "message" && names.foundExt {
		// A message's body, subject or thread may come first: its
		// payload is its first extension (a submitted form, a report).
		st.payload = names.ext
	}
	return st, nil
}

// payloadName passes a stanza's tokens through and notes the name of its
// first child element, and of its first child in an extension's
// namespace.
type payloadName struct {
	r        xml.TokenReader
	depth    int
	first    xml.Name
	found    bool
	ext      xml.Name
	foundExt bool
}

func (p *payloadName) Token() (xml.Token, error) {
	tok, err := p.r.Token()
	switch t := tok.(type) {
	case xml.StartElement:
		if p.depth == 0 && !p.found {
			p.first, p.found = t.Name, true
		}
		if p.depth == 0 && !p.foundExt && !stanzaNS(t.Name.Space) {
			p.ext, p.foundExt = t.Name, true
		}
		p.depth++
	case xml.EndElement:
		p.depth--
	}
	return tok, err
}

// stanzaNS reports whether ns is the stanzas' own namespace (body,
// subject, thread, error), not an extension's.
func stanzaNS(ns string) bool {
	return ns == "" || ns == "jabber:component:accept" || ns == "jabber:client"
}

// close ends the stream politely: queued replies are written first, then
// the stream end; the connection is closed after the server's answer or
// the deadline.
func (s *session) close(deadline time.Time) {
	s.closeOnce.Do(func() { close(s.quit) })
	select {
	case <-s.wdone:
	case <-time.After(time.Until(deadline)):
	}
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

// iqThen sends an IQ and calls then with its answer in the read loop, in
// stream order with the stanzas that follow it, or with an error at the
// deadline or when the session ends. then must not block.
func (s *session) iqThen(from, to, typ string, payload func(*xb), then func(*stanza, error)) {
	id, p := s.iqs.trackThen(to, s.iqTimeout, func(r *stanza) {
		switch {
		case r == nil && s.closed.Load():
			then(nil, ErrNotConnected)
		case r == nil:
			then(nil, fmt.Errorf("component: no answer from %s within %v", to, s.iqTimeout))
		case r.Type == "error" && r.Error == nil:
			then(r, &stanzaError{Type: "cancel", Condition: "undefined-condition"})
		case r.Type == "error":
			then(r, r.Error)
		default:
			then(r, nil)
		}
	})
	var b xb
	b.open("iq", "from", from, "to", to, "type", typ, "id", id)
	payload(&b)
	b.close("iq")
	s.iqsSent.Add(1)
	if err := s.write(b.Bytes()); err != nil {
		if s.iqs.remove(id, p) {
			then(nil, err)
		}
	}
}
