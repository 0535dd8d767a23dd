package commands

import (
	"context"
	"crypto"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/gavelxmpp/gavel/auth"
	"github.com/gavelxmpp/gavel/store"
)

// ErrNoSuchMeeting is a meeting id that is not stored for the tenant.
var ErrNoSuchMeeting = errors.New("commands: no such meeting")

// Defaults and limits of meetings.
const (
	// DefaultHostGrace is how long host rights outlast a meeting's end,
	// as Whereby's host links do.
	DefaultHostGrace = time.Hour
	// MaxMeetingLength bounds a meeting's end date from now.
	MaxMeetingLength = 366 * 24 * time.Hour
	// maxRoomPrefix bounds a room name prefix.
	maxRoomPrefix = 40
)

// MeetingSettings are what one tenant needs to make meetings: where their
// rooms are, and the key that signs their tokens, one the tenant's token
// verification trusts.
type MeetingSettings struct {
	// MUCDomain is where the meetings' rooms are: "[tenant]name@MUCDomain".
	MUCDomain string
	// Issuer and Audience are the tokens' iss and aud.
	Issuer   string
	Audience []string
	// Exactly one of Secret (HS256) and PrivateKey signs the tokens.
	Secret     []byte
	PrivateKey crypto.Signer
	// URLTemplate makes the links: {room} (the room name), {tenant},
	// {jid} (the room JID) and {token} are replaced, escaped. Empty: no
	// links, only the tokens.
	URLTemplate string
	// HostGrace is how long host rights outlast the end (DefaultHostGrace
	// when zero).
	HostGrace time.Duration
	// Viewers is true when the tenant admits viewers (its rooms are
	// moderated); a viewer link needs it.
	Viewers bool
}

// UseMeetings enables the meeting commands: settings returns a tenant's
// meeting settings, or false when the tenant cannot make meetings (no
// signing key). Call it before the Service is used.
func (s *Service) UseMeetings(settings func(tenant string) (MeetingSettings, bool)) {
	s.meetings = settings
}

// MeetingRequest describes a meeting to make.
type MeetingRequest struct {
	Tenant string
	By     string
	// End is when the meeting ends: its participant and viewer tokens
	// expire then, the host's HostGrace later.
	End time.Time
	// RoomNamePrefix starts the room's name (letters, digits, '-', '_').
	RoomNamePrefix string
	// Host and Viewer ask for a host token (link) and a viewer token.
	Host, Viewer bool
	// Policy (a Policy word; empty: the tenant's) and MaxParticipants
	// (zero: the tenant's) are the meeting's own options: its room gets
	// them as run-time settings, as SetPolicy gives them, until the
	// meeting ends.
	Policy          string
	MaxParticipants int
	// Locked creates the meeting locked: its hosts enter, others wait
	// for a host (knocks) or are refused (bridge joins) until UNLOCK.
	Locked bool
}

// MeetingResult is a new meeting with its tokens and links. The tokens
// are given out once: the store keeps only their hashes.
type MeetingResult struct {
	Meeting                                  store.Meeting
	ParticipantToken, HostToken, ViewerToken string
	RoomURL, HostRoomURL, ViewerRoomURL      string
}

