package component

import (
	"go.uber.org/zap"
)

// handle dispatches one incoming stanza. It runs on the read loop, so it
// must not wait on the server: small answers are written at once, anything
// that needs round trips is handed to other goroutines.
func (c *Component) handle(sess *session, st *stanza) {
	switch st.XMLName.Local {
	case "iq":
		if st.Type != "get" && st.Type != "set" {
			return // stray result or error: nobody waits for it
		}
		c.handleIQ(sess, st)
	case "presence":
		if m := c.opts.Moderation; m != nil {
			m.presence(st)
		}
	case "message":
		if st.Type == "error" {
			c.log.Debug("message bounced", zap.String("from", st.From))
		}
	}
}

func (c *Component) handleIQ(sess *session, st *stanza) {
	switch {
	case st.Ping != nil && st.Type == "get":
		c.reply(sess, st, nil)
	case st.DiscoInfo != nil && st.Type == "get":
		c.discoInfo(sess, st)
	case st.DiscoItems != nil && st.Type == "get":
		c.discoItems(sess, st)
	case st.Version != nil && st.Type == "get":
		c.reply(sess, st, func(b *xb) {
			b.open("query", "xmlns", nsVersion).elem("name", "gavel").elem("version", Version).close("query")
		})
	case st.Knock != nil && st.Type == "set" && c.opts.Moderation != nil:
		c.opts.Moderation.knock(sess, st)
	case st.Command != nil && st.Type == "set" && c.opts.Moderation != nil:
		c.opts.Moderation.command(sess, st)
	default:
		c.replyError(sess, st, &stanzaError{Type: "cancel", Condition: "service-unavailable"})
	}
}

// reply answers an IQ with a result carrying payload (may be nil).
func (c *Component) reply(sess *session, st *stanza, payload func(*xb)) {
	var b xb
	b.open("iq", "from", st.To, "to", st.From, "type", "result", "id", st.ID)
	if payload != nil {
		payload(&b)
	}
	b.close("iq")
	_ = sess.write(b.Bytes())
}

// replyError answers a stanza with an error.
func (c *Component) replyError(sess *session, st *stanza, e *stanzaError) {
	var b xb
	b.open(st.XMLName.Local, "from", st.To, "to", st.From, "type", "error", "id", st.ID)
	e.xml(&b)
	b.close(st.XMLName.Local)
	_ = sess.write(b.Bytes())
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
			for _, f := range []string{nsDiscoInfo, nsDiscoItems, nsPing, nsVersion, nsCommands, NSKnock} {
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
