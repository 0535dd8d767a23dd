// Package xclient is a small XMPP client on mellium for gavel's tests, demo
// and load generator: password or anonymous login over loopback, the knock,
// MUC join and leave, and a record of the presence it receives.
package xclient

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"mellium.im/sasl"
	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"
)

// NSKnock is gavel's knock namespace.
const NSKnock = "urn:gavel:knock:0"

// anonymous is SASL ANONYMOUS (RFC 4505) without trace data.
var anonymous = sasl.Mechanism{
	Name:  "ANONYMOUS",
	Start: func(*sasl.Negotiator) (bool, []byte, any, error) { return false, nil, nil, nil },
	Next: func(*sasl.Negotiator, []byte, any) (bool, []byte, any, error) {
		return false, nil, nil, nil
	},
}

// Client is one logged-in session.
type Client struct {
	JID  jid.JID
	sess *xmpp.Session
	conn net.Conn

	mu        sync.Mutex
	cond      *sync.Cond
	presences []Presence
	messages  []Message
	closed    bool
	done      chan struct{}
}

// Presence is a presence the client received.
type Presence struct {
	From        string
	Type        string
	Affiliation string
	Role        string
	JID         string // real JID, when the room shows it
	Status      []int
	Error       *Error
	Destroyed   bool
}

// Message is a message the client received.
type Message struct {
	From, Type, Body string
}

// Self reports whether the presence carries status 110 (it is about us).
func (p Presence) Self() bool { return p.has(110) }

func (p Presence) has(code int) bool {
	for _, s := range p.Status {
		if s == code {
			return true
		}
	}
	return false
}

// Error is a stanza error received by the client.
type Error struct {
	Type      string
	Condition string
	App       string // application-specific condition (e.g. gavel's reason)
	Text      string
}

func (e *Error) Error() string {
	s := e.Type + "/" + e.Condition
	if e.App != "" {
		s += " (" + e.App + ")"
	}
	if e.Text != "" {
		s += ": " + e.Text
	}
	return s
}

// Login connects to addr and authenticates as user@host with password, or
// anonymously when user is empty.
func Login(ctx context.Context, addr, user, host, password string) (*Client, error) {
	var origin jid.JID
	var err error
	if user == "" {
		origin, err = jid.New("", host, "")
	} else {
		origin, err = jid.New(user, host, "")
	}
	if err != nil {
		return nil, err
	}
	d := net.Dialer{Timeout: 5 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	mech := sasl.Plain
	if user == "" {
		mech = anonymous
	}
	features := []xmpp.StreamFeature{xmpp.SASL("", password, mech), xmpp.BindResource()}
	sess, err := xmpp.NewSession(ctx, origin.Domain(), origin, conn, xmpp.Secure, xmpp.NewNegotiator(func(*xmpp.Session, *xmpp.StreamConfig) xmpp.StreamConfig {
		return xmpp.StreamConfig{Features: features}
	}))
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("xclient: login %s: %w", origin, err)
	}
	c := &Client{JID: sess.LocalAddr(), sess: sess, conn: conn, done: make(chan struct{})}
	c.cond = sync.NewCond(&c.mu)
	go func() {
		_ = sess.Serve(xmpp.HandlerFunc(c.handle))
		c.mu.Lock()
		c.closed = true
		c.cond.Broadcast()
		c.mu.Unlock()
		close(c.done)
	}()
	return c, nil
}

// Close ends the session.
func (c *Client) Close() error {
	err := c.sess.Close()
	select {
	case <-c.done:
	case <-time.After(2 * time.Second):
	}
	c.conn.Close()
	return err
}

// Done is closed when the session has ended.
func (c *Client) Done() <-chan struct{} { return c.done }

type inPresence struct {
	XMLName xml.Name
	From    string `xml:"from,attr"`
	Type    string `xml:"type,attr"`
	X       *struct {
		Items []struct {
			Affiliation string `xml:"affiliation,attr"`
			Role        string `xml:"role,attr"`
			JID         string `xml:"jid,attr"`
		} `xml:"item"`
		Status []struct {
			Code int `xml:"code,attr"`
		} `xml:"status"`
		Destroy *struct{} `xml:"destroy"`
	} `xml:"http://jabber.org/protocol/muc#user x"`
	Error *errorEl `xml:"error"`
	Body  string   `xml:"body"`
}