// CreateMeeting reserves a room for the tenant until req.End, mints its
// tokens and stores the meeting durably before returning.
func (s *Service) CreateMeeting(ctx context.Context, req MeetingRequest) (res MeetingResult, err error) {
	tenant, terr := NormalizeTenant(req.Tenant)
	defer func() {
		s.audit("create-meeting", req.By, res.Meeting.ID, tenantShown(Key{Tenant: tenant}, terr, req.Tenant), err)
	}()
	if terr != nil {
		return res, terr
	}
	set, ok := s.meetingSettings(tenant)
	if !ok {
		return res, fmt.Errorf("%w: tenant %q cannot make meetings: it has no signing key (token.secrets or meetings.signing_key_file)", ErrInvalid, clip(tenant))
	}
	now := s.now().Round(0).UTC()
	end := req.End.Round(0).UTC()
	switch {
	case !end.After(now):
		return res, fmt.Errorf("%w: endDate %s is not in the future", ErrInvalid, end.Format(time.RFC3339))
	case end.Sub(now) > MaxMeetingLength:
		return res, fmt.Errorf("%w: endDate is more than %v away", ErrInvalid, MaxMeetingLength)
	case req.Viewer && !set.Viewers:
		return res, fmt.Errorf("%w: tenant %q does not admit viewers (viewers: true makes its rooms moderated)", ErrInvalid, clip(tenant))
	case req.MaxParticipants < 0 || req.MaxParticipants > MaxMeetingParticipants:
		return res, fmt.Errorf("%w: maxParticipants must be between 0 and %d", ErrInvalid, MaxMeetingParticipants)
	}
	switch req.Policy {
	case "", PolicyToken, PolicyAutoOwner, PolicyAllOwners:
	default:
		return res, fmt.Errorf("%w: policy %q: want %s, %s or %s", ErrInvalid, clip(req.Policy), PolicyToken, PolicyAutoOwner, PolicyAllOwners)
	}
	opts, hasOpts := s.rooms.(RoomOptionSetter)
	withOpts := req.Policy != "" || req.MaxParticipants > 0 || req.Locked
	if !hasOpts && withOpts {
		return res, fmt.Errorf("%w: meetings cannot have their own options here", ErrInvalid)
	}
	prefix := strings.ToLower(strings.TrimSpace(req.RoomNamePrefix))
	prefix = strings.TrimPrefix(prefix, "/")
	if len(prefix) > maxRoomPrefix || strings.IndexFunc(prefix, func(r rune) bool {
		return !('a' <= r && r <= 'z' || '0' <= r && r <= '9' || r == '-' || r == '_')
	}) >= 0 {
		return res, fmt.Errorf("%w: roomNamePrefix may hold at most %d letters, digits, '-' and '_'", ErrInvalid, maxRoomPrefix)
	}
	var id [8]byte
	_, _ = rand.Read(id[:])
	m := store.Meeting{ID: hex.EncodeToString(id[:]), Tenant: tenant, Start: now, End: end, By: req.By, Viewers: req.Viewer,
		Policy: req.Policy, MaxParticipants: req.MaxParticipants, Locked: req.Locked}
	name := m.ID
	if prefix != "" {
		name = prefix + "-" + m.ID
	}
	ar, err := ParseRoom("[" + tenant + "]" + name + "@" + set.MUCDomain)
	if err != nil {
		return res, err
	}
	m.Room = ar.JID
	grace := set.HostGrace
	if grace <= 0 {
		grace = DefaultHostGrace
	}
	m.HostUntil = end.Add(grace)
	mint := func(role string, exp time.Time, moderator bool, viewer bool) (string, string, error) {
		r := auth.MintRequest{
			Secret: set.Secret, PrivateKey: set.PrivateKey, Issuer: set.Issuer, Audience: set.Audience,
			Subject: tenant, Room: ar.Name, UserID: role + ":" + m.ID, Name: role, Moderator: moderator,
			IssuedAt: now, Expires: exp,
		}
		if viewer {
			r.Role = "viewer"
		}
		tok, err := auth.Mint(r)
		if err != nil {
			return "", "", fmt.Errorf("commands: minting the %s token: %w", role, err)
		}
		h := auth.TokenHash(tok) // as bans match tokens
		m.Tokens = append(m.Tokens, store.MeetingToken{Role: role, Hash: hex.EncodeToString(h[:]), Expires: exp})
		return tok, link(set, ar, tok), nil
	}
	if res.ParticipantToken, res.RoomURL, err = mint("participant", end, false, false); err != nil {
		return res, err
	}
	if req.Host {
		if res.HostToken, res.HostRoomURL, err = mint("host", m.HostUntil, true, false); err != nil {
			return res, err
		}
	}
	if req.Viewer {
		if res.ViewerToken, res.ViewerRoomURL, err = mint("viewer", end, false, true); err != nil {
			return res, err
		}
	}
	if withOpts {
		// Before the meeting is stored: a meeting is never without its
		// options. The room keeps them (durably, also before its first
		// knock) until the meeting's host rights end.
		o := RoomOptions{Policy: req.Policy, MaxParticipants: req.MaxParticipants, SetMax: req.MaxParticipants > 0, KeepUntil: m.HostUntil}
		if req.Locked {
			o.Locked = &req.Locked
		}
		if err := opts.SetRoomOptions(ctx, m.Room, o); err != nil {
			return MeetingResult{}, err
		}
	}
	if err := s.store.PutMeeting(ctx, m); err != nil {
		return MeetingResult{}, storeErr(err)
	}
	res.Meeting = m
	return res, nil
}

