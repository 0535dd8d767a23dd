package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestDemo runs the demo behind `make demo` to its end, so the quick start
// keeps working.
func TestDemo(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "gavel")
	if out, err := exec.Command("go", "build", "-o", bin, "../gavel").CombinedOutput(); err != nil {
		t.Fatalf("build gavel: %v\n%s", err, out)
	}
	r, w, _ := os.Pipe()
	stdout := os.Stdout
	os.Stdout = w
	done := make(chan string)
	go func() {
		var b bytes.Buffer
		_, _ = io.Copy(&b, r)
		done <- b.String()
	}()
	err := demo(context.Background(), bin, t.TempDir(), true)
	w.Close()
	os.Stdout = stdout
	out := <-done
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, out)
	}
	for _, want := range []string{
		"alice    standup@conference.example.test         token         owner/moderator     token-moderator",
		"token-required", "token-expired", "token-wrong-room",
		"owner/moderator     first-joiner", "owner/moderator     handover",
		"frank    [party]lounge@conference.example.test   no token      owner/moderator     all-owners",
		`"action":"SET_ROLE"`, "bob      standup@conference.example.test                       owner/moderator     set-by-admin     SET_ROLE through the HTTP API",
		`"removed":1`, "refused             banned",
		"host link:        https://meet.example.test/townhall-", "viewer link:",
		"gina     [town]townhall-", "owner/moderator     token-moderator",
		"hank     [town]townhall-", "ivy      [town]townhall-", "none/visitor viewer-claim",
		"==> console: http://127.0.0.1:", "/console/", "sign in with the admin token of tenant example.test",
	} {
		// Columns are as wide as the widest cell: compare words, not spaces.
		if !strings.Contains(strings.Join(strings.Fields(out), " "), strings.Join(strings.Fields(want), " ")) {
			t.Errorf("demo output lacks %q\n%s", want, out)
		}
	}
}
