package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestSystemdUnit checks packaging/systemd: systemd-analyze verify accepts
// the unit without a word (unknown keys and bad values are only warnings
// there, so any output fails), and the config shipped beside it passes
// gavel -check with the credentials the unit loads.
func TestSystemdUnit(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("systemd-analyze is not installed: run make deps (apt-get install systemd)")
		}
		t.Skip("systemd-analyze is not installed: run make deps (apt-get install systemd)")
	}
	bin := gavelBinary(t)
	unit, err := os.ReadFile("../../packaging/systemd/gavel.service")
	if err != nil {
		t.Fatal(err)
	}
	// verify checks that ExecStart's program exists: point it at the
	// binary the tests built.
	dir := t.TempDir()
	text := strings.ReplaceAll(string(unit), "/usr/local/bin/gavel", bin)
	if err := os.WriteFile(filepath.Join(dir, "gavel.service"), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", "--man=no", filepath.Join(dir, "gavel.service")).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}

	creds := t.TempDir()
	for _, c := range []string{"component-secret", "app-secret"} {
		if !strings.Contains(string(unit), "LoadCredential="+c+":/etc/gavel/"+c+"\n") {
			t.Errorf("the unit does not load the credential %s", c)
		}
		if err := os.WriteFile(filepath.Join(creds, c), []byte("a-long-random-secret-for-"+c+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	check := exec.Command(bin, "-config", "../../packaging/systemd/gavel.yml", "-check")
	check.Env = append(os.Environ(), "CREDENTIALS_DIRECTORY="+creds)
	if out, err := check.CombinedOutput(); err != nil {
		t.Errorf("gavel -check packaging/systemd/gavel.yml: %v\n%s", err, out)
	}
}
