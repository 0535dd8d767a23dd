// Package storetest is the conformance suite of store.Store: every backend
// (Memory, Bolt, Postgres, and any added later) must pass Run. It checks
// every method of the interface: validation and its exact messages, bans
// (add, replace, remove, list order, expiry, Banned without allocation),
// outcasts, governed-room state, Check, cancelled contexts and Close.
//
// A backend's own tests call it with a function that opens a fresh, empty
// store:
//
//	storetest.Run(t, storetest.Backend{Open: func(t *testing.T) store.Store { ... }})
//
// Backends may keep times at microsecond precision (PostgreSQL does): the
// suite compares times after truncating them to the microsecond.
package storetest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gavelxmpp/gavel/store"
)

// Backend opens stores of one implementation for the suite.
type Backend struct {
	// Open returns a fresh, empty store; the backend closes it when the
	// test ends (closing it twice must be harmless).
	Open func(t *testing.T) store.Store
	// Reopen closes s and opens the same storage again, as a restart
	// would; nil for a backend that keeps nothing (Memory).
	Reopen func(t *testing.T, s store.Store) store.Store
}

var (
	ctx      = context.Background()
	hashA    = sha256Hex("token-a")
	hashB    = sha256Hex("token-b")
	longer   = strings.Repeat("x", store.MaxLen+1)
	longest  = strings.Repeat("x", store.MaxLen)
	hourAgo  = time.Now().Add(-time.Hour).UTC().Truncate(time.Microsecond)
	inAnHour = time.Now().Add(time.Hour).UTC().Truncate(time.Microsecond)
	// fixtureBase is the Created time of the oldest ban of fixture().
	fixtureBase = time.Now().Add(-24 * time.Hour).UTC().Truncate(time.Microsecond)
)

// Run runs the whole suite against b, each part as a subtest.
func Run(t *testing.T, b Backend) {
	t.Run("AddBanValidation", func(t *testing.T) { testAddBanValidation(t, b) })
	t.Run("RemoveBanValidation", func(t *testing.T) { testRemoveBanValidation(t, b) })
	t.Run("Bans", func(t *testing.T) { testBans(t, b) })
	t.Run("Concurrent", func(t *testing.T) { testConcurrent(t, b) })
	t.Run("BannedDoesNotAllocate", func(t *testing.T) { testBannedDoesNotAllocate(t, b) })
	t.Run("Outcasts", func(t *testing.T) { testOutcasts(t, b) })
	t.Run("Rooms", func(t *testing.T) { testRooms(t, b) })
	t.Run("Meetings", func(t *testing.T) { testMeetings(t, b) })
	t.Run("Check", func(t *testing.T) { testCheck(t, b) })
	if b.Reopen != nil {
		t.Run("Durable", func(t *testing.T) { testDurable(t, b) })
	}
}

