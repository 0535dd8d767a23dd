package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/gavelxmpp/gavel/commands"
	"github.com/gavelxmpp/gavel/store"
)

// apiError is an error response: an HTTP status, a stable code and a message
// for people.
type apiError struct {
	status  int
	code    string
	message string
}

func (e *apiError) Error() string { return e.code + ": " + e.message }

// errorBody is the JSON of every error response.
type errorBody struct {
	Error   string `json:"error"`
	Message string `json:"message"`
}

func errUnauthorized(msg string) *apiError {
	return &apiError{http.StatusUnauthorized, "unauthorized", msg}
}

func errBadRequest(msg string) *apiError {
	return &apiError{http.StatusBadRequest, "bad-request", msg}
}

// commandError maps an error of the command layer to its response.
func commandError(err error) *apiError {
	switch {
	case errors.Is(err, commands.ErrInvalid):
		return errBadRequest(err.Error())
	case errors.Is(err, commands.ErrNoSuchBan):
		return &apiError{http.StatusNotFound, "no-such-ban", err.Error()}
	case errors.Is(err, commands.ErrRoomNotFound):
		return &apiError{http.StatusNotFound, "room-not-found", err.Error()}
	case errors.Is(err, commands.ErrParticipantNotFound):
		return &apiError{http.StatusNotFound, "participant-not-found", err.Error()}
	case errors.Is(err, commands.ErrNotGoverned):
		return &apiError{http.StatusNotFound, "not-governed", err.Error()}
	case errors.Is(err, commands.ErrUnavailable):
		return &apiError{http.StatusServiceUnavailable, "not-connected", err.Error()}
	case errors.Is(err, commands.ErrStoreUnavailable):
		return &apiError{http.StatusServiceUnavailable, "store-unavailable", err.Error()}
	case errors.Is(err, context.DeadlineExceeded):
		return &apiError{http.StatusGatewayTimeout, "timeout", "the command did not finish in time"}
	}
	return &apiError{http.StatusInternalServerError, "internal", "internal error: see gavel's log"}
}

