package main

import (
	"bytes"
	"runtime/debug"
	"testing"
)

func TestDescribeBuild(t *testing.T) {
	vcs := func(kv ...string) []debug.BuildSetting {
		var s []debug.BuildSetting
		for i := 0; i+1 < len(kv); i += 2 {
			s = append(s, debug.BuildSetting{Key: kv[i], Value: kv[i+1]})
		}
		return s
	}
	const rev = "0123456789abcdef0123456789abcdef01234567"
	tests := []struct {
		name string
		bi   *debug.BuildInfo
		want string
	}{
		{"no build info", nil, "gavel dev"},
		{"devel, no vcs", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, "gavel dev"},
		{"release", &debug.BuildInfo{Main: debug.Module{Version: "v1.2.3"}}, "gavel v1.2.3"},
		{"checkout", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: vcs("vcs", "git", "vcs.revision", rev, "vcs.modified", "false")}, "gavel dev (revision " + rev + ")"},
		{"modified checkout", &debug.BuildInfo{Main: debug.Module{Version: "v1.2.4-0.20261127120000-0123456789ab+dirty"}, Settings: vcs("vcs.revision", rev, "vcs.modified", "true")}, "gavel v1.2.4-0.20261127120000-0123456789ab+dirty (revision " + rev + ", modified)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := describeBuild(tt.bi); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestVersionCommand(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{"subcommand", []string{"version"}, 0, versionLine() + "\n", ""},
		{"flag", []string{"-version"}, 0, versionLine() + "\n", ""},
		{"stray argument", []string{"version", "extra"}, 2, "", "usage: gavel version\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			if code := run(tt.args, &out, &errb); code != tt.code {
				t.Errorf("exit %d, want %d (stderr %s)", code, tt.code, errb.String())
			}
			if out.String() != tt.stdout || errb.String() != tt.stderr {
				t.Errorf("stdout %q stderr %q, want %q and %q", out.String(), errb.String(), tt.stdout, tt.stderr)
			}
		})
	}
}
