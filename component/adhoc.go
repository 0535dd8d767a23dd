package component

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/gavelxmpp/gavel/commands"
	"github.com/gavelxmpp/gavel/store"
)

// UseCommands gives the ad-hoc commands their command layer; call it before
// the component runs. Without it the commands are neither listed nor run.
func (m *Moderation) UseCommands(s *commands.Service) { m.cmds = s }

// adhocCommand is one XEP-0050 command: its form fields and what it does.
type adhocCommand struct {
	node, name string
	fields     []formField
	run        func(ctx context.Context, s *commands.Service, by string, f *dataForm) (string, error)
	// host is set for a command a room's hosts run, not only the admins
	// (admit: lock.go); hostRun runs it with the full JID of the host.
	host    bool
	hostRun func(m *Moderation, ctx context.Context, from string, f *dataForm) (string, error)
}

type formField struct {
	name, typ, label string
	required         bool
	options          []string
}

var commandList = []adhocCommand{
	{node: "ban-user", name: "Ban a user", fields: []formField{
		{name: "tenant", typ: "text-single", label: "Tenant", required: true},
		{name: "user", typ: "text-single", label: "User id (context.user.id) or bare JID", required: true},
		{name: "reason", typ: "text-single", label: "Reason"},
		{name: "duration", typ: "text-single", label: "Duration (e.g. 24h; empty: forever)"},
	}, run: runBan},
	{node: "ban-token", name: "Ban a token", fields: []formField{
		{name: "tenant", typ: "text-single", label: "Tenant", required: true},
		{name: "token", typ: "text-private", label: "Token", required: true},
		{name: "reason", typ: "text-single", label: "Reason"},
		{name: "duration", typ: "text-single", label: "Duration (e.g. 24h; empty: forever)"},
	}, run: runBan},
	{node: "unban", name: "Lift a ban", fields: []formField{
		{name: "tenant", typ: "text-single", label: "Tenant", required: true},
		{name: "kind", typ: "list-single", label: "Kind", required: true, options: []string{"user", "jid", "token"}},
		{name: "value", typ: "text-single", label: "User id, bare JID, token or token hash", required: true},
	}, run: runUnban},
	{node: "list-bans", name: "List bans", fields: []formField{
		{name: "tenant", typ: "text-single", label: "Tenant (empty: all)"},
	}, run: runListBans},
	{node: "kick", name: "Kick a participant", fields: []formField{
		{name: "room", typ: "jid-single", label: "Room JID", required: true},
		{name: "participant", typ: "text-single", label: "Participant (occupant nick)", required: true},
		{name: "reason", typ: "text-single", label: "Reason"},
	}, run: func(ctx context.Context, s *commands.Service, by string, f *dataForm) (string, error) {
		return "kicked", s.Kick(ctx, f.value("room"), f.value("participant"), f.value("reason"), by)
	}},
	{node: "set-role", name: "Set a participant's role", fields: []formField{
		{name: "room", typ: "jid-single", label: "Room JID", required: true},
		{name: "participant", typ: "text-single", label: "Participant (occupant nick), or"},
		{name: "user", typ: "text-single", label: "User id (every session of the user)"},
		{name: "role", typ: "list-single", label: "Role", required: true, options: []string{commands.RoleModerator, commands.RoleParticipant, commands.RoleViewer, commands.RoleDefault}},
		{name: "until", typ: "text-single", label: "End time (RFC 3339) or duration (e.g. 1h); empty: with the meeting"},
	}, run: runSetRole},
	{node: "set-policy", name: "Switch a room's policy", fields: []formField{
		{name: "room", typ: "jid-single", label: "Room JID", required: true},
		{name: "policy", typ: "list-single", label: "Policy", required: true, options: []string{commands.PolicyToken, commands.PolicyAutoOwner, commands.PolicyAllOwners}},
	}, run: func(ctx context.Context, s *commands.Service, by string, f *dataForm) (string, error) {
		return "policy set", s.SetPolicy(ctx, f.value("room"), f.value("policy"), by)
	}},
	{node: "lock", name: "Lock a meeting (hosts admit knockers)", fields: []formField{
		{name: "room", typ: "jid-single", label: "Room JID", required: true},
	}, run: func(ctx context.Context, s *commands.Service, by string, f *dataForm) (string, error) {
		return "locked", s.SetLock(ctx, f.value("room"), true, by)
	}},
	{node: "unlock", name: "Unlock a meeting", fields: []formField{
		{name: "room", typ: "jid-single", label: "Room JID", required: true},
	}, run: func(ctx context.Context, s *commands.Service, by string, f *dataForm) (string, error) {
		return "unlocked", s.SetLock(ctx, f.value("room"), false, by)
	}},
	{node: "admit", name: "Admit or deny a knock on a locked meeting", host: true, fields: []formField{
		{name: "room", typ: "jid-single", label: "Room JID", required: true},
		{name: "request", typ: "text-single", label: "Request id (from gavel's message)", required: true},
		{name: "decision", typ: "list-single", label: "Decision", options: []string{"admit", "deny"}},
	}, hostRun: (*Moderation).runAdmit},
	{node: "destroy", name: "Destroy a room", fields: []formField{
		{name: "room", typ: "jid-single", label: "Room JID", required: true},
		{name: "reason", typ: "text-single", label: "Reason"},
	}, run: func(ctx context.Context, s *commands.Service, by string, f *dataForm) (string, error) {
		return "destroyed", s.Destroy(ctx, f.value("room"), f.value("reason"), by)
	}},
}

