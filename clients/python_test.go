package clients_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestPython runs the slixmpp helper's tests (python3 -m unittest in
// clients/python): the error mapping on golden stanzas, and the knock from
// slixmpp over TCP against the shared Prosody and gavel.
func TestPython(t *testing.T) {
	python := slixmppPython(t)
	h := need(t)
	fx := h.common()
	fx["python"] = h.fixture(t, "python")
	out := h.run(t, "python", []string{"GAVEL_KNOCK_FIXTURE=" + mustJSON(fx), "PYTHONDONTWRITEBYTECODE=1"},
		python, "-m", "unittest", "-v", "test_gavel_knock")
	if strings.Contains(out, "skipped") || !strings.Contains(out, "\nOK") {
		t.Fatalf("unittest skipped or failed tests:\n%s", out)
	}
	if testing.Verbose() {
		t.Log(out)
	}
}

// slixmppPython returns a Python that imports slixmpp: Debian's (where
// python3-slixmpp installs it) before the one first on PATH.
func slixmppPython(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"/usr/bin/python3", "python3"} {
		if path, err := exec.LookPath(p); err == nil && exec.Command(path, "-c", "import slixmpp").Run() == nil {
			return path
		}
	}
	missing(t, "no python3 with slixmpp (apt-get install python3-slixmpp)")
	return ""
}
