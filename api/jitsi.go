package api

import (
	"net/http"
	"strings"
)

// This file serves the HTTP endpoints of Jitsi's own Prosody modules, so
// that scripts written for them work unchanged against gavel:
//
//	POST /end-meeting?conference=ROOMJID[&silent-reconnect=true]   (mod_muc_end_meeting)
//	PUT  /kick-participant?room=NAME&prefix=TENANT                 (mod_muc_kick_participant)
//	     {"participantId": "..."}
//
// Both take the bearer token in the Authorization header. Jitsi's modules
// answer only with a status: 200 done, 400 a bad request, 401 a token
// refused, 404 no such room or participant. gavel answers the same
// statuses (with its usual JSON error body), except that a token that is
// valid but not allowed for the room (not an admin token, or another
// tenant's) is 401 too, as Jitsi's verification refuses it.

// jitsiAuth authenticates r and checks that its token may act on roomJID;
// it writes the error response and returns false otherwise.
func (s *Server) jitsiAuth(w http.ResponseWriter, r *http.Request, roomJID string) (principal, bool) {
	p, e := s.verifier.authenticate(r)
	if e == nil {
		infoOf(r).tenant = clip(p.sub)
		tenant, err := s.cmds.TenantOf(roomJID)
		if err != nil {
			s.fail(w, r, err)
			return p, false
		}
		infoOf(r).tenant = tenant
		e = authorize(p, tenant)
	}
	if e != nil {
		if e.status == http.StatusForbidden {
			e = &apiError{http.StatusUnauthorized, e.code, e.message}
		}
		writeError(w, r, e)
		return p, false
	}
	return p, true
}

// endMeeting handles POST /end-meeting?conference=ROOMJID: it destroys the
// room. silent-reconnect=true destroys it without a reason, which Jitsi's
// clients show as the end of the meeting without an error.
func (s *Server) endMeeting(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	room := strings.TrimSpace(q.Get("conference"))
	if room == "" {
		writeError(w, r, errBadRequest("the query parameter conference (the room JID) is required"))
		return
	}
	silent := false
	switch v := q.Get("silent-reconnect"); v {
	case "", "false":
	case "true":
		silent = true
	default:
		writeError(w, r, errBadRequest("silent-reconnect must be true or false"))
		return
	}
	p, ok := s.jitsiAuth(w, r, room)
	if !ok {
		return
	}
	reason := "The meeting has been terminated"
	if silent {
		reason = ""
	}
	ctx, cancel := commandContext(r)
	defer cancel()
	if err := s.cmds.Destroy(ctx, room, reason, p.by()); err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, r, http.StatusOK, meetingResponse{Action: actionDestroy, ConferenceFullName: room})
}

// kickBody is the body of PUT /kick-participant.
type kickBody struct {
	ParticipantID string `json:"participantId"`
	Number        string `json:"number"`
}

// kickParticipant handles PUT /kick-participant?room=NAME&prefix=TENANT:
// it kicks the occupant whose nick (Jitsi's participant id) is
// participantId from [TENANT]NAME@<the first governed MUC domain>.
func (s *Server) kickParticipant(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	name, prefix := strings.TrimSpace(q.Get("room")), strings.TrimSpace(q.Get("prefix"))
	if name == "" {
		writeError(w, r, errBadRequest("the query parameter room (the room name) is required"))
		return
	}
	if s.mucDomain == "" {
		writeError(w, r, errBadRequest("gavel has no MUC domain for room names: use POST /conference-commands/v1/meeting with KICK_PARTICIPANT"))
		return
	}
	data, e := readBody(w, r, s.maxBody, false)
	var body kickBody
	if e == nil {
		e = decodeStrict(data, &body)
	}
	if e == nil {
		switch {
		case (body.ParticipantID == "") == (body.Number == ""):
			e = errBadRequest("give exactly one of participantId and number")
		case body.Number != "":
			// Jitsi matches a SIP gateway's display name; gavel does not
			// read display names from presence.
			e = errBadRequest("kicking by number is not supported: kick by participantId")
		}
	}
	if e != nil {
		writeError(w, r, e)
		return
	}
	room := name + "@" + s.mucDomain
	if prefix != "" {
		room = "[" + prefix + "]" + room
	}
	p, ok := s.jitsiAuth(w, r, room)
	if !ok {
		return
	}
	ctx, cancel := commandContext(r)
	defer cancel()
	if err := s.cmds.Kick(ctx, room, body.ParticipantID, "", p.by()); err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, r, http.StatusOK, meetingResponse{Action: actionKick, ConferenceFullName: room, ParticipantID: body.ParticipantID})
}