func testAddBanValidation(t *testing.T, b Backend) {
	valid := store.Ban{Tenant: "acme", Kind: store.KindUser, Value: "u1"}
	with := func(f func(*store.Ban)) store.Ban {
		b := valid
		f(&b)
		return b
	}
	tests := []struct {
		name    string
		ban     store.Ban
		wantErr string // "" for a ban that must be accepted
	}{
		{name: "valid user", ban: valid},
		{name: "valid jid", ban: with(func(b *store.Ban) { b.Kind, b.Value = store.KindJID, "troll@example.com" })},
		{name: "valid token", ban: with(func(b *store.Ban) { b.Kind, b.Value = store.KindToken, hashA })},
		{name: "valid uppercase token", ban: with(func(b *store.Ban) { b.Kind, b.Value = store.KindToken, strings.ToUpper(hashA) })},
		{name: "value at limit", ban: with(func(b *store.Ban) { b.Value = longest })},
		{name: "tenant at limit", ban: with(func(b *store.Ban) { b.Tenant = longest })},
		{name: "expires after created", ban: with(func(b *store.Ban) { b.Created, b.Expires = hourAgo, inAnHour })},
		{name: "invalid UTF-8 reason is repaired", ban: with(func(b *store.Ban) { b.Reason = "bad \xff" })},
		{name: "empty tenant", ban: with(func(b *store.Ban) { b.Tenant = "" }), wantErr: "store: ban tenant is empty"},
		{name: "tenant over limit", ban: with(func(b *store.Ban) { b.Tenant = longer }), wantErr: "store: ban tenant is 1025 bytes, the limit is 1024"},
		{name: "tenant with NUL", ban: with(func(b *store.Ban) { b.Tenant = "a\x00b" }), wantErr: "store: ban tenant must be valid UTF-8 without NUL bytes"},
		{name: "unknown kind", ban: with(func(b *store.Ban) { b.Kind = "ip" }), wantErr: `store: ban kind "ip" is unknown (want "user", "token" or "jid")`},
		{name: "empty kind", ban: with(func(b *store.Ban) { b.Kind = "" }), wantErr: `store: ban kind "" is unknown (want "user", "token" or "jid")`},
		{name: "empty value", ban: with(func(b *store.Ban) { b.Value = "" }), wantErr: "store: ban value is empty"},
		{name: "value over limit", ban: with(func(b *store.Ban) { b.Value = longer }), wantErr: "store: ban value is 1025 bytes, the limit is 1024"},
		{name: "value not UTF-8", ban: with(func(b *store.Ban) { b.Value = "\xff\xfe" }), wantErr: "store: ban value must be valid UTF-8 without NUL bytes"},
		{
			name:    "raw token instead of hash",
			ban:     with(func(b *store.Ban) { b.Kind, b.Value = store.KindToken, "eyJhbGciOiJIUzI1NiJ9.secret" }),
			wantErr: `store: ban value for kind "token" must be the 64-character hex SHA-256 of the token (hex of auth.TokenHash)`,
		},
		{
			name:    "full JID",
			ban:     with(func(b *store.Ban) { b.Kind, b.Value = store.KindJID, "troll@example.com/phone" }),
			wantErr: `store: ban value for kind "jid" must be a bare JID (without /resource)`,
		},
		{
			name: "expires at created",
			ban: with(func(b *store.Ban) {
				b.Created = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
				b.Expires = b.Created
			}),
			wantErr: "store: ban expires (2025-01-02T03:04:05Z) is not after created (2025-01-02T03:04:05Z)",
		},
	}
	s := b.Open(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.AddBan(ctx, tt.ban)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("AddBan: %v", err)
				}
				if tt.ban.Reason != "" {
					got, ok := s.Banned(tt.ban.Tenant, tt.ban.Kind, tt.ban.Value, time.Now())
					if !ok || got.Reason != strings.ToValidUTF8(tt.ban.Reason, "\uFFFD") {
						t.Errorf("Banned = %+v, %v; want the reason repaired", got, ok)
					}
				}
				return
			}
			if err == nil || err.Error() != tt.wantErr {
				t.Fatalf("AddBan error = %v, want %q", err, tt.wantErr)
			}
			if !errors.Is(err, store.ErrInvalid) {
				t.Errorf("errors.Is(%v, ErrInvalid) = false", err)
			}
		})
	}
}

func testRemoveBanValidation(t *testing.T, b Backend) {
	tests := []struct {
		name    string
		tenant  string
		kind    store.Kind
		value   string
		wantErr string
	}{
		{name: "empty tenant", kind: store.KindUser, value: "u", wantErr: "store: ban tenant is empty"},
		{name: "unknown kind", tenant: "t", kind: "ip", value: "u", wantErr: `store: ban kind "ip" is unknown (want "user", "token" or "jid")`},
		{name: "empty value", tenant: "t", kind: store.KindUser, wantErr: "store: ban value is empty"},
		{name: "raw token", tenant: "t", kind: store.KindToken, value: "secret", wantErr: `store: ban value for kind "token" must be the 64-character hex SHA-256 of the token (hex of auth.TokenHash)`},
	}
	s := b.Open(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, err := s.RemoveBan(ctx, tt.tenant, tt.kind, tt.value)
			if ok || err == nil || err.Error() != tt.wantErr || !errors.Is(err, store.ErrInvalid) {
				t.Fatalf("RemoveBan = %v, %v; want false, %q", ok, err, tt.wantErr)
			}
		})
	}
}