type errorEl struct{ e Error }

func (e *errorEl) UnmarshalXML(d *xml.Decoder, start xml.StartElement) error {
	for _, a := range start.Attr {
		if a.Name.Local == "type" {
			e.e.Type = a.Value
		}
	}
	for {
		tok, err := d.Token()
		if err != nil {
			return err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if t.Name.Local == "text" && t.Name.Space == "urn:ietf:params:xml:ns:xmpp-stanzas" {
				if err := d.DecodeElement(&e.e.Text, &t); err != nil {
					return err
				}
				continue
			}
			if t.Name.Space == "urn:ietf:params:xml:ns:xmpp-stanzas" {
				e.e.Condition = t.Name.Local
			} else {
				e.e.App = t.Name.Local
			}
			if err := d.Skip(); err != nil {
				return err
			}
		case xml.EndElement:
			return nil
		}
	}
}

func (c *Client) handle(t xmlstream.TokenReadEncoder, start *xml.StartElement) error {
	if start.Name.Local != "presence" && start.Name.Local != "message" {
		return nil
	}
	var p inPresence
	// The handler's reader starts inside the stanza: put the start back.
	d := xml.NewTokenDecoder(xmlstream.MultiReader(xmlstream.Token(*start), t))
	if err := d.Decode(&p); err != nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if start.Name.Local == "message" {
		c.messages = append(c.messages, Message{From: p.From, Type: p.Type, Body: p.Body})
		c.cond.Broadcast()
		return nil
	}
	pr := Presence{From: p.From, Type: p.Type}
	if p.X != nil {
		if len(p.X.Items) > 0 {
			pr.Affiliation, pr.Role, pr.JID = p.X.Items[0].Affiliation, p.X.Items[0].Role, p.X.Items[0].JID
		}
		for _, s := range p.X.Status {
			pr.Status = append(pr.Status, s.Code)
		}
		pr.Destroyed = p.X.Destroy != nil
	}
	if p.Error != nil {
		e := p.Error.e
		pr.Error = &e
	}
	c.presences = append(c.presences, pr)
	c.cond.Broadcast()
	return nil
}

// WaitPresence waits for a received presence matching f (looking at every
// presence received so far, then new ones).
func (c *Client) WaitPresence(ctx context.Context, f func(Presence) bool) (Presence, error) {
	return wait(ctx, c, &c.presences, f, "presence")
}

// WaitMessage waits for a received message matching f.
func (c *Client) WaitMessage(ctx context.Context, f func(Message) bool) (Message, error) {
	return wait(ctx, c, &c.messages, f, "message")
}

// wait scans *list (guarded by c.mu) for an item matching f, waking on
// every new stanza, until ctx ends or the session closes.
func wait[T any](ctx context.Context, c *Client, list *[]T, f func(T) bool, what string) (T, error) {
	stop := context.AfterFunc(ctx, func() {
		c.mu.Lock()
		c.cond.Broadcast()
		c.mu.Unlock()
	})
	defer stop()
	c.mu.Lock()
	defer c.mu.Unlock()
	var zero T
	for seen := 0; ; {
		for ; seen < len(*list); seen++ {
			if f((*list)[seen]) {
				return (*list)[seen], nil
			}
		}
		if c.closed {
			return zero, fmt.Errorf("xclient: waiting for %s: session closed", what)
		}
		if err := ctx.Err(); err != nil {
			return zero, fmt.Errorf("xclient: waiting for %s: %w", what, err)
		}
		c.cond.Wait()
	}
}

// Presences returns a copy of every presence received so far.
func (c *Client) Presences() []Presence {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Presence(nil), c.presences...)
}

// Messages returns a copy of every message received so far.
func (c *Client) Messages() []Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Message(nil), c.messages...)
}

// Count returns how many presences and messages the client received.
func (c *Client) Count() (presences, messages int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.presences), len(c.messages)
}

