package store

import (
	"context"
	"errors"
	"slices"
	"testing"
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