// SameBan reports whether two bans are equal, times compared to the
// microsecond.
func SameBan(a, b store.Ban) bool {
	return a.Tenant == b.Tenant && a.Kind == b.Kind && a.Value == b.Value &&
		a.Reason == b.Reason && a.By == b.By &&
		a.Created.Truncate(time.Microsecond).Equal(b.Created.Truncate(time.Microsecond)) &&
		a.Expires.Truncate(time.Microsecond).Equal(b.Expires.Truncate(time.Microsecond))
}

func keys(bans []store.Ban) []string {
	out := make([]string, len(bans))
	for i, b := range bans {
		out[i] = b.Tenant + "/" + string(b.Kind) + "/" + b.Value
	}
	return out
}

// fixture is a set of bans relative to the current time, so that none is
// pruned while a test runs.
func fixture() []store.Ban {
	base := fixtureBase
	return []store.Ban{
		{Tenant: "acme", Kind: store.KindUser, Value: "u2", Reason: "spam", By: "admin@acme.example", Created: base.Add(2 * time.Minute)},
		{Tenant: "acme", Kind: store.KindUser, Value: "u1", Created: base.Add(2 * time.Minute)},
		{Tenant: "acme", Kind: store.KindJID, Value: "troll@example.com", Created: base.Add(time.Minute), Expires: inAnHour},
		{Tenant: "acme", Kind: store.KindToken, Value: hashA, Created: base.Add(3 * time.Minute)},
		{Tenant: "beta", Kind: store.KindUser, Value: "u1", Created: base},
	}
}

func openWithFixture(t *testing.T, b Backend) store.Store {
	t.Helper()
	s := b.Open(t)
	for _, ban := range fixture() {
		if err := s.AddBan(ctx, ban); err != nil {
			t.Fatalf("AddBan(%+v): %v", ban, err)
		}
	}
	return s
}

