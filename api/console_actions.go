package api

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gavelxmpp/gavel/commands"
	"github.com/gavelxmpp/gavel/store"
)

// roomLocker and policySetter are the lock and policy commands the
// command layer may offer; the console shows those actions only when it
// does (sessionJSON.Features).
type roomLocker interface {
	SetLock(ctx context.Context, roomJID string, locked bool, by string) error
}

type policySetter interface {
	SetPolicy(ctx context.Context, roomJID, policy, by string) error
}

// consoleRoomBody is the body of the room actions.
type consoleRoomBody struct {
	Room   string `json:"room"`
	Nick   string `json:"nick"`
	Role   string `json:"role"`
	Reason string `json:"reason"`
	Locked *bool  `json:"locked"`
	Policy string `json:"policy"`
}

// roomAction decodes a room action of the session's tenant: the room
// must be the tenant's, whatever the body says.
func (c *console) roomAction(w http.ResponseWriter, r *http.Request) (*consoleSession, consoleRoomBody, bool) {
	var body consoleRoomBody
	sess, ok := c.action(w, r)
	if !ok {
		return nil, body, false
	}
	data, e := readBody(w, r, c.s.maxBody, false)
	if e == nil {
		e = decodeStrict(data, &body)
	}
	if e == nil && len(body.Reason) > maxReasonBytes {
		e = errBadRequest("reason is too long")
	}
	if e != nil {
		writeError(w, r, e)
		return nil, body, false
	}
	tenant, err := c.s.cmds.TenantOf(body.Room)
	if err != nil {
		c.s.fail(w, r, err)
		return nil, body, false
	}
	if tenant != sess.tenant {
		writeError(w, r, &apiError{http.StatusForbidden, "wrong-tenant", "the room is not of the signed-in tenant"})
		return nil, body, false
	}
	return sess, body, true
}

// done answers an action: {"ok": true}, the refusal (an *apiError) as it
// is, or the command's error.
func (c *console) done(w http.ResponseWriter, r *http.Request, err error) {
	var ae *apiError
	switch {
	case err == nil:
		writeJSON(w, r, http.StatusOK, map[string]bool{"ok": true})
	case errors.As(err, &ae):
		writeError(w, r, ae)
	default:
		c.s.fail(w, r, err)
	}
}

// runRoomAction decodes and checks a room action (roomAction), then runs it
// with a command's deadline and answers with its result.
func (c *console) runRoomAction(w http.ResponseWriter, r *http.Request, run func(ctx context.Context, by string, body consoleRoomBody) error) {
	sess, body, ok := c.roomAction(w, r)
	if !ok {
		return
	}
	ctx, cancel := commandContext(r)
	defer cancel()
	c.done(w, r, run(ctx, sess.by(), body))
}

// notAvailable refuses an action the command layer does not offer.
func notAvailable(what string) error {
	return &apiError{http.StatusNotFound, "not-available", what + " here"}
}

func (c *console) setRole(w http.ResponseWriter, r *http.Request) {
	c.runRoomAction(w, r, func(ctx context.Context, by string, body consoleRoomBody) error {
		rs, ok := c.s.cmds.(roleSetter)
		if !ok {
			return notAvailable("roles cannot be set")
		}
		_, err := rs.AssignRole(ctx, commands.RoleRequest{Room: body.Room, Participant: body.Nick, Role: body.Role}, by)
		return err
	})
}

func (c *console) kick(w http.ResponseWriter, r *http.Request) {
	c.runRoomAction(w, r, func(ctx context.Context, by string, body consoleRoomBody) error {
		return c.s.cmds.Kick(ctx, body.Room, body.Nick, body.Reason, by)
	})
}

func (c *console) destroy(w http.ResponseWriter, r *http.Request) {
	c.runRoomAction(w, r, func(ctx context.Context, by string, body consoleRoomBody) error {
		return c.s.cmds.Destroy(ctx, body.Room, body.Reason, by)
	})
}

func (c *console) lock(w http.ResponseWriter, r *http.Request) {
	c.runRoomAction(w, r, func(ctx context.Context, by string, body consoleRoomBody) error {
		l, ok := c.s.cmds.(roomLocker)
		if !ok {
			return notAvailable("rooms cannot be locked")
		}
		if body.Locked == nil {
			return errBadRequest("locked (true or false) is required")
		}
		return l.SetLock(ctx, body.Room, *body.Locked, by)
	})
}

func (c *console) setPolicy(w http.ResponseWriter, r *http.Request) {
	c.runRoomAction(w, r, func(ctx context.Context, by string, body consoleRoomBody) error {
		p, ok := c.s.cmds.(policySetter)
		if !ok {
			return notAvailable("a room's policy cannot be switched")
		}
		return p.SetPolicy(ctx, body.Room, body.Policy, by)
	})
}

// consoleBanBody is the body of a ban and of lifting one. For a ban of
// kind token, value is the token itself; to lift one, the 64 hex digits
// of its hash as the list shows them.
type consoleBanBody struct {
	Kind     string `json:"kind"`
	Value    string `json:"value"`
	Reason   string `json:"reason"`
	Duration string `json:"duration"`
}

func (c *console) banBody(w http.ResponseWriter, r *http.Request) (*consoleSession, consoleBanBody, store.Kind, bool) {
	var body consoleBanBody
	sess, ok := c.action(w, r)
	if !ok {
		return nil, body, "", false
	}
	data, e := readBody(w, r, c.s.maxBody, false)
	if e == nil {
		e = decodeStrict(data, &body)
	}
	kind := store.Kind(body.Kind)
	if e == nil && !slices.Contains([]store.Kind{store.KindUser, store.KindJID, store.KindToken}, kind) {
		e = errBadRequest(`kind must be "user", "jid" or "token"`)
	}
	if e != nil {
		writeError(w, r, e)
		return nil, body, "", false
	}
	return sess, body, kind, true
}

