package component

import (
	"bytes"
	"encoding/xml"
	"testing"
)

// FuzzStanza feeds arbitrary stanzas through the decoder gavel's read loop
// uses and the routing that follows. Nothing may panic, and a stanza that
// is well-formed XML must never fail to decode (that would end the session).
func FuzzStanza(f *testing.F) {
	for _, s := range []string{
		`<presence from='r@conference.example.test/n' to='mod.example.test/gavel-1'><x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='owner' role='moderator' jid='a@b/c'/><status code='110'/><status code='abc'/></x></presence>`,
		`<iq type='set' id='1' from='a@b/c'><knock xmlns='urn:gavel:knock:0' room='[t]r@conference.example.test'><token>x.y.z</token></knock></iq>`,
		`<iq type='error' id='2'><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>t</text><x xmlns='urn:other'/></error></iq>`,
		`<iq type='set' id='3'><command xmlns='http://jabber.org/protocol/commands' node='ban-user'><x xmlns='jabber:x:data' type='submit'><field var='user'><value>u</value><value>v</value></field></x></command></iq>`,
		`<presence><identity><user><id>1</id><moderator>true</moderator></user><group>g</group></identity></presence>`,
		`<message from='conference.example.test'><occupant xmlns='urn:gavel:bridge:0' from='r@conference.example.test/n' type='unavailable'><x xmlns='http://jabber.org/protocol/muc#user'><item jid='a@b/c' affiliation='none' role='none'/><status code='307'/><destroy/></x><identity><user><id>1</id></user></identity></occupant></message>`,
		`<iq type='result' id='4'><occupants xmlns='urn:gavel:bridge:0' room='r@c' exists='true'><occupant from='r@c/n'><x xmlns='http://jabber.org/protocol/muc#user'><item jid='a@b/c'/></x></occupant></occupants></iq>`,
		`<iq type='result' id='5'><rooms xmlns='urn:gavel:bridge:0'><room jid='r@c'/><room/></rooms></iq>`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		d := xml.NewDecoder(bytes.NewReader(data))
		tok, err := d.Token()
		if err != nil {
			return
		}
		start, ok := tok.(xml.StartElement)
		if !ok {
			return
		}
		// Only well-formed input reaches gavel: the server parsed it.
		if !wellFormed(data) {
			return
		}
		st, err := decodeStanza(d, start)
		if err != nil {
			t.Fatalf("well-formed stanza failed to decode: %v\n%s", err, data)
		}
		newMux(append((&Component{}).routes(), handlePresence(HandlerFunc(func(*session, *stanza) {})))...).lookup(st)
		st.MUCUser.has(110)
		if st.BridgeOccupant != nil {
			st.BridgeOccupant.presence().MUCUser.has(303)
		}
		if st.Command != nil {
			st.Command.Form.value("user")
		}
		_ = bareOf(st.From)
		_ = domainOf(st.From)
		if st.Error != nil {
			_ = st.Error.Error()
		}
	})
}

func wellFormed(data []byte) bool {
	d := xml.NewDecoder(bytes.NewReader(data))
	depth := 0
	for {
		tok, err := d.Token()
		if err != nil {
			return depth == 0 && err.Error() == "EOF"
		}
		switch tok.(type) {
		case xml.StartElement:
			depth++
		case xml.EndElement:
			depth--
			if depth == 0 {
				// one element only
				_, err := d.Token()
				return err != nil && err.Error() == "EOF"
			}
		}
	}
}
