package component

import (
	"fmt"

	"github.com/gavelxmpp/gavel/internal/jidprep"
)

// This file holds what a config reload (SIGHUP) changes in a running
// Moderation. Tenants reach it through ModerationOptions.Tenant, which the
// caller may answer from fresh settings at any time; the admins are held
// here.

// SetAdmins replaces the JIDs allowed to run ad-hoc commands. The list is
// checked first: on an error nothing changes. Commands already running
// finish.
func (m *Moderation) SetAdmins(admins []string) error {
	set := make(map[string]bool, len(admins))
	for _, a := range admins {
		b, err := jidprep.Bare(a)
		if err != nil {
			return fmt.Errorf("component: admin %q: %w", a, err)
		}
		set[b] = true
	}
	m.mu.Lock()
	m.admins = set
	m.mu.Unlock()
	return nil
}

// isAdmin reports whether the bare JID may run ad-hoc commands.
func (m *Moderation) isAdmin(bare string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.admins[bare]
}