// writeJSON writes v as the response body with status.
func writeJSON(w http.ResponseWriter, r *http.Request, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		status = http.StatusInternalServerError
		buf.Reset()
		_ = enc.Encode(errorBody{"internal", "encoding the response failed"})
		infoOf(r).result = "internal"
	} else if status < 400 {
		infoOf(r).result = "ok"
	}
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// writeError writes e as the response.
func writeError(w http.ResponseWriter, r *http.Request, e *apiError) {
	infoOf(r).result = e.code
	if e.status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="gavel"`)
	}
	writeJSON(w, r, e.status, errorBody{Error: e.code, Message: e.message})
}

// readBody reads the request body up to limit bytes. An empty body is an
// error unless optional is set, in which case it yields nil data.
func readBody(w http.ResponseWriter, r *http.Request, limit int64, optional bool) ([]byte, *apiError) {
	// MaxBytesReader tells the underlying writer to close the connection
	// after an oversized body; the statusWriter would hide that.
	if sw, ok := w.(*statusWriter); ok {
		w = sw.ResponseWriter
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, &apiError{http.StatusRequestEntityTooLarge, "body-too-large", fmt.Sprintf("the request body is larger than %d bytes", limit)}
		}
		return nil, errBadRequest("reading the request body failed")
	}
	if len(bytes.TrimSpace(data)) == 0 {
		if optional {
			return nil, nil
		}
		return nil, errBadRequest("a JSON body is required")
	}
	return data, nil
}

// decodeStrict decodes one JSON value from data into v, refusing unknown
// fields and trailing data.
func decodeStrict(data []byte, v any) *apiError {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return errBadRequest("malformed JSON body: " + strings.TrimPrefix(err.Error(), "json: "))
	}
	if _, err := dec.Token(); err != io.EOF {
		return errBadRequest("malformed JSON body: unexpected data after the JSON value")
	}
	return nil
}

// maxReasonBytes bounds a reason, like store.MaxLen bounds a ban's value.
const maxReasonBytes = store.MaxLen

// banBody is the optional body of a ban.
type banBody struct {
	// Reason is free text shown to admins and the banned user.
	Reason string `json:"reason"`
	// ExpiresAt is an RFC 3339 time at which the ban ends.
	ExpiresAt string `json:"expiresAt"`
	// Duration is a Go duration ("24h", "90m") after which the ban ends.
	Duration string `json:"duration"`
}

// banJWTBody is the body of a token ban.
type banJWTBody struct {
	JWT string `json:"jwt"`
	banBody
}

// unbanJWTBody is the body of a token unban: the token or its hash.
type unbanJWTBody struct {
	JWT  string `json:"jwt"`
	Hash string `json:"hash"`
}

// check validates the body and returns the ban's expiry (zero: never).
func (b banBody) check(now time.Time) (time.Time, *apiError) {
	if len(b.Reason) > maxReasonBytes {
		return time.Time{}, errBadRequest(fmt.Sprintf("reason is longer than %d bytes", maxReasonBytes))
	}
	switch {
	case b.ExpiresAt != "" && b.Duration != "":
		return time.Time{}, errBadRequest("give expiresAt or duration, not both")
	case b.ExpiresAt != "":
		t, err := time.Parse(time.RFC3339, b.ExpiresAt)
		if err != nil {
			return time.Time{}, errBadRequest(`expiresAt must be an RFC 3339 time such as "2030-01-02T15:04:05Z"`)
		}
		if !t.After(now) {
			return time.Time{}, errBadRequest("expiresAt is in the past")
		}
		return t.UTC(), nil
	case b.Duration != "":
		d, err := time.ParseDuration(b.Duration)
		if err != nil || d <= 0 {
			return time.Time{}, errBadRequest(`duration must be a positive Go duration such as "24h" or "90m"`)
		}
		return now.Add(d).UTC(), nil
	}
	return time.Time{}, nil
}

// Meeting command actions.
const (
	actionDestroy   = "DESTROY"
	actionKick      = "KICK_PARTICIPANT"
	actionSetRole   = "SET_ROLE"
	actionSetPolicy = "SET_POLICY"
	actionLock      = "LOCK"
	actionUnlock    = "UNLOCK"
)

// lockPayload is the payload of LOCK and UNLOCK.
type lockPayload struct {
	ConferenceFullName string `json:"conferenceFullName"`
}

// setRolePayload is the payload of SET_ROLE.
type setRolePayload struct {
	ConferenceFullName string `json:"conferenceFullName"`
	ParticipantID      string `json:"participantId"`
	UserID             string `json:"userId"`
	Role               string `json:"role"`
	// Until (RFC 3339) ends the role; empty: it lasts with the meeting.
	Until string `json:"until"`
}

// setPolicyPayload is the payload of SET_POLICY.
type setPolicyPayload struct {
	ConferenceFullName string `json:"conferenceFullName"`
	Policy             string `json:"policy"`
}

// meetingBody is the envelope of a conference command.
type meetingBody struct {
	Action  string          `json:"action"`
	Payload json.RawMessage `json:"payload"`
}

// destroyPayload is the payload of DESTROY.
type destroyPayload struct {
	ConferenceFullName string `json:"conferenceFullName"`
	Reason             string `json:"reason"`
}

// kickPayload is the payload of KICK_PARTICIPANT.
type kickPayload struct {
	ConferenceFullName string `json:"conferenceFullName"`
	ParticipantID      string `json:"participantId"`
	Reason             string `json:"reason"`
}

// meetingCommand is a decoded conference command.
type meetingCommand struct {
	Action      string
	Room        string
	Participant string
	Reason      string
	Role        string
	UserID      string
	Until       time.Time
	Policy      string
}

// decodeMeeting decodes and checks the body of a conference command.
func decodeMeeting(data []byte) (meetingCommand, *apiError) {
	var env meetingBody
	if e := decodeStrict(data, &env); e != nil {
		return meetingCommand{}, e
	}
	if env.Action == "" {
		return meetingCommand{}, errBadRequest("action is required")
	}
	if len(bytes.TrimSpace(env.Payload)) == 0 || bytes.Equal(bytes.TrimSpace(env.Payload), []byte("null")) {
		return meetingCommand{}, errBadRequest("payload is required")
	}
	cmd := meetingCommand{Action: env.Action}
	switch env.Action {
	case actionDestroy:
		var p destroyPayload
		if e := decodeStrict(env.Payload, &p); e != nil {
			return meetingCommand{}, e
		}
		cmd.Room, cmd.Reason = p.ConferenceFullName, p.Reason
	case actionKick:
		var p kickPayload
		if e := decodeStrict(env.Payload, &p); e != nil {
			return meetingCommand{}, e
		}
		if p.ParticipantID == "" {
			return meetingCommand{}, errBadRequest("payload.participantId is required")
		}
		cmd.Room, cmd.Participant, cmd.Reason = p.ConferenceFullName, p.ParticipantID, p.Reason
	case actionSetRole:
		var p setRolePayload
		if e := decodeStrict(env.Payload, &p); e != nil {
			return meetingCommand{}, e
		}
		switch {
		case p.UserID != "" && p.ParticipantID != "":
			return meetingCommand{}, errBadRequest("give payload.participantId or payload.userId, not both")
		case p.ParticipantID == "" && p.UserID == "":
			return meetingCommand{}, errBadRequest("payload.participantId or payload.userId is required")
		case p.Role == "":
			return meetingCommand{}, errBadRequest("payload.role is required: moderator, participant, viewer or default")
		}
		if p.Until != "" {
			t, err := time.Parse(time.RFC3339, p.Until)
			if err != nil {
				return meetingCommand{}, errBadRequest("payload.until must be an RFC 3339 time")
			}
			cmd.Until = t
		}
		cmd.Room, cmd.Participant, cmd.UserID, cmd.Role = p.ConferenceFullName, p.ParticipantID, p.UserID, p.Role
	case actionSetPolicy:
		var p setPolicyPayload
		if e := decodeStrict(env.Payload, &p); e != nil {
			return meetingCommand{}, e
		}
		if p.Policy == "" {
			return meetingCommand{}, errBadRequest("payload.policy is required: token, auto-owner or all-owners")
		}
		cmd.Room, cmd.Policy = p.ConferenceFullName, p.Policy
	case actionLock, actionUnlock:
		var p lockPayload
		if e := decodeStrict(env.Payload, &p); e != nil {
			return meetingCommand{}, e
		}
		cmd.Room = p.ConferenceFullName
	default:
		return meetingCommand{}, &apiError{http.StatusBadRequest, "unknown-action",
			fmt.Sprintf("unknown action: want %s, %s, %s, %s, %s or %s", actionDestroy, actionKick, actionSetRole, actionSetPolicy, actionLock, actionUnlock)}
	}
	if cmd.Room == "" {
		return meetingCommand{}, errBadRequest("payload.conferenceFullName is required")
	}
	if len(cmd.Reason) > maxReasonBytes {
		return meetingCommand{}, errBadRequest(fmt.Sprintf("payload.reason is longer than %d bytes", maxReasonBytes))
	}
	return cmd, nil
}
