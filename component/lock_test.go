package component

import (
	"strings"
	"testing"
	"time"

	"github.com/gavelxmpp/gavel/auth"
	"github.com/gavelxmpp/gavel/commands"
	"github.com/gavelxmpp/gavel/internal/prosodytest"
	"github.com/gavelxmpp/gavel/internal/xclient"
	"github.com/gavelxmpp/gavel/policy"
)

// TestMeetingOptions makes meetings with their own policy and bound on
// participants before anyone knocks: the options are stored with the
// meeting and with its room's settings, and its knocks get them.
func TestMeetingOptions(t *testing.T) {
	srv := shared
	g, cmds, clock := startMeetings(t, srv)
	ctx := ctxT(t, 20*time.Second)
	end := clock.Now().Add(30 * time.Minute)
	owners, err := cmds.CreateMeeting(ctx, commands.MeetingRequest{Tenant: "acme", By: "test", End: end, Host: true, Policy: commands.PolicyAllOwners})
	if err != nil {
		t.Fatal(err)
	}
	small, err := cmds.CreateMeeting(ctx, commands.MeetingRequest{Tenant: "acme", By: "test", End: end, Host: true, MaxParticipants: 2})
	if err != nil {
		t.Fatal(err)
	}
	closed, err := cmds.CreateMeeting(ctx, commands.MeetingRequest{Tenant: "acme", By: "test", End: end, Host: true, Locked: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cmds.CreateMeeting(ctx, commands.MeetingRequest{Tenant: "acme", End: end, Policy: "everyone"}); err == nil {
		t.Error("an unknown policy was accepted")
	}
	stored, err := g.store.Rooms(ctx)
	if err != nil {
		t.Fatal(err)
	}
	kept := map[string]bool{}
	for _, st := range stored {
		if s := st.Settings; s != nil && !s.KeepUntil.Before(end) {
			kept[st.Room] = s.Policy == "all-owners" || s.MaxParticipants == 2
		}
	}
	if !kept[owners.Meeting.Room] || !kept[small.Meeting.Room] {
		t.Fatalf("the rooms' settings are not stored: %+v", stored)
	}
	if m, err := cmds.Meeting(ctx, "acme", small.Meeting.ID); err != nil || m.MaxParticipants != 2 || m.Policy != "" {
		t.Fatalf("stored meeting %+v, %v", m, err)
	}
	if m, err := cmds.Meeting(ctx, "acme", closed.Meeting.ID); err != nil || !m.Locked {
		t.Fatalf("stored locked meeting %+v, %v", m, err)
	}

	// Created locked: with no host there, a participant is refused; the
	// host enters.
	_, err = login(t, srv).Knock(ctx, prosodytest.Component, closed.Meeting.Room, closed.ParticipantToken)
	wantRefusal(t, err, "auth", "not-allowed", "locked")
	if res, _ := knockJoin(t, login(t, srv), closed.Meeting.Room, closed.HostToken, "host"); res.Affiliation != "owner" {
		t.Errorf("host of a locked meeting: %+v", res)
	}

	// all-owners: the participant link gives the host's rights.
	knockJoin(t, login(t, srv), owners.Meeting.Room, owners.HostToken, "host")
	if res, _ := knockJoin(t, login(t, srv), owners.Meeting.Room, owners.ParticipantToken, "part"); res.Affiliation != "owner" {
		t.Errorf("all-owners participant: %+v", res)
	}
	// maxParticipants 2: the host and one participant speak, the next views.
	room := small.Meeting.Room
	knockJoin(t, login(t, srv), room, small.HostToken, "host")
	if res, _ := knockJoin(t, login(t, srv), room, small.ParticipantToken, "p1"); res.Role != "participant" {
		t.Errorf("first participant: %+v", res)
	}
	if res, p := knockJoin(t, login(t, srv), room, small.ParticipantToken, "p2"); res.Role != "visitor" || res.Reason != "capacity" || p.Role != "visitor" {
		t.Errorf("participant beyond the bound: %+v, joined as %s", res, p.Role)
	}
}

// TestLockedMeeting locks a room: hosts enter directly; of three knockers,
// the one a host admits enters, the one it denies and the one nobody
// answers (the fake clock passes the timeout) are refused "locked"; a
// participant cannot answer.
func TestLockedMeeting(t *testing.T) {
	srv := shared
	clock := &fakeClock{now: time.Now()}
	g := startModeratedWith(t, srv, MUC{Domain: prosodytest.MUC}, map[string]Tenant{"": tenant(policy.Token, policy.GuestsMember)}, nil, func(o *ModerationOptions) { o.Clock = clock })
	room := newRoom("acme")
	ctx := ctxT(t, 20*time.Second)
	named := func(name string, mod bool) string {
		return mint(t, room, mod, func(r *auth.MintRequest) { r.Name = name })
	}
	host := login(t, srv)
	knockJoin(t, host, room, named("host", true), "host")
	if err := g.cmds.SetLock(ctx, room, true, "test"); err != nil {
		t.Fatal(err)
	}
	if res, _ := knockJoin(t, login(t, srv), room, named("cohost", true), "cohost"); res.Affiliation != "owner" {
		t.Errorf("a host knocking on a locked room: %+v", res)
	}
	type result struct {
		res xclient.KnockResult
		err error
	}
	knockers := map[string]*xclient.Client{}
	results := map[string]chan result{}
	requests := map[string]string{}
	for _, name := range []string{"alice", "bob", "carl", "erin"} {
		cl := login(t, srv)
		knockers[name], results[name] = cl, make(chan result, 1)
		tok := named(name, false)
		go func() {
			res, err := cl.Knock(ctx, prosodytest.Component, room, tok)
			results[name] <- result{res, err}
		}()
		m, err := host.WaitMessage(ctx, func(m xclient.Message) bool {
			return strings.EqualFold(m.From, prosodytest.Component) && strings.HasPrefix(m.Body, name+" (")
		})
		if err != nil {
			t.Fatalf("the host was not asked about %s: %v", name, err)
		}
		i := strings.LastIndex(m.Body, "with request ")
		requests[name] = strings.TrimSuffix(m.Body[i+len("with request "):], ".")
	}
	// Someone who is not a host in the room cannot answer.
	part := login(t, srv)
	if _, err := runCommand(t, part, "admit", "room", room, "request", requests["alice"], "decision", "admit"); err == nil {
		t.Error("someone not in the room admitted a knock")
	}
	if note, err := runCommand(t, host, "admit", "room", room, "request", requests["alice"], "decision", "admit"); err != nil || note != "admitted" {
		t.Fatalf("admit: %q, %v", note, err)
	}
	if r := <-results["alice"]; r.err != nil || r.res.Role != "participant" {
		t.Errorf("admitted knock: %+v, %v", r.res, r.err)
	} else if _, err := knockers["alice"].Join(ctx, room, "alice"); err != nil {
		t.Errorf("the admitted knocker could not join: %v", err)
	}
	if _, err := runCommand(t, host, "admit", "room", room, "request", requests["alice"]); err == nil {
		t.Error("a request was answered twice")
	}
	if note, err := runCommand(t, host, "admit", "room", room, "request", requests["bob"], "decision", "deny"); err != nil || note != "denied" {
		t.Fatalf("deny: %q, %v", note, err)
	}
	r := <-results["bob"]
	wantRefusal(t, r.err, "auth", "not-allowed", "locked")
	// A host answers by sending the form back, submitted, in a message
	// (with a body first, as chat clients write it); gavel says what came
	// of it. The same from someone who is no host is refused.
	answer := func(cl *xclient.Client, request, decision string) string {
		t.Helper()
		form := `<message to='` + prosodytest.Component + `' type='normal'><body>answer</body>` +
			`<x xmlns='jabber:x:data' type='submit'>` +
			`<field var='FORM_TYPE' type='hidden'><value>` + NSKnockRequest + `</value></field>` +
			`<field var='room'><value>` + room + `</value></field>` +
			`<field var='request'><value>` + request + `</value></field>` +
			`<field var='decision'><value>` + decision + `</value></field></x></message>`
		if err := cl.Send(ctx, form); err != nil {
			t.Fatal(err)
		}
		m, err := cl.WaitMessage(ctx, func(m xclient.Message) bool {
			return strings.EqualFold(m.From, prosodytest.Component) && (strings.HasPrefix(m.Body, "The request") || strings.HasPrefix(m.Body, "Your answer"))
		})
		if err != nil {
			t.Fatalf("no answer to the form: %v", err)
		}
		return m.Body
	}
	if body := answer(part, requests["erin"], "admit"); !strings.Contains(body, "not taken") {
		t.Errorf("someone not in the room answered by form: %q", body)
	}
	if body := answer(host, requests["erin"], "admit"); body != "The request was admitted." {
		t.Errorf("the host's form answer: %q", body)
	}
	if r := <-results["erin"]; r.err != nil || r.res.Role != "participant" {
		t.Errorf("knock admitted by form: %+v, %v", r.res, r.err)
	}
	// The worker has armed carl's timeout once a command after the hold
	// went through it.
	if err := g.cmds.SetLock(ctx, room, true, "test"); err != nil {
		t.Fatal(err)
	}
	clock.Advance(61 * time.Second)
	r = <-results["carl"]
	wantRefusal(t, r.err, "auth", "not-allowed", "locked")
	// Unlocked, knocks pass again.
	if err := g.cmds.SetLock(ctx, room, false, "test"); err != nil {
		t.Fatal(err)
	}
	if res, _ := knockJoin(t, login(t, srv), room, named("dave", false), "dave"); res.Role != "participant" {
		t.Errorf("after unlock: %+v", res)
	}
}
