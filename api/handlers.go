package api

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gavelxmpp/gavel/commands"
	"github.com/gavelxmpp/gavel/store"
)

// banResponse answers a ban.
type banResponse struct {
	Tenant  string `json:"tenant"`
	Kind    string `json:"kind"`
	Value   string `json:"value"`
	Expires string `json:"expires,omitempty"`
	Removed int    `json:"removed"`
	// Warning says that the ban is stored but did not reach every room in
	// time (the response is then 202 Accepted).
	Warning string `json:"warning,omitempty"`
}

// unbanResponse answers an unban that found its ban.
type unbanResponse struct {
	Tenant   string `json:"tenant"`
	Kind     string `json:"kind"`
	Value    string `json:"value"`
	Unbanned bool   `json:"unbanned"`
}

// banJSON is one ban in a list.
type banJSON struct {
	Tenant  string `json:"tenant"`
	Kind    string `json:"kind"`
	Value   string `json:"value"`
	Reason  string `json:"reason"`
	By      string `json:"by"`
	Created string `json:"created"`
	Expires string `json:"expires,omitempty"`
}

// bansResponse answers a list of bans.
type bansResponse struct {
	Bans []banJSON `json:"bans"`
}

// meetingResponse answers a conference command.
type meetingResponse struct {
	Action             string `json:"action"`
	ConferenceFullName string `json:"conferenceFullName"`
	ParticipantID      string `json:"participantId,omitempty"`
	UserID             string `json:"userId,omitempty"`
	Role               string `json:"role,omitempty"`
	Until              string `json:"until,omitempty"`
	Policy             string `json:"policy,omitempty"`
	// PresentSessions (SET_ROLE) counts the present sessions the role
	// applied to at once; a user id's later sessions get it as they join.
	PresentSessions *int `json:"presentSessions,omitempty"`
	// Locked (LOCK, UNLOCK) is the room's lock now.
	Locked *bool `json:"locked,omitempty"`
}

// roleSetter is the role and policy commands of the command layer
// (commands.Service).
type roleSetter interface {
	AssignRole(ctx context.Context, req commands.RoleRequest, by string) (int, error)
	SetPolicy(ctx context.Context, roomJID, policy, by string) error
}

// commandContext bounds one command by the request and commandTimeout.
func commandContext(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), commandTimeout)
}

// tenantRequest authenticates r and checks that its token may act on the
// {appId} of the path. It returns the tenant (the app id prepared as room
// JIDs give it, commands.NormalizeTenant) or writes the error response.
func (s *Server) tenantRequest(w http.ResponseWriter, r *http.Request) (string, principal, bool) {
	appID := r.PathValue("appId")
	infoOf(r).tenant = clip(appID)
	p, e := s.verifier.authenticate(r)
	if e != nil {
		writeError(w, r, e)
		return "", principal{}, false
	}
	tenant, err := commands.NormalizeTenant(appID)
	if err != nil {
		s.fail(w, r, err)
		return "", principal{}, false
	}
	infoOf(r).tenant = tenant
	if e := authorize(p, tenant); e != nil {
		writeError(w, r, e)
		return "", principal{}, false
	}
	return tenant, p, true
}

// fail writes the response for an error of the command layer.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	e := commandError(err)
	if e.code == "internal" {
		infoOf(r).err = err
	}
	writeError(w, r, e)
}

// shown is how a ban's value appears in a response: a token ban only as
// the start of its hash, never the token itself.
func shown(kind store.Kind, value string) string {
	if kind == store.KindToken && len(value) >= 16 {
		return "sha256:" + value[:16]
	}
	return value
}

// banned answers a ban: 200, or 202 with a warning when the ban is stored
// but did not reach every room in time.
func (s *Server) banned(w http.ResponseWriter, r *http.Request, res commands.BanResult, err error) {
	status, warning := http.StatusOK, ""
	if errors.Is(err, commands.ErrIncomplete) {
		status, warning = http.StatusAccepted, err.Error()
		infoOf(r).err = err
	} else if err != nil {
		s.fail(w, r, err)
		return
	}
	b := res.Ban
	writeJSON(w, r, status, banResponse{
		Tenant: b.Tenant, Kind: string(b.Kind), Value: shown(b.Kind, b.Value),
		Expires: formatTime(b.Expires), Removed: res.Removed, Warning: warning,
	})
}

