package component

import (
	"encoding/xml"

	"go.uber.org/zap"
)

// This file holds the component's own answers (ping, version, disco) and
// the reply helpers every feature uses. Features register their handlers
// on the mux (mux.go); nothing here knows about knocks or commands.
//
// The answers are written by hand rather than with mellium's ping,
// version and disco handlers: those are mux.IQHandlers that write to the
// xmlstream.TokenReadEncoder of mellium's Session.Serve, and gavel runs
// its own read loop (Serve answers every IQ its handler did not answer in
// line with service-unavailable, which rules out answering knocks off the
// read loop). Feeding them would take a fake encoder per stanza.

var (
	namePing       = xml.Name{Space: nsPing, Local: "ping"}
	nameVersion    = xml.Name{Space: nsVersion, Local: "query"}
	nameDiscoInfo  = xml.Name{Space: nsDiscoInfo, Local: "query"}
	nameDiscoItems = xml.Name{Space: nsDiscoItems, Local: "query"}
	nameKnock      = xml.Name{Space: NSKnock, Local: "knock"}
	nameCommand    = xml.Name{Space: nsCommands, Local: "command"}
)

// routes are the handlers of the component itself.
func (c *Component) routes() []muxOption {
	return []muxOption{
		handleIQ("get", namePing, HandlerFunc(func(sess *session, st *stanza) { c.reply(sess, st, nil) })),
		handleIQ("get", nameVersion, HandlerFunc(func(sess *session, st *stanza) {
			c.reply(sess, st, func(b *xb) {
				b.open("query", "xmlns", nsVersion).elem("name", "gavel").elem("version", Version).close("query")
			})
		})),
		handleIQ("get", nameDiscoInfo, HandlerFunc(c.discoInfo)),
		handleIQ("get", nameDiscoItems, HandlerFunc(c.discoItems)),
		handleMessage("error", xml.Name{}, HandlerFunc(func(_ *session, st *stanza) {
			c.log.Debug("message bounced", zap.String("from", st.From))
		})),
	}
}

// reply answers an IQ with a result carrying payload (may be nil). It
// never waits for the socket: the answer is queued (session.queue).
func (c *Component) reply(sess *session, st *stanza, payload func(*xb)) {
	var b xb
	b.open("iq", "from", st.To, "to", st.From, "type", "result", "id", st.ID)
	if payload != nil {
		payload(&b)
	}
	b.close("iq")
	c.queue(sess, st, b.Bytes())
}

// replyError answers a stanza with an error. It never waits for the
// socket.
func (c *Component) replyError(sess *session, st *stanza, e *stanzaError) {
	var b xb
	b.open(st.XMLName.Local, "from", st.To, "to", st.From, "type", "error", "id", st.ID)
	e.xml(&b)
	b.close(st.XMLName.Local)
	c.queue(sess, st, b.Bytes())
}

func (c *Component) queue(sess *session, st *stanza, b []byte) {
	if err := sess.queue(b); err == errQueueFull {
		c.log.Warn("answer dropped: the server is not reading", zap.String("to", st.From), zap.String("id", st.ID))
	}
}

func (c *Component) discoInfo(sess *session, st *stanza) {
	node := st.DiscoInfo.Node
	cmd := c.opts.Moderation.commandNode(st.From, node)
	if node != "" && node != nsCommands && cmd == nil {
		c.replyError(sess, st, &stanzaError{Type: "cancel", Condition: "item-not-found"})
		return
	}
	c.reply(sess, st, func(b *xb) {
		b.open("query", "xmlns", nsDiscoInfo, "node", node)
		switch {
		case node == "":
			b.empty("identity", "category", "component", "type", "generic", "name", "gavel")
			for _, f := range c.mux.features() {
				b.empty("feature", "var", f)
			}
		case node == nsCommands:
			b.empty("identity", "category", "automation", "type", "command-list", "name", "gavel commands")
		default:
			b.empty("identity", "category", "automation", "type", "command-node", "name", cmd.name)
			b.empty("feature", "var", nsCommands)
			b.empty("feature", "var", nsData)
		}
		b.close("query")
	})
}

func (c *Component) discoItems(sess *session, st *stanza) {
	node := st.DiscoItems.Node
	if node != "" && node != nsCommands {
		c.replyError(sess, st, &stanzaError{Type: "cancel", Condition: "item-not-found"})
		return
	}
	c.reply(sess, st, func(b *xb) {
		b.open("query", "xmlns", nsDiscoItems, "node", node)
		if node == nsCommands {
			for _, cmd := range c.opts.Moderation.commandItems(st.From) {
				b.empty("item", "jid", c.opts.Domain, "node", cmd.node, "name", cmd.name)
			}
		}
		b.close("query")
	})
}