// commandItems returns the commands from may run, as disco lists them:
// none for anyone but the admins (nor when no command layer is wired).
func (m *Moderation) commandItems(from string) []adhocCommand {
	if m == nil || m.cmds == nil || !m.isAdmin(bareOf(from)) {
		return nil
	}
	return commandList
}

// commandNode returns the command at node if from may run it.
func (m *Moderation) commandNode(from, node string) *adhocCommand {
	for _, c := range m.commandItems(from) {
		if c.node == node {
			return &c
		}
	}
	return nil
}

func findCommand(node string) *adhocCommand {
	for i := range commandList {
		if commandList[i].node == node {
			return &commandList[i]
		}
	}
	return nil
}

// command serves an ad-hoc command request (XEP-0050): without a form it
// answers with the form; with a submitted form it runs the command.
func (m *Moderation) command(sess *session, st *stanza) {
	cmd := findCommand(st.Command.Node)
	if cmd == nil {
		m.c.replyError(sess, st, &stanzaError{Type: "cancel", Condition: "item-not-found", Text: "no such command"})
		return
	}
	if m.cmds == nil {
		m.c.replyError(sess, st, &stanzaError{Type: "cancel", Condition: "service-unavailable", Text: "commands are not enabled"})
		return
	}
	by := bareOf(st.From)
	if !m.isAdmin(by) && !cmd.host {
		m.cmds.Refused(cmd.node, by, "not an admin")
		m.c.replyError(sess, st, &stanzaError{Type: "auth", Condition: "forbidden", Text: "only the admins listed in gavel's config may run commands"})
		return
	}
	switch {
	case st.Command.Action == "cancel":
		m.c.reply(sess, st, func(b *xb) {
			b.empty("command", "xmlns", nsCommands, "node", cmd.node, "sessionid", st.Command.SessionID, "status", "canceled")
		})
	case st.Command.Form == nil || st.Command.Form.Type != "submit":
		session := fmt.Sprintf("%x", time.Now().UnixNano())
		m.c.reply(sess, st, func(b *xb) {
			b.open("command", "xmlns", nsCommands, "node", cmd.node, "sessionid", session, "status", "executing")
			b.open("actions", "execute", "complete").empty("complete").close("actions")
			b.open("x", "xmlns", nsData, "type", "form").elem("title", cmd.name)
			for _, f := range cmd.fields {
				b.open("field", "var", f.name, "type", f.typ, "label", f.label)
				if f.required {
					b.empty("required")
				}
				for _, o := range f.options {
					b.open("option", "label", o).elem("value", o).close("option")
				}
				b.close("field")
			}
			b.close("x").close("command")
		})
	default:
		for _, f := range cmd.fields {
			if f.required && strings.TrimSpace(st.Command.Form.value(f.name)) == "" {
				m.c.replyError(sess, st, &stanzaError{Type: "modify", Condition: "bad-request", Text: "field " + f.name + " is required"})
				return
			}
		}
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			var note string
			var err error
			if cmd.hostRun != nil {
				note, err = cmd.hostRun(m, ctx, st.From, st.Command.Form)
			} else {
				note, err = cmd.run(ctx, m.cmds, by, st.Command.Form)
			}
			level := "info"
			if errors.Is(err, commands.ErrIncomplete) {
				// The ban is stored: the command completed, with a warning.
				note, level = note+"; "+err.Error(), "warn"
			} else if err != nil {
				m.c.replyError(sess, st, commandError(err))
				return
			}
			m.c.reply(sess, st, func(b *xb) {
				b.open("command", "xmlns", nsCommands, "node", cmd.node, "sessionid", st.Command.SessionID, "status", "completed")
				b.elem("note", note, "type", level)
				b.close("command")
			})
		}()
	}
}