// banUser handles POST .../{appId}/ban/user/{userId}.
func (s *Server) banUser(w http.ResponseWriter, r *http.Request) {
	tenant, p, ok := s.tenantRequest(w, r)
	if !ok {
		return
	}
	user := r.PathValue("userId")
	data, e := readBody(w, r, s.maxBody, true)
	var body banBody
	if e == nil && data != nil {
		e = decodeStrict(data, &body)
	}
	var expires time.Time
	if e == nil {
		expires, e = body.check(s.now())
	}
	if e != nil {
		writeError(w, r, e)
		return
	}
	ctx, cancel := commandContext(r)
	defer cancel()
	res, err := s.cmds.Ban(ctx, commands.BanRequest{
		Tenant: tenant, Kind: commands.KindOf(user), Value: user, Reason: body.Reason, By: p.by(), Expires: expires,
	})
	s.banned(w, r, res, err)
}

// unbanUser handles DELETE .../{appId}/ban/user/{userId}.
func (s *Server) unbanUser(w http.ResponseWriter, r *http.Request) {
	tenant, p, ok := s.tenantRequest(w, r)
	if !ok {
		return
	}
	user := r.PathValue("userId")
	s.unban(w, r, commands.UnbanRequest{Tenant: tenant, Kind: commands.KindOf(user), Value: user, By: p.by()})
}

// banJWT handles POST .../{appId}/ban/jwt.
func (s *Server) banJWT(w http.ResponseWriter, r *http.Request) {
	tenant, p, ok := s.tenantRequest(w, r)
	if !ok {
		return
	}
	data, e := readBody(w, r, s.maxBody, false)
	var body banJWTBody
	if e == nil {
		e = decodeStrict(data, &body)
	}
	var tok string
	if e == nil {
		tok, e = checkJWT(body.JWT)
	}
	var expires time.Time
	if e == nil {
		expires, e = body.check(s.now())
	}
	if e != nil {
		writeError(w, r, e)
		return
	}
	ctx, cancel := commandContext(r)
	defer cancel()
	res, err := s.cmds.Ban(ctx, commands.BanRequest{
		Tenant: tenant, Kind: store.KindToken, Value: tok, Reason: body.Reason, By: p.by(), Expires: expires,
	})
	s.banned(w, r, res, err)
}

// unbanJWT handles DELETE .../{appId}/ban/jwt.
func (s *Server) unbanJWT(w http.ResponseWriter, r *http.Request) {
	tenant, p, ok := s.tenantRequest(w, r)
	if !ok {
		return
	}
	data, e := readBody(w, r, s.maxBody, false)
	var body unbanJWTBody
	if e == nil {
		e = decodeStrict(data, &body)
	}
	var value string
	if e == nil {
		switch {
		case body.JWT != "" && body.Hash != "":
			e = errBadRequest("give jwt or hash, not both")
		case body.JWT != "":
			value, e = checkJWT(body.JWT)
		case body.Hash != "":
			value = strings.TrimSpace(body.Hash)
			if len(value) != 64 || !isHex(value) {
				e = errBadRequest("hash must be the 64 hex digits of a token ban, as GET .../bans lists it")
			}
		default:
			e = errBadRequest("jwt or hash is required")
		}
	}
	if e != nil {
		writeError(w, r, e)
		return
	}
	s.unban(w, r, commands.UnbanRequest{Tenant: tenant, Kind: store.KindToken, Value: value, By: p.by()})
}

// unban removes a ban and answers; a missing ban is 404 no-such-ban.
func (s *Server) unban(w http.ResponseWriter, r *http.Request, req commands.UnbanRequest) {
	ctx, cancel := commandContext(r)
	defer cancel()
	k, err := s.cmds.Unban(ctx, req)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, r, http.StatusOK, unbanResponse{Tenant: k.Tenant, Kind: string(k.Kind), Value: shown(k.Kind, k.Value), Unbanned: true})
}

