package component

import (
	"bytes"
	"encoding/xml"
	"strconv"
)

// Namespaces gavel speaks.
const (
	// NSKnock is the namespace of gavel's knock protocol (docs/protocol.md).
	NSKnock = "urn:gavel:knock:0"

	nsMUC        = "http://jabber.org/protocol/muc"
	nsMUCUser    = "http://jabber.org/protocol/muc#user"
	nsMUCAdmin   = "http://jabber.org/protocol/muc#admin"
	nsMUCOwner   = "http://jabber.org/protocol/muc#owner"
	nsDiscoInfo  = "http://jabber.org/protocol/disco#info"
	nsDiscoItems = "http://jabber.org/protocol/disco#items"
	nsCommands   = "http://jabber.org/protocol/commands"
	nsData       = "jabber:x:data"
	nsPing       = "urn:xmpp:ping"
	nsVersion    = "jabber:iq:version"
	nsStanzas    = "urn:ietf:params:xml:ns:xmpp-stanzas"
)

// stanza is one incoming stanza, decoded in a single pass into the parts
// gavel reads. Unknown children land in Other.
type stanza struct {
	XMLName xml.Name
	From    string `xml:"from,attr"`
	To      string `xml:"to,attr"`
	ID      string `xml:"id,attr"`
	Type    string `xml:"type,attr"`

	MUCUser    *mucUser      `xml:"http://jabber.org/protocol/muc#user x"`
	Identity   *identityEl   `xml:"identity"`
	Error      *stanzaError  `xml:"error"`
	Knock      *knockEl      `xml:"urn:gavel:knock:0 knock"`
	Ping       *struct{}     `xml:"urn:xmpp:ping ping"`
	DiscoInfo  *discoQuery   `xml:"http://jabber.org/protocol/disco#info query"`
	DiscoItems *discoQuery   `xml:"http://jabber.org/protocol/disco#items query"`
	Command    *commandEl    `xml:"http://jabber.org/protocol/commands command"`
	Version    *versionEl    `xml:"jabber:iq:version query"`
	AdminQuery *adminQuery   `xml:"http://jabber.org/protocol/muc#admin query"`
	Probe      *probeEl      `xml:"urn:gavel:instance:0 probe"`
	BridgeJoin *bridgeJoinEl `xml:"urn:gavel:bridge:0 join"`
	BridgeRoom *bridgeRoomEl `xml:"urn:gavel:bridge:0 room"`
	// A data form in a message: a host's answer to a held knock (lock.go).
	DataForm *dataForm `xml:"jabber:x:data x"`
	// watch.go: an occupant report, and the answers to gavel's requests.
	BridgeOccupant  *bridgeOccupantEl  `xml:"urn:gavel:bridge:0 occupant"`
	BridgeOccupants *bridgeOccupantsEl `xml:"urn:gavel:bridge:0 occupants"`
	BridgeRooms     *bridgeRoomsEl     `xml:"urn:gavel:bridge:0 rooms"`
	Other           []anyEl            `xml:",any"`

	// payload is the name of the first child element, what the mux
	// dispatches on (set by the read loop).
	payload xml.Name
}

type anyEl struct{ XMLName xml.Name }

type mucUser struct {
	Items   []mucItem   `xml:"item"`
	Status  []mucStatus `xml:"status"`
	Destroy *struct {
		JID    string `xml:"jid,attr"`
		Reason string `xml:"reason"`
	} `xml:"destroy"`
}

type mucItem struct {
	Affiliation string `xml:"affiliation,attr"`
	Role        string `xml:"role,attr"`
	JID         string `xml:"jid,attr"`
	Nick        string `xml:"nick,attr"`
}

// mucStatus is a status code. It is kept as text: a typed field would let
// any sender make decoding fail.
type mucStatus struct {
	Code string `xml:"code,attr"`
}

func (u *mucUser) has(code int) bool {
	if u == nil {
		return false
	}
	want := strconv.Itoa(code)
	for _, s := range u.Status {
		if s.Code == want {
			return true
		}
	}
	return false
}

type adminQuery struct {
	Items []mucItem `xml:"item"`
}

type identityEl struct {
	User struct {
		ID          string `xml:"id"`
		Name        string `xml:"name"`
		Email       string `xml:"email"`
		Moderator   string `xml:"moderator"`
		Affiliation string `xml:"affiliation"`
		Role        string `xml:"role"`
	} `xml:"user"`
	Group string `xml:"group"`
}

type knockEl struct {
	Room  string `xml:"room,attr"`
	Token string `xml:"token"`
}