func testBans(t *testing.T, b Backend) {
	later := inAnHour.Add(time.Minute)
	tests := []struct {
		name string
		// run acts on a store holding fixture() and checks the outcome.
		run func(t *testing.T, s store.Store)
	}{
		{name: "list tenant sorted by created then value", run: func(t *testing.T, s store.Store) {
			got, err := s.ListBans(ctx, "acme", time.Now())
			if err != nil {
				t.Fatal(err)
			}
			want := "[acme/jid/troll@example.com acme/user/u1 acme/user/u2 acme/token/" + hashA + "]"
			if fmt.Sprint(keys(got)) != want {
				t.Errorf("ListBans = %v, want %s", keys(got), want)
			}
			if !SameBan(got[2], fixture()[0]) {
				t.Errorf("ListBans[2] = %+v, want %+v", got[2], fixture()[0])
			}
		}},
		{name: "list all tenants", run: func(t *testing.T, s store.Store) {
			got, err := s.ListBans(ctx, "", time.Now())
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 5 || got[0].Tenant != "beta" {
				t.Errorf("ListBans(\"\") = %v", keys(got))
			}
		}},
		{name: "list unknown tenant is empty", run: func(t *testing.T, s store.Store) {
			got, err := s.ListBans(ctx, "nobody", time.Now())
			if err != nil || got == nil || len(got) != 0 {
				t.Errorf("ListBans = %v, %v; want empty, non-nil", got, err)
			}
		}},
		{name: "list hides expired", run: func(t *testing.T, s store.Store) {
			got, err := s.ListBans(ctx, "acme", later)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 3 {
				t.Errorf("ListBans after expiry = %v, want 3 bans", keys(got))
			}
		}},
		{name: "banned hit returns the ban", run: func(t *testing.T, s store.Store) {
			got, ok := s.Banned("acme", store.KindUser, "u2", time.Now())
			if !ok || !SameBan(got, fixture()[0]) {
				t.Errorf("Banned = %+v, %v; want %+v", got, ok, fixture()[0])
			}
		}},
		{name: "banned is per tenant and kind", run: func(t *testing.T, s store.Store) {
			if _, ok := s.Banned("beta", store.KindUser, "u2", time.Now()); ok {
				t.Error("u2 banned in beta")
			}
			if _, ok := s.Banned("acme", store.KindJID, "u2", time.Now()); ok {
				t.Error("u2 banned as a JID")
			}
		}},
		{name: "banned ignores expired", run: func(t *testing.T, s store.Store) {
			if _, ok := s.Banned("acme", store.KindJID, "troll@example.com", time.Now()); !ok {
				t.Error("not banned before expiry")
			}
			if _, ok := s.Banned("acme", store.KindJID, "troll@example.com", inAnHour); ok {
				t.Error("banned at expiry")
			}
		}},
		{name: "add replaces", run: func(t *testing.T, s store.Store) {
			ban := fixture()[0]
			ban.Reason, ban.Expires = "changed", inAnHour
			if err := s.AddBan(ctx, ban); err != nil {
				t.Fatal(err)
			}
			got, ok := s.Banned("acme", store.KindUser, "u2", time.Now())
			if !ok || !SameBan(got, ban) {
				t.Errorf("Banned = %+v, want %+v", got, ban)
			}
			all, _ := s.ListBans(ctx, "", time.Now())
			if len(all) != 5 {
				t.Errorf("%d bans after replace, want 5", len(all))
			}
		}},
		{name: "add sets created", run: func(t *testing.T, s store.Store) {
			before := time.Now()
			if err := s.AddBan(ctx, store.Ban{Tenant: "acme", Kind: store.KindUser, Value: "new"}); err != nil {
				t.Fatal(err)
			}
			got, ok := s.Banned("acme", store.KindUser, "new", time.Now())
			if !ok || got.Created.Before(before.Truncate(time.Microsecond)) || got.Created.After(time.Now()) {
				t.Errorf("Banned = %+v, %v; want Created about now", got, ok)
			}
		}},
		{name: "add lowercases token hash", run: func(t *testing.T, s store.Store) {
			if err := s.AddBan(ctx, store.Ban{Tenant: "beta", Kind: store.KindToken, Value: strings.ToUpper(hashB)}); err != nil {
				t.Fatal(err)
			}
			if _, ok := s.Banned("beta", store.KindToken, hashB, time.Now()); !ok {
				t.Error("token hash not stored in lowercase")
			}
			ok, err := s.RemoveBan(ctx, "beta", store.KindToken, strings.ToUpper(hashB))
			if !ok || err != nil {
				t.Errorf("RemoveBan uppercase = %v, %v; want true", ok, err)
			}
		}},
		{name: "remove", run: func(t *testing.T, s store.Store) {
			ok, err := s.RemoveBan(ctx, "acme", store.KindUser, "u1")
			if !ok || err != nil {
				t.Fatalf("RemoveBan = %v, %v; want true", ok, err)
			}
			if _, banned := s.Banned("acme", store.KindUser, "u1", time.Now()); banned {
				t.Error("still banned after RemoveBan")
			}
			if _, banned := s.Banned("beta", store.KindUser, "u1", time.Now()); !banned {
				t.Error("RemoveBan removed another tenant's ban")
			}
			got, _ := s.ListBans(ctx, "acme", time.Now())
			if slices.Contains(keys(got), "acme/user/u1") {
				t.Error("ListBans still lists the removed ban")
			}
			ok, err = s.RemoveBan(ctx, "acme", store.KindUser, "u1")
			if ok || err != nil {
				t.Errorf("second RemoveBan = %v, %v; want false", ok, err)
			}
		}},
		{name: "remove expired reports stored", run: func(t *testing.T, s store.Store) {
			old := store.Ban{Tenant: "acme", Kind: store.KindUser, Value: "old", Created: hourAgo.Add(-time.Hour), Expires: hourAgo}
			if err := s.AddBan(ctx, old); err != nil {
				t.Fatal(err)
			}
			if _, banned := s.Banned("acme", store.KindUser, "old", time.Now()); banned {
				t.Error("an expired ban is in force")
			}
			if got, _ := s.ListBans(ctx, "acme", time.Now()); slices.Contains(keys(got), "acme/user/old") {
				t.Error("ListBans lists an expired ban")
			}
		}},
		{name: "cancelled context", run: func(t *testing.T, s store.Store) {
			cctx, cancel := context.WithCancel(ctx)
			cancel()
			if err := s.AddBan(cctx, store.Ban{Tenant: "acme", Kind: store.KindUser, Value: "late"}); !errors.Is(err, context.Canceled) {
				t.Errorf("AddBan = %v, want context.Canceled", err)
			}
			if _, err := s.RemoveBan(cctx, "acme", store.KindUser, "u1"); !errors.Is(err, context.Canceled) {
				t.Errorf("RemoveBan = %v, want context.Canceled", err)
			}
			if _, err := s.ListBans(cctx, "acme", time.Now()); !errors.Is(err, context.Canceled) {
				t.Errorf("ListBans = %v, want context.Canceled", err)
			}
			if _, ok := s.Banned("acme", store.KindUser, "late", time.Now()); ok {
				t.Error("AddBan with a cancelled context stored the ban")
			}
			if _, ok := s.Banned("acme", store.KindUser, "u1", time.Now()); !ok {
				t.Error("RemoveBan with a cancelled context removed the ban")
			}
		}},
		{name: "closed", run: func(t *testing.T, s store.Store) {
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Errorf("second Close = %v", err)
			}
			if err := s.AddBan(ctx, store.Ban{Tenant: "acme", Kind: store.KindUser, Value: "x"}); !errors.Is(err, store.ErrClosed) {
				t.Errorf("AddBan = %v, want ErrClosed", err)
			}
			if _, err := s.RemoveBan(ctx, "acme", store.KindUser, "u1"); !errors.Is(err, store.ErrClosed) {
				t.Errorf("RemoveBan = %v, want ErrClosed", err)
			}
			if _, err := s.ListBans(ctx, "", time.Now()); !errors.Is(err, store.ErrClosed) {
				t.Errorf("ListBans = %v, want ErrClosed", err)
			}
			if _, err := s.Outcasts(ctx); !errors.Is(err, store.ErrClosed) {
				t.Errorf("Outcasts = %v, want ErrClosed", err)
			}
			if _, err := s.Rooms(ctx); !errors.Is(err, store.ErrClosed) {
				t.Errorf("Rooms = %v, want ErrClosed", err)
			}
			if err := s.PutRooms(ctx, []store.RoomState{{Room: "r@c"}}); !errors.Is(err, store.ErrClosed) {
				t.Errorf("PutRooms = %v, want ErrClosed", err)
			}
			if err := s.Check(ctx); !errors.Is(err, store.ErrClosed) {
				t.Errorf("Check = %v, want ErrClosed", err)
			}
			if _, ok := s.Banned("acme", store.KindUser, "u1", time.Now()); !ok {
				t.Error("Banned stopped answering after Close")
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.run(t, openWithFixture(t, b))
		})
	}
}