// KnockResult is gavel's answer to a knock.
type KnockResult struct {
	Room        string `xml:"room,attr"`
	Affiliation string `xml:"affiliation,attr"`
	Role        string `xml:"role,attr"`
	Reason      string `xml:"reason,attr"`
	Expires     string `xml:"expires,attr"`
}

// Knock asks gavel (at component) for admission to room with token ("" for
// a guest). A refusal is returned as *Error.
func (c *Client) Knock(ctx context.Context, component, room, token string) (KnockResult, error) {
	payload := `<knock xmlns='` + NSKnock + `' room='` + escape(room) + `'>`
	if token != "" {
		payload += `<token>` + escape(token) + `</token>`
	}
	payload += `</knock>`
	var res struct {
		Knock *KnockResult `xml:"urn:gavel:knock:0 knock"`
	}
	if err := c.IQ(ctx, component, "set", payload, &res); err != nil {
		return KnockResult{}, err
	}
	if res.Knock == nil {
		return KnockResult{}, errors.New("xclient: knock result without <knock/>")
	}
	return *res.Knock, nil
}

// IQ sends an IQ with a raw XML payload and decodes the result into v (the
// <iq/> element). A stanza error is returned as *Error.
func (c *Client) IQ(ctx context.Context, to, typ, payload string, v any) error {
	toJID, err := jid.Parse(to)
	if err != nil {
		return err
	}
	d := xml.NewDecoder(strings.NewReader(payload))
	rc, err := c.sess.SendIQElement(ctx, d, stanza.IQ{To: toJID, Type: stanza.IQType(typ)})
	if err != nil {
		return err
	}
	defer rc.Close()
	var buf bytes.Buffer
	enc := xml.NewEncoder(&buf)
	if _, err := xmlstream.Copy(enc, rc); err != nil {
		return fmt.Errorf("xclient: reading IQ response: %w", err)
	}
	if err := enc.Flush(); err != nil {
		return err
	}
	var resp struct {
		Type  string   `xml:"type,attr"`
		Error *errorEl `xml:"error"`
	}
	if err := xml.Unmarshal(buf.Bytes(), &resp); err != nil {
		return fmt.Errorf("xclient: reading IQ response: %w", err)
	}
	if resp.Type == "error" {
		if resp.Error == nil {
			return &Error{Type: "cancel", Condition: "undefined-condition"}
		}
		e := resp.Error.e
		return &e
	}
	if v != nil {
		return xml.Unmarshal(buf.Bytes(), v)
	}
	return nil
}

// Join enters room with nick and waits for the room's answer: the
// self-presence, or an error presence returned as *Error.
func (c *Client) Join(ctx context.Context, room, nick string) (Presence, error) {
	return c.JoinWith(ctx, room, nick, "")
}

// JoinWith is Join with extra raw XML children in the join presence (what
// a client may add, such as a forged <identity/>).
func (c *Client) JoinWith(ctx context.Context, room, nick, extra string) (Presence, error) {
	occupant := room + "/" + nick
	// Only an answer to this join counts: an earlier session under the
	// same nick left its self-presence in the history.
	c.mu.Lock()
	skip := len(c.presences)
	c.mu.Unlock()
	if err := c.Send(ctx, `<presence to='`+escape(occupant)+`'><x xmlns='http://jabber.org/protocol/muc'><history maxstanzas='0'/></x>`+extra+`</presence>`); err != nil {
		return Presence{}, err
	}
	p, err := c.WaitPresence(ctx, func(p Presence) bool {
		if skip > 0 {
			skip--
			return false
		}
		return strings.EqualFold(p.From, occupant) && (p.Self() || p.Type == "error")
	})
	if err != nil {
		return p, err
	}
	if p.Error != nil {
		return p, p.Error
	}
	return p, nil
}

// Leave sends unavailable presence to the room.
func (c *Client) Leave(ctx context.Context, room, nick string) error {
	return c.Send(ctx, `<presence type='unavailable' to='`+escape(room+"/"+nick)+`'/>`)
}

// Send writes raw XML (one stanza) to the server.
func (c *Client) Send(ctx context.Context, raw string) error {
	return c.sess.Send(ctx, xml.NewDecoder(strings.NewReader(raw)))
}

func escape(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}
