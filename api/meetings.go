package api

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"time"

	"github.com/gavelxmpp/gavel/commands"
	"github.com/gavelxmpp/gavel/store"
)

// Meetings is the meeting part of the command layer, in the shape of
// Whereby's meetings API; *commands.Service satisfies it.
type Meetings interface {
	CreateMeeting(ctx context.Context, req commands.MeetingRequest) (commands.MeetingResult, error)
	Meetings(ctx context.Context, tenant string) ([]store.Meeting, error)
	Meeting(ctx context.Context, tenant, id string) (store.Meeting, error)
	EndMeeting(ctx context.Context, tenant, id, by string) (store.Meeting, error)
}

// meetingRequest is the body of POST /v1/meetings.
type meetingRequest struct {
	EndDate        string   `json:"endDate"`
	RoomNamePrefix string   `json:"roomNamePrefix"`
	Fields         []string `json:"fields"`
	TemplateType   string   `json:"templateType"`
	// Policy and MaxParticipants are the meeting's own options.
	Policy          string `json:"policy"`
	MaxParticipants int    `json:"maxParticipants"`
	// Locked creates the meeting locked (docs/meetings.md).
	Locked bool `json:"locked"`
}

// meetingTokens are the raw tokens of a new meeting.
type meetingTokens struct {
	Participant string `json:"participant"`
	Host        string `json:"host,omitempty"`
	Viewer      string `json:"viewer,omitempty"`
}

// meetingJSON is a meeting in a response.
type meetingJSON struct {
	MeetingID       string         `json:"meetingId"`
	RoomName        string         `json:"roomName"`
	StartDate       string         `json:"startDate"`
	EndDate         string         `json:"endDate"`
	HostUntil       string         `json:"hostUntil"`
	State           string         `json:"state"`
	EndedAt         string         `json:"endedAt,omitempty"`
	RoomURL         string         `json:"roomUrl,omitempty"`
	HostRoomURL     string         `json:"hostRoomUrl,omitempty"`
	ViewerRoomURL   string         `json:"viewerRoomUrl,omitempty"`
	Tokens          *meetingTokens `json:"tokens,omitempty"`
	Policy          string         `json:"policy,omitempty"`
	MaxParticipants int            `json:"maxParticipants,omitempty"`
	Locked          bool           `json:"locked,omitempty"`
}

func (s *Server) meetingOut(m store.Meeting) meetingJSON {
	return meetingJSON{
		MeetingID: m.ID, RoomName: m.Room, StartDate: formatTime(m.Start), EndDate: formatTime(m.End),
		HostUntil: formatTime(m.HostUntil), State: commands.MeetingState(m, s.now()), EndedAt: formatTime(m.Ended),
		Policy: m.Policy, MaxParticipants: m.MaxParticipants, Locked: m.Locked,
	}
}

// meetingTenant authenticates a meetings request: the tenant is the admin
// token's sub.
func (s *Server) meetingTenant(w http.ResponseWriter, r *http.Request) (string, principal, bool) {
	if s.meetings == nil {
		writeError(w, r, &apiError{http.StatusNotFound, "not-found", "meetings are not enabled"})
		return "", principal{}, false
	}
	p, e := s.verifier.authenticate(r)
	if e != nil {
		writeError(w, r, e)
		return "", p, false
	}
	tenant, err := commands.NormalizeTenant(p.sub)
	if err != nil {
		writeError(w, r, &apiError{http.StatusForbidden, "wrong-tenant", "the admin token's sub is not a tenant"})
		return "", p, false
	}
	infoOf(r).tenant = tenant
	return tenant, p, true
}