// ban handles POST /console/api/bans.
func (c *console) ban(w http.ResponseWriter, r *http.Request) {
	sess, body, kind, ok := c.banBody(w, r)
	if !ok {
		return
	}
	expires, e := banBody{Reason: body.Reason, Duration: body.Duration}.check(c.s.now())
	value := body.Value
	if e == nil && kind == store.KindToken {
		value, e = checkJWT(value)
	}
	if e != nil {
		writeError(w, r, e)
		return
	}
	ctx, cancel := commandContext(r)
	defer cancel()
	res, err := c.s.cmds.Ban(ctx, commands.BanRequest{Tenant: sess.tenant, Kind: kind, Value: value, Reason: body.Reason, By: sess.by(), Expires: expires})
	c.s.banned(w, r, res, err)
}

// unban handles POST /console/api/bans/lift.
func (c *console) unban(w http.ResponseWriter, r *http.Request) {
	sess, body, kind, ok := c.banBody(w, r)
	if !ok {
		return
	}
	c.s.unban(w, r, commands.UnbanRequest{Tenant: sess.tenant, Kind: kind, Value: strings.TrimSpace(body.Value), By: sess.by()})
}

// bans handles GET /console/api/bans?q=: the tenant's bans, those whose
// value, reason or issuer contain q, newest first, at most maxListed.
func (c *console) bans(w http.ResponseWriter, r *http.Request) {
	sess, ok := c.reader(w, r)
	if !ok {
		return
	}
	ctx, cancel := commandContext(r)
	defer cancel()
	list, err := c.s.cmds.Bans(ctx, sess.tenant)
	if err != nil {
		c.s.fail(w, r, err)
		return
	}
	q := queryOf(r).q
	type out struct {
		bansResponse
		Total int `json:"total"`
	}
	res := out{bansResponse: bansResponse{Bans: []banJSON{}}}
	slices.SortFunc(list, func(a, b store.Ban) int { return b.Created.Compare(a.Created) })
	for _, b := range list {
		if q != "" && !strings.Contains(strings.ToLower(b.Value+" "+b.Reason+" "+b.By), q) {
			continue
		}
		res.Total++
		if len(res.Bans) < maxListed {
			res.Bans = append(res.Bans, banJSON{
				Tenant: b.Tenant, Kind: string(b.Kind), Value: b.Value, Reason: b.Reason, By: b.By,
				Created: formatTime(b.Created), Expires: formatTime(b.Expires),
			})
		}
	}
	writeJSON(w, r, http.StatusOK, res)
}

// maxListed bounds the bans and meetings one console response lists; the
// search narrows them.
const maxListed = 500

// meetings handles GET /console/api/meetings: the tenant's meetings,
// newest first.
func (c *console) meetings(w http.ResponseWriter, r *http.Request) {
	sess, ok := c.reader(w, r)
	if !ok {
		return
	}
	if c.s.meetings == nil {
		writeJSON(w, r, http.StatusOK, map[string]any{"meetings": []meetingJSON{}})
		return
	}
	ctx, cancel := commandContext(r)
	defer cancel()
	list, err := c.s.meetings.Meetings(ctx, sess.tenant)
	if err != nil {
		c.s.fail(w, r, err)
		return
	}
	out := make([]meetingJSON, 0, min(len(list), maxListed))
	for i := len(list) - 1; i >= 0 && len(out) < maxListed; i-- {
		out = append(out, c.s.meetingOut(list[i]))
	}
	writeJSON(w, r, http.StatusOK, map[string]any{"meetings": out})
}

// consoleMeetingBody is the body of POST /console/api/meetings.
type consoleMeetingBody struct {
	EndDate        string `json:"endDate"`
	RoomNamePrefix string `json:"roomNamePrefix"`
	Host           bool   `json:"host"`
	Viewer         bool   `json:"viewer"`
}

// createMeeting handles POST /console/api/meetings: a meeting with its
// links (and tokens), shown once.
func (c *console) createMeeting(w http.ResponseWriter, r *http.Request) {
	sess, ok := c.action(w, r)
	if !ok {
		return
	}
	if c.s.meetings == nil {
		writeError(w, r, &apiError{http.StatusNotFound, "not-available", "meetings are not enabled"})
		return
	}
	var body consoleMeetingBody
	data, e := readBody(w, r, c.s.maxBody, false)
	if e == nil {
		e = decodeStrict(data, &body)
	}
	var end time.Time
	if e == nil {
		var err error
		if end, err = time.Parse(time.RFC3339, body.EndDate); err != nil {
			e = errBadRequest(`endDate must be an RFC 3339 time such as "2030-01-02T15:04:05Z"`)
		}
	}
	if e != nil {
		writeError(w, r, e)
		return
	}
	ctx, cancel := commandContext(r)
	defer cancel()
	res, err := c.s.meetings.CreateMeeting(ctx, commands.MeetingRequest{
		Tenant: sess.tenant, By: sess.by(), End: end, RoomNamePrefix: body.RoomNamePrefix, Host: body.Host, Viewer: body.Viewer,
	})
	if err != nil {
		c.s.fail(w, r, err)
		return
	}
	m := c.s.meetingOut(res.Meeting)
	m.RoomURL, m.HostRoomURL, m.ViewerRoomURL = res.RoomURL, res.HostRoomURL, res.ViewerRoomURL
	m.Tokens = &meetingTokens{Participant: res.ParticipantToken, Host: res.HostToken, Viewer: res.ViewerToken}
	writeJSON(w, r, http.StatusCreated, m)
}