// commandError maps an error of the command layer to a stanza error.
func commandError(err error) *stanzaError {
	switch {
	case errors.Is(err, errNoHeld):
		return &stanzaError{Type: "cancel", Condition: "item-not-found", Text: err.Error()}
	case errors.Is(err, errNotHost):
		return &stanzaError{Type: "auth", Condition: "forbidden", Text: err.Error()}
	case errors.Is(err, commands.ErrInvalid):
		return &stanzaError{Type: "modify", Condition: "bad-request", Text: err.Error()}
	case errors.Is(err, commands.ErrNoSuchBan), errors.Is(err, commands.ErrRoomNotFound), errors.Is(err, commands.ErrParticipantNotFound):
		return &stanzaError{Type: "cancel", Condition: "item-not-found", Text: err.Error()}
	case errors.Is(err, commands.ErrNotGoverned):
		return &stanzaError{Type: "cancel", Condition: "not-allowed", Text: err.Error()}
	case errors.Is(err, commands.ErrUnavailable):
		return &stanzaError{Type: "wait", Condition: "remote-server-timeout", Text: err.Error()}
	case errors.Is(err, commands.ErrStoreUnavailable):
		return &stanzaError{Type: "wait", Condition: "internal-server-error", Text: err.Error()}
	case errors.Is(err, context.DeadlineExceeded):
		return &stanzaError{Type: "wait", Condition: "remote-server-timeout", Text: "the command did not finish in time"}
	}
	return &stanzaError{Type: "wait", Condition: "internal-server-error", Text: "internal error: see gavel's log"}
}

func runBan(ctx context.Context, s *commands.Service, by string, f *dataForm) (string, error) {
	req := commands.BanRequest{Tenant: f.value("tenant"), Reason: f.value("reason"), By: by}
	if tok := f.value("token"); tok != "" {
		req.Kind, req.Value = store.KindToken, tok
	} else {
		req.Value = f.value("user")
		req.Kind = commands.KindOf(req.Value)
	}
	if d := strings.TrimSpace(f.value("duration")); d != "" {
		dur, err := time.ParseDuration(d)
		if err != nil || dur <= 0 {
			return "", fmt.Errorf("%w: duration %q: use a Go duration like 30m or 24h", commands.ErrInvalid, d)
		}
		req.Expires = time.Now().Add(dur)
	}
	res, err := s.Ban(ctx, req)
	return fmt.Sprintf("banned %s %s in %s; %d occupant(s) removed", res.Ban.Kind, shownValue(res.Ban), res.Ban.Tenant, res.Removed), err
}

// shownValue is a ban's value as a note shows it: a token only by its hash.
func shownValue(b store.Ban) string {
	if b.Kind == store.KindToken {
		return "sha256:" + b.Value
	}
	return b.Value
}

func runUnban(ctx context.Context, s *commands.Service, by string, f *dataForm) (string, error) {
	k, err := s.Unban(ctx, commands.UnbanRequest{Tenant: f.value("tenant"), Kind: store.Kind(f.value("kind")), Value: f.value("value"), By: by})
	return fmt.Sprintf("unbanned %s %s in %s", k.Kind, k.Value, k.Tenant), err
}

func runListBans(ctx context.Context, s *commands.Service, _ string, f *dataForm) (string, error) {
	bans, err := s.Bans(ctx, f.value("tenant"))
	if err != nil {
		return "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d ban(s)", len(bans))
	for _, ban := range bans {
		fmt.Fprintf(&b, "\n%s %s %s", ban.Tenant, ban.Kind, ban.Value)
		if !ban.Expires.IsZero() {
			fmt.Fprintf(&b, " until %s", ban.Expires.UTC().Format(time.RFC3339))
		}
		if ban.Reason != "" {
			fmt.Fprintf(&b, " (%s)", ban.Reason)
		}
	}
	return b.String(), nil
}

func runSetRole(ctx context.Context, s *commands.Service, by string, f *dataForm) (string, error) {
	req := commands.RoleRequest{Room: f.value("room"), Participant: f.value("participant"), UserID: f.value("user"), Role: f.value("role")}
	if u := strings.TrimSpace(f.value("until")); u != "" {
		if dur, err := time.ParseDuration(u); err == nil && dur > 0 {
			req.Until = time.Now().Add(dur)
		} else if t, err := time.Parse(time.RFC3339, u); err == nil {
			req.Until = t
		} else {
			return "", fmt.Errorf("%w: until %q: use an RFC 3339 time or a duration like 1h", commands.ErrInvalid, u)
		}
	}
	n, err := s.AssignRole(ctx, req, by)
	return fmt.Sprintf("role %s set; %d present session(s)", req.Role, n), err
}
