package clients_test

import (
	"os"
	"strings"
	"testing"
)

// TestJS runs the JavaScript package's tests (node --test in clients/js):
// the error mapping on golden stanzas, and the knock from @xmpp/client over
// TCP and from Strophe.js over WebSocket against the shared Prosody and
// gavel.
func TestJS(t *testing.T) {
	node := tool(t, "the JavaScript client's tests need Node.js", "node", "nodejs")
	if _, err := os.Stat("js/node_modules/@xmpp/client"); err != nil {
		missing(t, "clients/js/node_modules is not installed (npm ci)")
	}
	h := need(t)
	fx := h.common()
	fx["xmpp"] = h.fixture(t, "xmpp")
	fx["strophe"] = h.fixture(t, "strophe")
	out := h.run(t, "js", []string{"GAVEL_KNOCK_FIXTURE=" + mustJSON(fx)}, node, "--test")
	if strings.Contains(out, "# SKIP") || !strings.Contains(out, "# fail 0") {
		t.Fatalf("node --test skipped or failed tests:\n%s", out)
	}
	if testing.Verbose() {
		t.Log(out)
	}
}