// discoQuery is a disco#info or disco#items query, or the answer to one.
type discoQuery struct {
	Node       string `xml:"node,attr"`
	Identities []struct {
		Category string `xml:"category,attr"`
		Type     string `xml:"type,attr"`
		Name     string `xml:"name,attr"`
	} `xml:"identity"`
	Features []struct {
		Var string `xml:"var,attr"`
	} `xml:"feature"`
	Items []struct {
		JID  string `xml:"jid,attr"`
		Name string `xml:"name,attr"`
	} `xml:"item"`
	Form *dataForm `xml:"jabber:x:data x"`
}

// versionEl is a jabber:iq:version query or answer.
type versionEl struct {
	Name    string `xml:"name"`
	Version string `xml:"version"`
}

type commandEl struct {
	Node      string    `xml:"node,attr"`
	Action    string    `xml:"action,attr"`
	SessionID string    `xml:"sessionid,attr"`
	Status    string    `xml:"status,attr"`
	Form      *dataForm `xml:"jabber:x:data x"`
}

type dataForm struct {
	Type   string `xml:"type,attr"`
	Fields []struct {
		Var     string   `xml:"var,attr"`
		Values  []string `xml:"value"`
		Options []struct {
			Value string `xml:"value"`
		} `xml:"option"`
	} `xml:"field"`
}

func (f *dataForm) value(name string) string {
	if f == nil {
		return ""
	}
	for _, fl := range f.Fields {
		if fl.Var == name && len(fl.Values) > 0 {
			return fl.Values[0]
		}
	}
	return ""
}

// stanzaError is an XMPP stanza error, received or to be sent.
type stanzaError struct {
	Type      string `xml:"type,attr"`
	Condition string
	Text      string
	// App is an application-specific condition element in AppNS.
	App   string
	AppNS string
}

// UnmarshalXML reads the defined condition, text and an application condition.
func (e *stanzaError) UnmarshalXML(d *xml.Decoder, start xml.StartElement) error {
	for _, a := range start.Attr {
		if a.Name.Local == "type" {
			e.Type = a.Value
		}
	}
	for {
		tok, err := d.Token()
		if err != nil {
			return err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			switch {
			case t.Name.Space == nsStanzas && t.Name.Local == "text":
				var s string
				if err := d.DecodeElement(&s, &t); err != nil {
					return err
				}
				e.Text = s
				continue
			case t.Name.Space == nsStanzas:
				e.Condition = t.Name.Local
			default:
				e.App, e.AppNS = t.Name.Local, t.Name.Space
			}
			if err := d.Skip(); err != nil {
				return err
			}
		case xml.EndElement:
			return nil
		}
	}
}

// Error describes the error as "type/condition (app): text".
func (e *stanzaError) Error() string {
	s := "component: stanza error " + e.Type + "/" + e.Condition
	if e.App != "" {
		s += " (" + e.App + ")"
	}
	if e.Text != "" {
		s += ": " + e.Text
	}
	return s
}

// xb builds XML with every attribute value and text escaped.
type xb struct{ bytes.Buffer }

// open writes <name k='v' ...>; attrs are name, value pairs; empty values are left out.
func (b *xb) open(name string, attrs ...string) *xb {
	b.start(name, attrs)
	b.WriteByte('>')
	return b
}

// empty writes <name k='v' .../>.
func (b *xb) empty(name string, attrs ...string) *xb {
	b.start(name, attrs)
	b.WriteString("/>")
	return b
}

func (b *xb) start(name string, attrs []string) {
	b.WriteByte('<')
	b.WriteString(name)
	for i := 0; i+1 < len(attrs); i += 2 {
		if attrs[i+1] == "" {
			continue
		}
		b.WriteByte(' ')
		b.WriteString(attrs[i])
		b.WriteString("='")
		_ = xml.EscapeText(&b.Buffer, []byte(attrs[i+1]))
		b.WriteByte('\'')
	}
}

func (b *xb) close(name string) *xb {
	b.WriteString("</")
	b.WriteString(name)
	b.WriteByte('>')
	return b
}

func (b *xb) text(s string) *xb {
	_ = xml.EscapeText(&b.Buffer, []byte(s))
	return b
}

// elem writes <name>text</name>.
func (b *xb) elem(name, text string, attrs ...string) *xb {
	return b.open(name, attrs...).text(text).close(name)
}

// errorXML renders e as an <error/> child.
func (e *stanzaError) xml(b *xb) {
	b.open("error", "type", e.Type)
	b.empty(e.Condition, "xmlns", nsStanzas)
	if e.Text != "" {
		b.elem("text", e.Text, "xmlns", nsStanzas)
	}
	if e.App != "" {
		b.empty(e.App, "xmlns", e.AppNS)
	}
	b.close("error")
}

// field writes a data form field.
func field(b *xb, name, typ string, values ...string) {
	b.open("field", "var", name, "type", typ)
	for _, v := range values {
		b.elem("value", v)
	}
	b.close("field")
}
