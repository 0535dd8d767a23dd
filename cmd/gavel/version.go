package main

import (
	"runtime/debug"
	"strings"
)

// buildVersion is the module version gavel was built as ("dev" for a
// build from a checkout without one), as logged and as answered to XEP-0092
// version requests.
func buildVersion() string {
	bi, _ := debug.ReadBuildInfo()
	return moduleVersion(bi)
}

// versionLine is what "gavel version" prints: the module version, then the
// VCS revision the binary was built from when the build recorded one.
func versionLine() string {
	bi, _ := debug.ReadBuildInfo()
	return describeBuild(bi)
}

func moduleVersion(bi *debug.BuildInfo) string {
	if bi == nil || bi.Main.Version == "" || bi.Main.Version == "(devel)" {
		return "dev"
	}
	return bi.Main.Version
}

func describeBuild(bi *debug.BuildInfo) string {
	line := "gavel " + moduleVersion(bi)
	if bi == nil {
		return line
	}
	var rev, modified string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value
		}
	}
	if rev == "" {
		return line
	}
	extra := []string{"revision " + rev}
	if modified == "true" {
		extra = append(extra, "modified")
	}
	return line + " (" + strings.Join(extra, ", ") + ")"
}
