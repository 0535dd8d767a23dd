package policy

import (
	"testing"
	"time"
)

func TestAdmit(t *testing.T) {
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	guest := Identity{}
	token := Identity{HasToken: true, Expires: now.Add(time.Hour)}
	expired := Identity{HasToken: true, Expires: now}
	forever := Identity{HasToken: true, Moderator: true}
	cases := []struct {
		name   string
		guests Guests
		id     Identity
		want   string
	}{
		{"guest denied", GuestsDeny, guest, RefusalTokenRequired},
		{"guest member", GuestsMember, guest, ""},
		{"guest visitor", GuestsVisitor, guest, ""},
		{"token", GuestsDeny, token, ""},
		{"token without expiry", GuestsDeny, forever, ""},
		{"expired token", GuestsMember, expired, RefusalTokenExpired},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := Admit(Options{Guests: c.guests}, c.id, now); got != c.want {
				t.Errorf("Admit = %q, want %q", got, c.want)
			}
		})
	}
}

// Admit refuses exactly what a fresh room refuses, for every policy.
func TestAdmitAgreesWithKnock(t *testing.T) {
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	ids := []Identity{
		{},
		{HasToken: true},
		{HasToken: true, Moderator: true, Expires: now.Add(time.Minute)},
		{HasToken: true, Viewer: true, Expires: now.Add(-time.Second)},
		{HasToken: true, Expires: now},
	}
	for _, kind := range []Kind{Token, AutoOwner, AllOwners} {
		for _, guests := range []Guests{GuestsDeny, GuestsMember, GuestsVisitor} {
			for _, viewers := range []bool{false, true} {
				opts := Options{Kind: kind, Guests: guests, Viewers: viewers}
				for i, id := range ids {
					r := NewRoom("r@conference.example.test", opts)
					g, _ := r.Knock("a@example.test", "a@example.test/x", id, now)
					if got := Admit(opts, id, now); got != g.Refusal {
						t.Errorf("%v/%v viewers=%v identity %d: Admit %q, Knock %q", kind, guests, viewers, i, got, g.Refusal)
					}
				}
			}
		}
	}
}
