package store

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"
)

func TestOutcastsSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	b := openTestBolt(t, dir)
	ctx := context.Background()
	list := []Outcast{
		{Tenant: "acme", Kind: KindUser, Value: "u1", Room: "[acme]a@conference.example.test", JID: "x@example.test"},
		{Tenant: "acme", Kind: KindUser, Value: "u1", Room: "[acme]b@conference.example.test", JID: "x@example.test"},
		{Tenant: "acme", Kind: KindJID, Value: "y@example.test", Room: "[acme]a@conference.example.test", JID: "y@example.test"},
	}
	if err := b.AddOutcasts(ctx, list); err != nil {
		t.Fatal(err)
	}
	if err := b.RemoveOutcasts(ctx, list[1:2]); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b = openTestBolt(t, dir)
	got, err := b.Outcasts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []Outcast{list[0], list[2]}
	slices.SortFunc(want, compareOutcasts)
	if !slices.Equal(got, want) {
		t.Fatalf("after a restart: %v, want %v", got, want)
	}
}

func TestOutcastsValidated(t *testing.T) {
	for name, s := range map[string]Store{"memory": NewMemory(), "bolt": openTestBolt(t, t.TempDir())} {
		for _, o := range []Outcast{
			{Tenant: "", Kind: KindUser, Value: "u", Room: "r@c", JID: "j@d"},
			{Tenant: "t", Kind: "nope", Value: "u", Room: "r@c", JID: "j@d"},
			{Tenant: "t", Kind: KindUser, Value: "u", Room: "", JID: "j@d"},
			{Tenant: "t", Kind: KindUser, Value: "u", Room: "r@c", JID: "j\x00@d"},
		} {
			if err := s.AddOutcasts(context.Background(), []Outcast{o}); !errors.Is(err, ErrInvalid) {
				t.Errorf("%s: AddOutcasts(%+v) = %v, want ErrInvalid", name, o, err)
			}
		}
	}
}

func TestRoomsSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	b := openTestBolt(t, dir)
	ctx := context.Background()
	at := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	a := RoomState{Room: "a@conference.example.test", Updated: at,
		Grants:    []Grant{{JID: "x@example.test", Affiliation: "owner", Expires: at.Add(time.Hour)}},
		Occupants: []Occupant{{JID: "x@example.test/r", Nick: "x", Joined: at, Flags: []string{"knocked", "token", "moderator"}}},
		Knocks:    []Knock{{JID: "y@example.test/r", Until: at.Add(time.Minute), Affiliation: "member", Base: "member", Role: "participant"}}}
	c := RoomState{Room: "c@conference.example.test", Updated: at}
	// Concurrent writers share commits; each must see its own write done.
	var wg sync.WaitGroup
	for _, r := range []RoomState{a, c, {Room: "b@conference.example.test", Updated: at}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := b.PutRooms(ctx, []RoomState{r}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if err := b.DeleteRooms(ctx, []string{"b@conference.example.test"}); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b = openTestBolt(t, dir)
	got, err := b.Rooms(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || !reflect.DeepEqual(got[0], a) || !reflect.DeepEqual(got[1], c) {
		t.Fatalf("after a restart: %+v", got)
	}
	bad := RoomState{Room: "r@c", Grants: []Grant{{JID: "j@d", Affiliation: "king"}}}
	if err := b.PutRooms(ctx, []RoomState{bad}); !errors.Is(err, ErrInvalid) {
		t.Errorf("PutRooms with a bad affiliation: %v", err)
	}
}