// testConcurrent runs Banned and ListBans while bans are added and removed;
// it is meant for -race.
func testConcurrent(t *testing.T, b Backend) {
	s := b.Open(t)
	const writes = 40
	done := make(chan struct{})
	var readers, writers sync.WaitGroup
	for range 4 {
		readers.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				for i := range writes {
					s.Banned("acme", store.KindUser, fmt.Sprint(i), time.Now())
				}
				if _, err := s.ListBans(ctx, "acme", time.Now()); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	for i := range writes {
		writers.Go(func() {
			v := fmt.Sprint(i)
			if err := s.AddBan(ctx, store.Ban{Tenant: "acme", Kind: store.KindUser, Value: v, Expires: inAnHour}); err != nil {
				t.Error(err)
			}
			if i%2 == 0 {
				if _, err := s.RemoveBan(ctx, "acme", store.KindUser, v); err != nil {
					t.Error(err)
				}
			}
		})
	}
	writers.Wait()
	close(done)
	readers.Wait()
	got, _ := s.ListBans(ctx, "acme", time.Now())
	if len(got) != writes/2 {
		t.Errorf("%d bans left, want %d", len(got), writes/2)
	}
	for i := range writes {
		_, banned := s.Banned("acme", store.KindUser, fmt.Sprint(i), time.Now())
		if banned != (i%2 == 1) {
			t.Errorf("Banned(%d) = %v, want %v", i, banned, i%2 == 1)
		}
	}
}

func testBannedDoesNotAllocate(t *testing.T, b Backend) {
	s := openWithFixture(t, b)
	now := time.Now()
	for _, value := range []string{"u1", "nobody"} {
		allocs := testing.AllocsPerRun(1000, func() {
			s.Banned("acme", store.KindUser, value, now)
		})
		if allocs != 0 {
			t.Errorf("Banned(%q) allocates %v times per call", value, allocs)
		}
	}
}

func outcastList() []store.Outcast {
	return []store.Outcast{
		{Tenant: "acme", Kind: store.KindUser, Value: "u1", Room: "[acme]b@conference.example.test", JID: "x@example.test"},
		{Tenant: "acme", Kind: store.KindUser, Value: "u1", Room: "[acme]a@conference.example.test", JID: "x@example.test"},
		{Tenant: "acme", Kind: store.KindJID, Value: "y@example.test", Room: "[acme]a@conference.example.test", JID: "y@example.test"},
	}
}

func testOutcasts(t *testing.T, b Backend) {
	t.Run("add remove list", func(t *testing.T) {
		s := b.Open(t)
		got, err := s.Outcasts(ctx)
		if err != nil || len(got) != 0 {
			t.Fatalf("Outcasts of an empty store = %v, %v", got, err)
		}
		list := outcastList()
		if err := s.AddOutcasts(ctx, list); err != nil {
			t.Fatal(err)
		}
		// Recording one twice is harmless.
		if err := s.AddOutcasts(ctx, list[:1]); err != nil {
			t.Fatal(err)
		}
		if err := s.RemoveOutcasts(ctx, list[:1]); err != nil {
			t.Fatal(err)
		}
		// Removing one that is not recorded is harmless too.
		if err := s.RemoveOutcasts(ctx, list[:1]); err != nil {
			t.Fatal(err)
		}
		if err := s.AddOutcasts(ctx, nil); err != nil {
			t.Fatalf("AddOutcasts(nil) = %v", err)
		}
		got, err = s.Outcasts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// Sorted by ban (tenant, kind, value), then room, then JID.
		want := []store.Outcast{list[2], list[1]}
		if !slices.Equal(got, want) {
			t.Fatalf("Outcasts = %v, want %v", got, want)
		}
	})
	t.Run("validated", func(t *testing.T) {
		s := b.Open(t)
		for _, o := range []store.Outcast{
			{Tenant: "", Kind: store.KindUser, Value: "u", Room: "r@c", JID: "j@d"},
			{Tenant: "t", Kind: "nope", Value: "u", Room: "r@c", JID: "j@d"},
			{Tenant: "t", Kind: store.KindUser, Value: "u", Room: "", JID: "j@d"},
			{Tenant: "t", Kind: store.KindUser, Value: "u", Room: "r@c", JID: "j\x00@d"},
		} {
			if err := s.AddOutcasts(ctx, []store.Outcast{o}); !errors.Is(err, store.ErrInvalid) {
				t.Errorf("AddOutcasts(%+v) = %v, want ErrInvalid", o, err)
			}
			if err := s.RemoveOutcasts(ctx, []store.Outcast{o}); !errors.Is(err, store.ErrInvalid) {
				t.Errorf("RemoveOutcasts(%+v) = %v, want ErrInvalid", o, err)
			}
		}
		if got, _ := s.Outcasts(ctx); len(got) != 0 {
			t.Errorf("invalid outcasts were stored: %v", got)
		}
	})
}

func roomFixture() (a, b, c store.RoomState) {
	at := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	a = store.RoomState{Room: "a@conference.example.test", Updated: at,
		Self: "mod.example.test/gavel-1", Nick: "gavel",
		Grants:    []store.Grant{{JID: "x@example.test", Affiliation: "owner", Expires: at.Add(time.Hour)}},
		Occupants: []store.Occupant{{JID: "x@example.test/r", Nick: "x", UserID: "u-x", Joined: at, TokenHash: sha256Hex("t"), Flags: []string{"knocked", "token", "moderator"}}},
		Knocks:    []store.Knock{{JID: "y@example.test/r", Until: at.Add(time.Minute), Affiliation: "member", Base: "member", Role: "participant"}}}
	b = store.RoomState{Room: "b@conference.example.test", Updated: at}
	c = store.RoomState{Room: "c@conference.example.test", Updated: at,
		Grants: []store.Grant{{JID: "y@example.test", Affiliation: "member"}},
		Settings: &store.RoomSettings{Policy: "all-owners", Roles: []store.RoleAssignment{
			{JID: "x@example.test", Role: "moderator"}, {UserID: "u-9", Role: "viewer", Until: at.Add(time.Hour)}}}}
	return a, b, c
}

func sameRooms(a, b []store.RoomState) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !sameRoom(a[i], b[i]) {
			return false
		}
	}
	return true
}