// link fills the tenant's URL template for a token; "" without one.
func link(set MeetingSettings, ar auth.Room, tok string) string {
	if set.URLTemplate == "" {
		return ""
	}
	return strings.NewReplacer(
		"{room}", url.PathEscape(ar.Name), "{tenant}", url.PathEscape(ar.Tenant),
		"{jid}", url.QueryEscape(ar.JID), "{token}", url.QueryEscape(tok),
	).Replace(set.URLTemplate)
}

func (s *Service) meetingSettings(tenant string) (MeetingSettings, bool) {
	if s.meetings == nil {
		return MeetingSettings{}, false
	}
	return s.meetings(tenant)
}

// Meetings lists a tenant's meetings, ended ones too, oldest first.
func (s *Service) Meetings(ctx context.Context, tenant string) ([]store.Meeting, error) {
	t, err := NormalizeTenant(tenant)
	if err != nil {
		return nil, err
	}
	list, err := s.store.Meetings(ctx, t)
	if err != nil {
		return nil, storeErr(err)
	}
	return list, nil
}

// Meeting returns one of a tenant's meetings; ErrNoSuchMeeting when the
// tenant has none with that id.
func (s *Service) Meeting(ctx context.Context, tenant, id string) (store.Meeting, error) {
	list, err := s.Meetings(ctx, tenant)
	if err != nil {
		return store.Meeting{}, err
	}
	for _, m := range list {
		if m.ID == id {
			return m, nil
		}
	}
	return store.Meeting{}, ErrNoSuchMeeting
}

// EndMeeting ends a meeting: it is stored as ended, its tokens are banned
// (by hash, until they expire) so that they are refused from then on, and
// its room is destroyed. Ending an ended meeting again destroys its room
// again.
func (s *Service) EndMeeting(ctx context.Context, tenant, id, by string) (m store.Meeting, err error) {
	defer func() { s.audit("end-meeting", by, clip(id), m.Tenant, err) }()
	m, err = s.Meeting(ctx, tenant, id)
	if err != nil {
		return m, err
	}
	now := s.now().Round(0).UTC()
	if m.Ended.IsZero() {
		m.Ended = now
		if err := s.store.PutMeeting(ctx, m); err != nil {
			return m, storeErr(err)
		}
	}
	for _, t := range m.Tokens {
		if !t.Expires.After(now) {
			continue
		}
		b := store.Ban{Tenant: m.Tenant, Kind: store.KindToken, Value: t.Hash, Reason: "meeting " + m.ID + " ended", By: by, Created: now, Expires: t.Expires}
		if err := s.store.AddBan(ctx, b); err != nil {
			return m, storeErr(err)
		}
		var h [32]byte
		_, _ = hex.Decode(h[:], []byte(t.Hash))
		s.forget(h)
	}
	if err := s.rooms.Destroy(ctx, m.Room, "the meeting has ended"); err != nil && !errors.Is(err, ErrRoomNotFound) {
		return m, err
	}
	return m, nil
}

// MeetingState is a meeting's state at now: "ended" once ended, "over"
// after its end date, else "active".
func MeetingState(m store.Meeting, now time.Time) string {
	switch {
	case !m.Ended.IsZero():
		return "ended"
	case !now.Before(m.End):
		return "over"
	}
	return "active"
}
