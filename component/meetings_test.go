package component

import (
	"github.com/gavelxmpp/gavel/auth"
	"strings"
	"testing"
	"time"

	"github.com/gavelxmpp/gavel/commands"
	"github.com/gavelxmpp/gavel/internal/prosodytest"
	"github.com/gavelxmpp/gavel/internal/xclient"
	"github.com/gavelxmpp/gavel/policy"
)

// startMeetings runs gavel on a fake clock with a command layer that makes
// meetings (HS256 with the test secret, viewers admitted), as cmd wires it.
func startMeetings(t *testing.T, srv *server) (*moderated, *commands.Service, *fakeClock) {
	t.Helper()
	clock := &fakeClock{now: time.Now()}
	ten := tenant(policy.Token, policy.GuestsDeny)
	ten.Policy.Viewers = true
	g := startModeratedWith(t, srv, MUC{Domain: prosodytest.MUC}, map[string]Tenant{"": ten}, nil, func(o *ModerationOptions) { o.Clock = clock })
	cmds, err := commands.New(commands.Options{Store: g.store, Rooms: g.mod, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	cmds.UseMeetings(func(string) (commands.MeetingSettings, bool) {
		return commands.MeetingSettings{
			MUCDomain: prosodytest.MUC, Issuer: "gavel-test", Audience: []string{"jitsi"}, Secret: []byte(testSecret),
			Viewers: true, URLTemplate: "https://meet.example.test/{room}?jwt={token}",
		}, true
	})
	return g, cmds, clock
}

// TestMeetingLinks makes a meeting with host, participant and viewer
// links: each token gives its role (the viewer cannot post), host rights
// end at the end date plus one hour by the injected clock, and ending a
// meeting destroys its room and refuses its tokens from then on.
func TestMeetingLinks(t *testing.T) {
	onEachServer(t, func(t *testing.T, srv *server) {
		_, cmds, clock := startMeetings(t, srv)
		ctx := ctxT(t, 20*time.Second)
		end := clock.Now().Add(30 * time.Minute)
		long, err := cmds.CreateMeeting(ctx, commands.MeetingRequest{Tenant: "acme", By: "test", End: end, RoomNamePrefix: "Standup", Host: true, Viewer: true})
		if err != nil {
			t.Fatal(err)
		}
		short, err := cmds.CreateMeeting(ctx, commands.MeetingRequest{Tenant: "acme", By: "test", End: end})
		if err != nil {
			t.Fatal(err)
		}
		room := long.Meeting.Room
		if !strings.HasPrefix(room, "[acme]standup-") || !strings.Contains(long.HostRoomURL, "?jwt="+long.HostToken) || long.ViewerToken == "" {
			t.Fatalf("meeting %+v", long)
		}
		host, part, viewer := login(t, srv), login(t, srv), login(t, srv)
		res, p := knockJoin(t, host, room, long.HostToken, "host")
		// A token's rights end at its exp plus the tenant's leeway (auth's
		// one rule); the host token's exp is the end date plus one hour.
		wantUntil := end.Add(time.Hour + auth.DefaultLeeway).UTC().Format(time.RFC3339)
		if p.Affiliation != "owner" || p.Role != "moderator" || res.Expires != wantUntil {
			t.Errorf("host: %s/%s, rights until %q, want owner/moderator until %s", p.Affiliation, p.Role, res.Expires, wantUntil)
		}
		if _, p := knockJoin(t, part, room, long.ParticipantToken, "part"); p.Role != "participant" {
			t.Errorf("participant joined as %s/%s", p.Affiliation, p.Role)
		}
		if res, p := knockJoin(t, viewer, room, long.ViewerToken, "viewer"); res.Role != "visitor" || p.Role != "visitor" {
			t.Errorf("viewer: knock %+v, joined as %s", res, p.Role)
		}
		if err := viewer.Send(ctx, `<message to='`+room+`' type='groupchat' id='v1'><body>from the viewer</body></message>`); err != nil {
			t.Fatal(err)
		}
		if _, err := viewer.WaitMessage(ctx, func(m xclient.Message) bool {
			return m.Type == "error" && strings.HasPrefix(strings.ToLower(m.From), room)
		}); err != nil {
			t.Errorf("the viewer's message was not refused: %v", err)
		}

		// Ending the other meeting destroys its room and refuses its token.
		other := login(t, srv)
		knockJoin(t, other, short.Meeting.Room, short.ParticipantToken, "early")
		ended, err := cmds.EndMeeting(ctx, "acme", short.Meeting.ID, "test")
		if err != nil || commands.MeetingState(ended, clock.Now()) != "ended" {
			t.Fatalf("end meeting: %v, %+v", err, ended)
		}
		if _, err := other.WaitPresence(ctx, func(p xclient.Presence) bool { return p.Destroyed }); err != nil {
			t.Errorf("ending the meeting did not destroy its room: %v", err)
		}
		_, err = login(t, srv).Knock(ctx, prosodytest.Component, short.Meeting.Room, short.ParticipantToken)
		wantRefusal(t, err, "auth", "forbidden", "banned")

		// Host rights end one hour after the end date (plus the leeway).
		clock.Advance(time.Until(end.Add(time.Hour+auth.DefaultLeeway)) + time.Second)
		if _, err := part.WaitPresence(ctx, func(p xclient.Presence) bool {
			return strings.EqualFold(p.From, room+"/host") && p.Type == "" && p.Affiliation != "owner" && p.Role != "moderator"
		}); err != nil {
			t.Errorf("host rights did not end at the end date plus one hour: %v", err)
		}
	})
}