// createMeeting handles POST /v1/meetings.
func (s *Server) createMeeting(w http.ResponseWriter, r *http.Request) {
	tenant, p, ok := s.meetingTenant(w, r)
	if !ok {
		return
	}
	data, e := readBody(w, r, s.maxBody, false)
	var body meetingRequest
	if e == nil {
		e = decodeStrict(data, &body)
	}
	req := commands.MeetingRequest{Tenant: tenant, By: p.by(), RoomNamePrefix: body.RoomNamePrefix, Policy: body.Policy, MaxParticipants: body.MaxParticipants, Locked: body.Locked}
	if e == nil {
		end, err := time.Parse(time.RFC3339, body.EndDate)
		switch {
		case body.EndDate == "":
			e = errBadRequest("endDate is required")
		case err != nil:
			e = errBadRequest("endDate must be an RFC 3339 time, like 2030-01-02T16:00:00Z")
		}
		req.End = end
	}
	if e == nil {
		for _, f := range body.Fields {
			switch f {
			case "hostRoomUrl":
				req.Host = true
			case "viewerRoomUrl":
			default:
				e = errBadRequest("fields may hold hostRoomUrl and viewerRoomUrl")
			}
		}
		switch body.TemplateType {
		case "":
		case "viewerMode":
			req.Viewer = true
		default:
			e = errBadRequest("templateType may only be viewerMode")
		}
		if slices.Contains(body.Fields, "viewerRoomUrl") && !req.Viewer {
			e = errBadRequest(`viewerRoomUrl needs "templateType": "viewerMode"`)
		}
	}
	if e != nil {
		writeError(w, r, e)
		return
	}
	ctx, cancel := commandContext(r)
	defer cancel()
	res, err := s.meetings.CreateMeeting(ctx, req)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := s.meetingOut(res.Meeting)
	out.RoomURL, out.HostRoomURL, out.ViewerRoomURL = res.RoomURL, res.HostRoomURL, res.ViewerRoomURL
	out.Tokens = &meetingTokens{Participant: res.ParticipantToken, Host: res.HostToken, Viewer: res.ViewerToken}
	writeJSON(w, r, http.StatusCreated, out)
}

// listMeetings handles GET /v1/meetings.
func (s *Server) listMeetings(w http.ResponseWriter, r *http.Request) {
	tenant, _, ok := s.meetingTenant(w, r)
	if !ok {
		return
	}
	ctx, cancel := commandContext(r)
	defer cancel()
	list, err := s.meetings.Meetings(ctx, tenant)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := struct {
		Results []meetingJSON `json:"results"`
	}{Results: make([]meetingJSON, 0, len(list))}
	for _, m := range list {
		out.Results = append(out.Results, s.meetingOut(m))
	}
	writeJSON(w, r, http.StatusOK, out)
}

// getMeeting handles GET /v1/meetings/{id}.
func (s *Server) getMeeting(w http.ResponseWriter, r *http.Request) {
	tenant, _, ok := s.meetingTenant(w, r)
	if !ok {
		return
	}
	ctx, cancel := commandContext(r)
	defer cancel()
	m, err := s.meetings.Meeting(ctx, tenant, r.PathValue("id"))
	if err != nil {
		s.failMeeting(w, r, err)
		return
	}
	writeJSON(w, r, http.StatusOK, s.meetingOut(m))
}

// deleteMeeting handles DELETE /v1/meetings/{id}: it ends the meeting.
func (s *Server) deleteMeeting(w http.ResponseWriter, r *http.Request) {
	tenant, p, ok := s.meetingTenant(w, r)
	if !ok {
		return
	}
	ctx, cancel := commandContext(r)
	defer cancel()
	m, err := s.meetings.EndMeeting(ctx, tenant, r.PathValue("id"), p.by())
	if err != nil {
		s.failMeeting(w, r, err)
		return
	}
	writeJSON(w, r, http.StatusOK, s.meetingOut(m))
}

func (s *Server) failMeeting(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, commands.ErrNoSuchMeeting) {
		writeError(w, r, &apiError{http.StatusNotFound, "no-such-meeting", "no meeting with that id in this tenant"})
		return
	}
	s.fail(w, r, err)
}