// sameRoom compares two states with times compared as instants (a backend
// may keep microseconds only, or another location).
func sameRoom(x, y store.RoomState) bool {
	if x.Room != y.Room || x.Self != y.Self || x.Nick != y.Nick || !x.Updated.Equal(y.Updated) ||
		len(x.Grants) != len(y.Grants) || len(x.Occupants) != len(y.Occupants) || len(x.Knocks) != len(y.Knocks) {
		return false
	}
	for j := range x.Grants {
		g, h := x.Grants[j], y.Grants[j]
		if g.JID != h.JID || g.Affiliation != h.Affiliation || g.Expired != h.Expired || !g.Expires.Equal(h.Expires) {
			return false
		}
	}
	for j := range x.Occupants {
		o, p := x.Occupants[j], y.Occupants[j]
		if o.JID != p.JID || o.Nick != p.Nick || o.UserID != p.UserID || o.TokenHash != p.TokenHash ||
			!o.Joined.Equal(p.Joined) || !o.TokenExpires.Equal(p.TokenExpires) || strings.Join(o.Flags, ",") != strings.Join(p.Flags, ",") {
			return false
		}
	}
	for j := range x.Knocks {
		k, l := x.Knocks[j], y.Knocks[j]
		if k.JID != l.JID || k.Affiliation != l.Affiliation || k.Base != l.Base || k.Role != l.Role || !k.Until.Equal(l.Until) {
			return false
		}
	}
	if (x.Settings == nil) != (y.Settings == nil) {
		return false
	}
	if s, u := x.Settings, y.Settings; s != nil {
		if s.Policy != u.Policy || len(s.Roles) != len(u.Roles) {
			return false
		}
		for j := range s.Roles {
			a, b := s.Roles[j], u.Roles[j]
			if a.JID != b.JID || a.UserID != b.UserID || a.Role != b.Role || !a.Until.Equal(b.Until) {
				return false
			}
		}
	}
	return true
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func testRooms(t *testing.T, b Backend) {
	t.Run("put replace delete list", func(t *testing.T) {
		s := b.Open(t)
		got, err := s.Rooms(ctx)
		if err != nil || len(got) != 0 {
			t.Fatalf("Rooms of an empty store = %v, %v", got, err)
		}
		ra, rb, rc := roomFixture()
		// Concurrent writers (which may share commits): each must see
		// its own write done.
		var wg sync.WaitGroup
		for _, r := range []store.RoomState{rc, ra, rb} {
			wg.Go(func() {
				if err := s.PutRooms(ctx, []store.RoomState{r}); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		ra.Grants = append(ra.Grants, store.Grant{JID: "z@example.test", Affiliation: "admin"})
		if err := s.PutRooms(ctx, []store.RoomState{ra}); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteRooms(ctx, []string{rb.Room, "never@conference.example.test"}); err != nil {
			t.Fatal(err)
		}
		got, err = s.Rooms(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if want := []store.RoomState{ra, rc}; !sameRooms(got, want) {
			t.Fatalf("Rooms = %+v, want %+v", got, want)
		}
	})
	t.Run("validated", func(t *testing.T) {
		s := b.Open(t)
		for _, r := range []store.RoomState{
			{Room: ""},
			{Room: "r@c", Grants: []store.Grant{{JID: "j@d", Affiliation: "king"}}},
			{Room: "r@c", Grants: []store.Grant{{JID: "", Affiliation: "owner"}}},
			{Room: "r@c", Occupants: []store.Occupant{{JID: "j\x00"}}},
			{Room: "r@c", Knocks: []store.Knock{{JID: ""}}},
			{Room: "r@c", Occupants: make([]store.Occupant, store.MaxRoomEntries+1)},
		} {
			if err := s.PutRooms(ctx, []store.RoomState{r}); !errors.Is(err, store.ErrInvalid) {
				t.Errorf("PutRooms(%.60v) = %v, want ErrInvalid", r, err)
			}
		}
		if got, _ := s.Rooms(ctx); len(got) != 0 {
			t.Errorf("invalid rooms were stored: %v", got)
		}
	})
}

func testCheck(t *testing.T, b Backend) {
	s := b.Open(t)
	if err := s.Check(ctx); err != nil {
		t.Fatalf("Check of a fresh store = %v", err)
	}
}

// testDurable checks that everything a store acknowledged is there after a
// restart.
func testDurable(t *testing.T, b Backend) {
	s := openWithFixture(t, b)
	if _, err := s.RemoveBan(ctx, "acme", store.KindUser, "u1"); err != nil {
		t.Fatal(err)
	}
	list := outcastList()
	if err := s.AddOutcasts(ctx, list); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveOutcasts(ctx, list[1:2]); err != nil {
		t.Fatal(err)
	}
	ra, rb, rc := roomFixture()
	if err := s.PutRooms(ctx, []store.RoomState{ra, rb, rc}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteRooms(ctx, []string{rb.Room}); err != nil {
		t.Fatal(err)
	}
	want, err := s.ListBans(ctx, "", time.Now())
	if err != nil {
		t.Fatal(err)
	}

	s = b.Reopen(t, s)
	got, err := s.ListBans(ctx, "", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) || len(got) != 4 {
		t.Fatalf("after a restart: %v, want %v", keys(got), keys(want))
	}
	for i := range got {
		if !SameBan(got[i], want[i]) {
			t.Errorf("after a restart: %+v, want %+v", got[i], want[i])
		}
	}
	if _, ok := s.Banned("acme", store.KindUser, "u2", time.Now()); !ok {
		t.Error("Banned forgot a ban after a restart")
	}
	if _, ok := s.Banned("acme", store.KindUser, "u1", time.Now()); ok {
		t.Error("a removed ban is back after a restart")
	}
	outs, err := s.Outcasts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if wantOuts := []store.Outcast{list[2], list[0]}; !slices.Equal(outs, wantOuts) {
		t.Errorf("outcasts after a restart = %v, want %v", outs, wantOuts)
	}
	rooms, err := s.Rooms(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if wantRooms := []store.RoomState{ra, rc}; !sameRooms(rooms, wantRooms) {
		t.Errorf("rooms after a restart = %+v, want %+v", rooms, wantRooms)
	}
}

func testMeetings(t *testing.T, b Backend) {
	s := b.Open(t)
	at := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	m1 := store.Meeting{ID: "m1", Tenant: "acme", Room: "[acme]a@conference.example.test", Start: at, End: at.Add(time.Hour), HostUntil: at.Add(2 * time.Hour),
		Tokens: []store.MeetingToken{{Role: "host", Hash: hashA, Expires: at.Add(2 * time.Hour)}}}
	m2 := store.Meeting{ID: "m2", Tenant: "acme", Room: "[acme]b@conference.example.test", Start: at.Add(-time.Minute), End: at.Add(time.Hour)}
	m3 := store.Meeting{ID: "m3", Tenant: "other", Room: "[other]c@conference.example.test", Start: at, End: at.Add(time.Hour)}
	for _, m := range []store.Meeting{m1, m2, m3} {
		if err := s.PutMeeting(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	m1.Ended = at.Add(30 * time.Minute)
	if err := s.PutMeeting(ctx, m1); err != nil {
		t.Fatal(err)
	}
	got, err := s.Meetings(ctx, "acme")
	if err != nil || len(got) != 2 || got[0].ID != "m2" || got[1].ID != "m1" || !got[1].Ended.Equal(m1.Ended) || len(got[1].Tokens) != 1 {
		t.Fatalf("Meetings(acme) = %+v, %v", got, err)
	}
	if all, _ := s.Meetings(ctx, ""); len(all) != 3 {
		t.Errorf("Meetings(\"\") = %d meetings, want 3", len(all))
	}
	bad := store.Meeting{ID: "x", Tenant: "acme", Room: "r@c", Start: at, End: at}
	if err := s.PutMeeting(ctx, bad); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("PutMeeting with end = start: %v, want ErrInvalid", err)
	}
	if b.Reopen != nil {
		s = b.Reopen(t, s)
		if got, _ := s.Meetings(ctx, "acme"); len(got) != 2 {
			t.Errorf("after a reopen: %+v", got)
		}
	}
}