// listBans handles GET .../{appId}/bans.
func (s *Server) listBans(w http.ResponseWriter, r *http.Request) {
	tenant, _, ok := s.tenantRequest(w, r)
	if !ok {
		return
	}
	ctx, cancel := commandContext(r)
	defer cancel()
	bans, err := s.cmds.Bans(ctx, tenant)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := bansResponse{Bans: make([]banJSON, 0, len(bans))}
	for _, b := range bans {
		out.Bans = append(out.Bans, banJSON{
			Tenant: b.Tenant, Kind: string(b.Kind), Value: b.Value, Reason: b.Reason, By: b.By,
			Created: formatTime(b.Created), Expires: formatTime(b.Expires),
		})
	}
	writeJSON(w, r, http.StatusOK, out)
}

// meeting handles POST /conference-commands/v1/meeting.
func (s *Server) meeting(w http.ResponseWriter, r *http.Request) {
	p, e := s.verifier.authenticate(r)
	if e != nil {
		writeError(w, r, e)
		return
	}
	infoOf(r).tenant = clip(p.sub)
	data, e := readBody(w, r, s.maxBody, false)
	var cmd meetingCommand
	if e == nil {
		cmd, e = decodeMeeting(data)
	}
	if e != nil {
		writeError(w, r, e)
		return
	}
	tenant, err := s.cmds.TenantOf(cmd.Room)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	infoOf(r).tenant = tenant
	if e := authorize(p, tenant); e != nil {
		writeError(w, r, e)
		return
	}
	ctx, cancel := commandContext(r)
	defer cancel()
	resp := meetingResponse{Action: cmd.Action, ConferenceFullName: cmd.Room, ParticipantID: cmd.Participant, UserID: cmd.UserID, Role: cmd.Role, Policy: cmd.Policy}
	switch cmd.Action {
	case actionDestroy:
		err = s.cmds.Destroy(ctx, cmd.Room, cmd.Reason, p.by())
	case actionKick:
		err = s.cmds.Kick(ctx, cmd.Room, cmd.Participant, cmd.Reason, p.by())
	case actionLock, actionUnlock:
		l, ok := s.cmds.(roomLocker)
		if !ok {
			writeError(w, r, &apiError{http.StatusBadRequest, "unknown-action", cmd.Action + " is not available"})
			return
		}
		locked := cmd.Action == actionLock
		err = l.SetLock(ctx, cmd.Room, locked, p.by())
		resp.Locked = &locked
	case actionSetRole, actionSetPolicy:
		rs, ok := s.cmds.(roleSetter)
		if !ok {
			writeError(w, r, &apiError{http.StatusBadRequest, "unknown-action", cmd.Action + " is not available"})
			return
		}
		if cmd.Action == actionSetPolicy {
			err = rs.SetPolicy(ctx, cmd.Room, cmd.Policy, p.by())
			break
		}
		var n int
		n, err = rs.AssignRole(ctx, commands.RoleRequest{Room: cmd.Room, Participant: cmd.Participant, UserID: cmd.UserID, Role: cmd.Role, Until: cmd.Until}, p.by())
		resp.PresentSessions = &n
		if !cmd.Until.IsZero() {
			resp.Until = cmd.Until.UTC().Format(time.RFC3339)
		}
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, r, http.StatusOK, resp)
}

// healthz handles GET /healthz: the process is alive.
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	writeText(w, r, "ok\n")
}

// readyz handles GET /readyz: the component is connected and the store open.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	if err := s.ready(); err != nil {
		writeError(w, r, &apiError{http.StatusServiceUnavailable, "not-ready", err.Error()})
		return
	}
	writeText(w, r, "ok\n")
}

// writeText writes a 200 plain-text response.
func writeText(w http.ResponseWriter, r *http.Request, text string) {
	infoOf(r).result = "ok"
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write([]byte(text))
}

// checkJWT trims a token to ban and checks that it has the shape of a
// compact JWS, header.payload.signature.
func checkJWT(tok string) (string, *apiError) {
	tok = strings.TrimSpace(tok)
	if tok == "" {
		return "", errBadRequest("jwt is required")
	}
	parts := strings.Split(tok, ".")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" {
		return "", errBadRequest("jwt must be a compact JWT: header.payload.signature")
	}
	return tok, nil
}

// isHex reports whether s is made of hex digits only.
func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// formatTime renders t in RFC 3339 UTC, or "" for the zero time.
func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// clip shortens outside text kept for the request log.
func clip(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}
