package component

import (
	"encoding/xml"
	"fmt"
	"slices"
)

// Handler serves one kind of incoming stanza. It runs on the read loop: it
// must not wait on the server. Answers go out through reply and
// replyError (which never block the read loop); work that needs round
// trips is handed to another goroutine.
type Handler interface {
	HandleStanza(sess *session, st *stanza)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(sess *session, st *stanza)

// HandleStanza calls f(sess, st).
func (f HandlerFunc) HandleStanza(sess *session, st *stanza) { f(sess, st) }

// route is what a handler is registered for: the stanza kind (iq,
// message, presence), its type ("" for any) and the name of its payload,
// the first child element (the zero name for any).
type route struct {
	kind, typ string
	payload   xml.Name
}

func (r route) String() string {
	return fmt.Sprintf("%s type=%q payload={%s}%s", r.kind, r.typ, r.payload.Space, r.payload.Local)
}

// stanzaMux dispatches stanzas to the handlers features registered at
// start-up. An IQ get or set that nothing handles is answered with
// service-unavailable; other stanzas nothing handles are dropped.
type stanzaMux struct {
	routes map[route]Handler
}

// muxOption registers a handler on a stanzaMux.
type muxOption func(*stanzaMux)

// newMux builds a mux from opts. A nil handler or two handlers for the same
// route is a programming error: it panics, at start-up.
func newMux(opts ...muxOption) *stanzaMux {
	m := &stanzaMux{routes: map[route]Handler{}}
	for _, o := range opts {
		o(m)
	}
	return m
}

func (m *stanzaMux) add(r route, h Handler) {
	if h == nil {
		panic("component: nil handler for " + r.String())
	}
	if f, ok := h.(HandlerFunc); ok && f == nil {
		panic("component: nil handler for " + r.String())
	}
	if _, dup := m.routes[r]; dup {
		panic("component: two handlers for " + r.String())
	}
	m.routes[r] = h
}

// handleIQ registers h for IQs of type typ (get or set) whose payload is
// named payload.
func handleIQ(typ string, payload xml.Name, h Handler) muxOption {
	if typ != "get" && typ != "set" {
		panic("component: IQ handlers serve get or set, not " + typ)
	}
	return func(m *stanzaMux) { m.add(route{kind: "iq", typ: typ, payload: payload}, h) }
}

// handleMessage registers h for messages of type typ ("" for any) whose
// first child is named payload (the zero name for any).
func handleMessage(typ string, payload xml.Name, h Handler) muxOption {
	return func(m *stanzaMux) { m.add(route{kind: "message", typ: typ, payload: payload}, h) }
}

// handlePresence registers h for every presence.
func handlePresence(h Handler) muxOption {
	return func(m *stanzaMux) { m.add(route{kind: "presence"}, h) }
}

// lookup finds the handler for st: the most specific registration first.
func (m *stanzaMux) lookup(st *stanza) Handler {
	kind := st.XMLName.Local
	for _, r := range []route{
		{kind, st.Type, st.payload},
		{kind, "", st.payload},
		{kind, st.Type, xml.Name{}},
		{kind, "", xml.Name{}},
	} {
		if kind == "iq" && r.typ == "" {
			continue // an IQ handler is for get or for set
		}
		if h := m.routes[r]; h != nil {
			return h
		}
	}
	return nil
}

// serve dispatches one stanza that is not the answer to an IQ of gavel's.
func (c *Component) serveStanza(sess *session, st *stanza) {
	if h := c.mux.lookup(st); h != nil {
		h.HandleStanza(sess, st)
		return
	}
	if st.XMLName.Local == "iq" && (st.Type == "get" || st.Type == "set") {
		c.replyError(sess, st, &stanzaError{Type: "cancel", Condition: "service-unavailable"})
	}
	// Anything else (stray results and errors, unhandled messages and
	// presence) needs no answer.
}

// features lists the namespaces of the IQ payloads handlers serve, for
// disco#info.
func (m *stanzaMux) features() []string {
	var out []string
	for r := range m.routes {
		if r.kind == "iq" && r.payload.Space != "" && !slices.Contains(out, r.payload.Space) {
			out = append(out, r.payload.Space)
		}
	}
	slices.Sort(out)
	return out
}
