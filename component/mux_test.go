package component

import (
	"encoding/xml"
	"strings"
	"testing"
)

// Registration mistakes fail at start-up, loudly.
func TestMuxRegistrationPanics(t *testing.T) {
	h := HandlerFunc(func(*session, *stanza) {})
	for _, tt := range []struct {
		name string
		opts []muxOption
		want string
	}{
		{"nil handler", []muxOption{handleIQ("get", namePing, nil)}, "nil handler"},
		{"nil func", []muxOption{handleIQ("get", namePing, HandlerFunc(nil))}, "nil handler"},
		{"duplicate", []muxOption{handleIQ("get", namePing, h), handleIQ("get", namePing, h)}, "two handlers"},
		{"duplicate presence", []muxOption{handlePresence(h), handlePresence(h)}, "two handlers"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				r := recover()
				if s, _ := r.(string); !strings.Contains(s, tt.want) {
					t.Fatalf("panic = %v, want %q", r, tt.want)
				}
			}()
			newMux(tt.opts...)
		})
	}
}

// The most specific registration wins; an IQ handler serves its type only.
func TestMuxLookup(t *testing.T) {
	var got string
	mark := func(s string) Handler { return HandlerFunc(func(*session, *stanza) { got = s }) }
	m := newMux(
		handleIQ("get", namePing, mark("ping")),
		handleMessage("headline", nameProbe, mark("probe")),
		handleMessage("error", xml.Name{}, mark("bounce")),
		handlePresence(mark("presence")),
	)
	for _, tt := range []struct {
		st   stanza
		want string
	}{
		{stanza{XMLName: xml.Name{Local: "iq"}, Type: "get", payload: namePing}, "ping"},
		{stanza{XMLName: xml.Name{Local: "iq"}, Type: "set", payload: namePing}, ""},
		{stanza{XMLName: xml.Name{Local: "message"}, Type: "headline", payload: nameProbe}, "probe"},
		{stanza{XMLName: xml.Name{Local: "message"}, Type: "chat", payload: nameProbe}, ""},
		{stanza{XMLName: xml.Name{Local: "message"}, Type: "error", payload: nameProbe}, "bounce"},
		{stanza{XMLName: xml.Name{Local: "presence"}, Type: "unavailable"}, "presence"},
	} {
		got = ""
		if h := m.lookup(&tt.st); h != nil {
			h.HandleStanza(nil, &tt.st)
		}
		if got != tt.want {
			t.Errorf("%s type=%s payload=%v: handled by %q, want %q", tt.st.XMLName.Local, tt.st.Type, tt.st.payload, got, tt.want)
		}
	}
	if f := m.features(); len(f) != 1 || f[0] != nsPing {
		t.Errorf("features = %v", f)
	}
}
