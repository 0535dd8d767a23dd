package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// impl opens a fresh, empty store of one implementation for a test.
type impl struct {
	name string
	open func(t *testing.T) Store
}

var impls = []impl{
	{name: "memory", open: func(t *testing.T) Store {
		m := NewMemory()
		t.Cleanup(func() { _ = m.Close() })
		return m
	}},
	{name: "bolt", open: func(t *testing.T) Store {
		return openTestBolt(t, t.TempDir())
	}},
}

// openTestBolt opens a Bolt store in dir and closes it when the test ends.
func openTestBolt(t *testing.T, dir string) *Bolt {
	t.Helper()
	b, err := Open(dir, Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

var (
	ctx      = context.Background()
	hashA    = tokenHashHex("token-a")
	hashB    = tokenHashHex("token-b")
	longer   = strings.Repeat("x", MaxLen+1)
	longest  = strings.Repeat("x", MaxLen)
	hourAgo  = time.Now().Add(-time.Hour).UTC().Round(0)
	inAnHour = time.Now().Add(time.Hour).UTC().Round(0)
	// fixtureBase is the Created time of the oldest ban of fixture().
	fixtureBase = time.Now().Add(-24 * time.Hour).UTC().Round(0)
)

func TestBanActive(t *testing.T) {
	at := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		expires time.Time
		now     time.Time
		want    bool
	}{
		{name: "never expires", now: at, want: true},
		{name: "before expiry", expires: at, now: at.Add(-time.Nanosecond), want: true},
		{name: "at expiry", expires: at, now: at, want: false},
		{name: "after expiry", expires: at, now: at.Add(time.Hour), want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := (Ban{Expires: tt.expires}).Active(tt.now); got != tt.want {
				t.Errorf("Active = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestAddBanValidation(t *testing.T) {
	valid := Ban{Tenant: "acme", Kind: KindUser, Value: "u1"}
	with := func(f func(*Ban)) Ban {
		b := valid
		f(&b)
		return b
	}
	tests := []struct {
		name    string
		ban     Ban
		wantErr string // "" for a ban that must be accepted
	}{
		{name: "valid user", ban: valid},
		{name: "valid jid", ban: with(func(b *Ban) { b.Kind, b.Value = KindJID, "troll@example.com" })},
		{name: "valid token", ban: with(func(b *Ban) { b.Kind, b.Value = KindToken, hashA })},
		{name: "valid uppercase token", ban: with(func(b *Ban) { b.Kind, b.Value = KindToken, strings.ToUpper(hashA) })},
		{name: "value at limit", ban: with(func(b *Ban) { b.Value = longest })},
		{name: "tenant at limit", ban: with(func(b *Ban) { b.Tenant = longest })},
		{name: "expires after created", ban: with(func(b *Ban) { b.Created, b.Expires = hourAgo, inAnHour })},
		{
			name:    "empty tenant",
			ban:     with(func(b *Ban) { b.Tenant = "" }),
			wantErr: "store: ban tenant is empty",
		},
		{
			name:    "tenant over limit",
			ban:     with(func(b *Ban) { b.Tenant = longer }),
			wantErr: "store: ban tenant is 1025 bytes, the limit is 1024",
		},
		{
			name:    "tenant with NUL",
			ban:     with(func(b *Ban) { b.Tenant = "a\x00b" }),
			wantErr: "store: ban tenant must be valid UTF-8 without NUL bytes",
		},
		{
			name:    "unknown kind",
			ban:     with(func(b *Ban) { b.Kind = "ip" }),
			wantErr: `store: ban kind "ip" is unknown (want "user", "token" or "jid")`,
		},
		{
			name:    "empty kind",
			ban:     with(func(b *Ban) { b.Kind = "" }),
			wantErr: `store: ban kind "" is unknown (want "user", "token" or "jid")`,
		},
		{
			name:    "empty value",
			ban:     with(func(b *Ban) { b.Value = "" }),
			wantErr: "store: ban value is empty",
		},
		{
			name:    "value over limit",
			ban:     with(func(b *Ban) { b.Value = longer }),
			wantErr: "store: ban value is 1025 bytes, the limit is 1024",
		},
		{
			name:    "value not UTF-8",
			ban:     with(func(b *Ban) { b.Value = "\xff\xfe" }),
			wantErr: "store: ban value must be valid UTF-8 without NUL bytes",
		},
		{
			name:    "raw token instead of hash",
			ban:     with(func(b *Ban) { b.Kind, b.Value = KindToken, "eyJhbGciOiJIUzI1NiJ9.secret" }),
			wantErr: `store: ban value for kind "token" must be the 64-character hex SHA-256 of the token (hex of auth.TokenHash)`,
		},
		{
			name:    "token hash too short",
			ban:     with(func(b *Ban) { b.Kind, b.Value = KindToken, hashA[:63] }),
			wantErr: `store: ban value for kind "token" must be the 64-character hex SHA-256 of the token (hex of auth.TokenHash)`,
		},
		{
			name:    "token hash not hex",
			ban:     with(func(b *Ban) { b.Kind, b.Value = KindToken, "g"+hashA[1:] }),
			wantErr: `store: ban value for kind "token" must be the 64-character hex SHA-256 of the token (hex of auth.TokenHash)`,
		},
		{
			name:    "full JID",
			ban:     with(func(b *Ban) { b.Kind, b.Value = KindJID, "troll@example.com/phone" }),
			wantErr: `store: ban value for kind "jid" must be a bare JID (without /resource)`,
		},
		{
			name: "expires at created",
			ban: with(func(b *Ban) {
				b.Created = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
				b.Expires = b.Created
			}),
			wantErr: "store: ban expires (2025-01-02T03:04:05Z) is not after created (2025-01-02T03:04:05Z)",
		},
	}
	for _, im := range impls {
		t.Run(im.name, func(t *testing.T) {
			s := im.open(t)
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					err := s.AddBan(ctx, tt.ban)
					if tt.wantErr == "" {
						if err != nil {
							t.Fatalf("AddBan: %v", err)
						}
						return
					}
					if err == nil || err.Error() != tt.wantErr {
						t.Fatalf("AddBan error = %v, want %q", err, tt.wantErr)
					}
					if !errors.Is(err, ErrInvalid) {
						t.Errorf("errors.Is(%v, ErrInvalid) = false", err)
					}
				})
			}
		})
	}
}

func TestRemoveBanValidation(t *testing.T) {
	tests := []struct {
		name    string
		tenant  string
		kind    Kind
		value   string
		wantErr string
	}{
		{name: "empty tenant", kind: KindUser, value: "u", wantErr: "store: ban tenant is empty"},
		{name: "unknown kind", tenant: "t", kind: "ip", value: "u", wantErr: `store: ban kind "ip" is unknown (want "user", "token" or "jid")`},
		{name: "empty value", tenant: "t", kind: KindUser, wantErr: "store: ban value is empty"},
		{name: "raw token", tenant: "t", kind: KindToken, value: "secret", wantErr: `store: ban value for kind "token" must be the 64-character hex SHA-256 of the token (hex of auth.TokenHash)`},
	}
	for _, im := range impls {
		t.Run(im.name, func(t *testing.T) {
			s := im.open(t)
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					ok, err := s.RemoveBan(ctx, tt.tenant, tt.kind, tt.value)
					if ok || err == nil || err.Error() != tt.wantErr || !errors.Is(err, ErrInvalid) {
						t.Fatalf("RemoveBan = %v, %v; want false, %q", ok, err, tt.wantErr)
					}
				})
			}
		})
	}
}

// sameBans reports whether two lists hold the same bans in the same order.
func sameBans(a, b []Ban) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !sameBan(a[i], b[i]) {
			return false
		}
	}
	return true
}

func sameBan(a, b Ban) bool {
	return a.Tenant == b.Tenant && a.Kind == b.Kind && a.Value == b.Value &&
		a.Reason == b.Reason && a.By == b.By &&
		a.Created.Equal(b.Created) && a.Expires.Equal(b.Expires)
}

func values(bans []Ban) []string {
	out := make([]string, len(bans))
	for i, b := range bans {
		out[i] = b.Tenant + "/" + string(b.Kind) + "/" + b.Value
	}
	return out
}

// fixture is a set of bans for the behaviour tests, relative to the current
// time so that none is pruned while a test runs.
func fixture() []Ban {
	base := fixtureBase
	return []Ban{
		{Tenant: "acme", Kind: KindUser, Value: "u2", Reason: "spam", By: "admin@acme.example", Created: base.Add(2 * time.Minute)},
		{Tenant: "acme", Kind: KindUser, Value: "u1", Created: base.Add(2 * time.Minute)},
		{Tenant: "acme", Kind: KindJID, Value: "troll@example.com", Created: base.Add(time.Minute), Expires: inAnHour},
		{Tenant: "acme", Kind: KindToken, Value: hashA, Created: base.Add(3 * time.Minute)},
		{Tenant: "beta", Kind: KindUser, Value: "u1", Created: base},
	}
}

func TestStore(t *testing.T) {
	later := inAnHour.Add(time.Minute)
	tests := []struct {
		name string
		// run acts on a store holding fixture() and checks the outcome.
		run func(t *testing.T, s Store)
	}{
		{name: "list tenant sorted by created then value", run: func(t *testing.T, s Store) {
			got, err := s.ListBans(ctx, "acme", time.Now())
			if err != nil {
				t.Fatal(err)
			}
			want := "[acme/jid/troll@example.com acme/user/u1 acme/user/u2 acme/token/" + hashA + "]"
			if fmt.Sprint(values(got)) != want {
				t.Errorf("ListBans = %v, want %s", values(got), want)
			}
		}},
		{name: "list all tenants", run: func(t *testing.T, s Store) {
			got, err := s.ListBans(ctx, "", time.Now())
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 5 || got[0].Tenant != "beta" {
				t.Errorf("ListBans(\"\") = %v", values(got))
			}
		}},
		{name: "list unknown tenant is empty", run: func(t *testing.T, s Store) {
			got, err := s.ListBans(ctx, "nobody", time.Now())
			if err != nil || got == nil || len(got) != 0 {
				t.Errorf("ListBans = %v, %v; want empty, non-nil", got, err)
			}
		}},
		{name: "list hides expired", run: func(t *testing.T, s Store) {
			got, err := s.ListBans(ctx, "acme", later)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 3 {
				t.Errorf("ListBans after expiry = %v, want 3 bans", values(got))
			}
		}},
		{name: "banned hit returns the ban", run: func(t *testing.T, s Store) {
			got, ok := s.Banned("acme", KindUser, "u2", time.Now())
			if !ok || !sameBan(got, fixture()[0]) {
				t.Errorf("Banned = %+v, %v; want %+v", got, ok, fixture()[0])
			}
		}},
		{name: "banned is per tenant and kind", run: func(t *testing.T, s Store) {
			if _, ok := s.Banned("beta", KindUser, "u2", time.Now()); ok {
				t.Error("u2 banned in beta")
			}
			if _, ok := s.Banned("acme", KindJID, "u2", time.Now()); ok {
				t.Error("u2 banned as a JID")
			}
		}},
		{name: "banned ignores expired", run: func(t *testing.T, s Store) {
			if _, ok := s.Banned("acme", KindJID, "troll@example.com", time.Now()); !ok {
				t.Error("not banned before expiry")
			}
			if _, ok := s.Banned("acme", KindJID, "troll@example.com", inAnHour); ok {
				t.Error("banned at expiry")
			}
		}},
		{name: "add replaces", run: func(t *testing.T, s Store) {
			b := fixture()[0]
			b.Reason, b.Expires = "changed", inAnHour
			if err := s.AddBan(ctx, b); err != nil {
				t.Fatal(err)
			}
			got, ok := s.Banned("acme", KindUser, "u2", time.Now())
			if !ok || !sameBan(got, b) {
				t.Errorf("Banned = %+v, want %+v", got, b)
			}
			all, _ := s.ListBans(ctx, "", time.Now())
			if len(all) != 5 {
				t.Errorf("%d bans after replace, want 5", len(all))
			}
		}},
		{name: "add sets created", run: func(t *testing.T, s Store) {
			before := time.Now()
			if err := s.AddBan(ctx, Ban{Tenant: "acme", Kind: KindUser, Value: "new"}); err != nil {
				t.Fatal(err)
			}
			got, ok := s.Banned("acme", KindUser, "new", time.Now())
			if !ok || got.Created.Before(before.Truncate(time.Microsecond)) || got.Created.After(time.Now()) {
				t.Errorf("Banned = %+v, %v; want Created about now", got, ok)
			}
		}},
		{name: "add lowercases token hash", run: func(t *testing.T, s Store) {
			if err := s.AddBan(ctx, Ban{Tenant: "beta", Kind: KindToken, Value: strings.ToUpper(hashB)}); err != nil {
				t.Fatal(err)
			}
			if _, ok := s.Banned("beta", KindToken, hashB, time.Now()); !ok {
				t.Error("token hash not stored in lowercase")
			}
			ok, err := s.RemoveBan(ctx, "beta", KindToken, strings.ToUpper(hashB))
			if !ok || err != nil {
				t.Errorf("RemoveBan uppercase = %v, %v; want true", ok, err)
			}
		}},
		{name: "remove", run: func(t *testing.T, s Store) {
			ok, err := s.RemoveBan(ctx, "acme", KindUser, "u1")
			if !ok || err != nil {
				t.Fatalf("RemoveBan = %v, %v; want true", ok, err)
			}
			if _, banned := s.Banned("acme", KindUser, "u1", time.Now()); banned {
				t.Error("still banned after RemoveBan")
			}
			if _, banned := s.Banned("beta", KindUser, "u1", time.Now()); !banned {
				t.Error("RemoveBan removed another tenant's ban")
			}
			ok, err = s.RemoveBan(ctx, "acme", KindUser, "u1")
			if ok || err != nil {
				t.Errorf("second RemoveBan = %v, %v; want false", ok, err)
			}
		}},
		{name: "cancelled context", run: func(t *testing.T, s Store) {
			cctx, cancel := context.WithCancel(ctx)
			cancel()
			if err := s.AddBan(cctx, Ban{Tenant: "acme", Kind: KindUser, Value: "late"}); !errors.Is(err, context.Canceled) {
				t.Errorf("AddBan = %v, want context.Canceled", err)
			}
			if _, err := s.RemoveBan(cctx, "acme", KindUser, "u1"); !errors.Is(err, context.Canceled) {
				t.Errorf("RemoveBan = %v, want context.Canceled", err)
			}
			if _, err := s.ListBans(cctx, "acme", time.Now()); !errors.Is(err, context.Canceled) {
				t.Errorf("ListBans = %v, want context.Canceled", err)
			}
			if _, ok := s.Banned("acme", KindUser, "late", time.Now()); ok {
				t.Error("AddBan with a cancelled context stored the ban")
			}
		}},
		{name: "closed", run: func(t *testing.T, s Store) {
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Errorf("second Close = %v", err)
			}
			if err := s.AddBan(ctx, Ban{Tenant: "acme", Kind: KindUser, Value: "x"}); !errors.Is(err, ErrClosed) {
				t.Errorf("AddBan = %v, want ErrClosed", err)
			}
			if _, err := s.RemoveBan(ctx, "acme", KindUser, "u1"); !errors.Is(err, ErrClosed) {
				t.Errorf("RemoveBan = %v, want ErrClosed", err)
			}
			if _, err := s.ListBans(ctx, "", time.Now()); !errors.Is(err, ErrClosed) {
				t.Errorf("ListBans = %v, want ErrClosed", err)
			}
			if _, ok := s.Banned("acme", KindUser, "u1", time.Now()); !ok {
				t.Error("Banned stopped answering after Close")
			}
		}},
	}
	for _, im := range impls {
		t.Run(im.name, func(t *testing.T) {
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					s := im.open(t)
					for _, b := range fixture() {
						if err := s.AddBan(ctx, b); err != nil {
							t.Fatalf("AddBan(%+v): %v", b, err)
						}
					}
					tt.run(t, s)
				})
			}
		})
	}
}

// TestPrune checks that expired bans leave the index (and, for Bolt, the
// file) on the next write.
func TestPrune(t *testing.T) {
	expired := Ban{Tenant: "acme", Kind: KindUser, Value: "old", Created: hourAgo.Add(-time.Hour), Expires: hourAgo}
	for _, im := range impls {
		t.Run(im.name, func(t *testing.T) {
			s := im.open(t)
			if err := s.AddBan(ctx, expired); err != nil {
				t.Fatal(err)
			}
			ix := indexOf(s)
			if _, ok := ix.bans[keyOf(&expired)]; !ok {
				t.Fatal("expired ban not stored at all")
			}
			if err := s.AddBan(ctx, Ban{Tenant: "acme", Kind: KindUser, Value: "new", Expires: inAnHour}); err != nil {
				t.Fatal(err)
			}
			if _, ok := ix.bans[keyOf(&expired)]; ok {
				t.Error("expired ban still in the index after AddBan")
			}
			if !ix.nextExpiry.Equal(inAnHour) {
				t.Errorf("nextExpiry = %v, want %v", ix.nextExpiry, inAnHour)
			}
			if b, ok := s.(*Bolt); ok {
				if keys := diskKeys(t, b); len(keys) != 1 || keys[0] != "acme\x00user\x00new" {
					t.Errorf("keys on disk = %q, want only the new ban", keys)
				}
			}
		})
	}
}

func indexOf(s Store) *index {
	switch s := s.(type) {
	case *Memory:
		return s.ix
	case *Bolt:
		return s.ix
	}
	panic("unknown store")
}

// TestConcurrent runs Banned and ListBans while bans are added and removed;
// it is meant for -race.
func TestConcurrent(t *testing.T) {
	for _, im := range impls {
		t.Run(im.name, func(t *testing.T) {
			s := im.open(t)
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
							s.Banned("acme", KindUser, fmt.Sprint(i), time.Now())
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
					if err := s.AddBan(ctx, Ban{Tenant: "acme", Kind: KindUser, Value: v, Expires: inAnHour}); err != nil {
						t.Error(err)
					}
					if i%2 == 0 {
						if _, err := s.RemoveBan(ctx, "acme", KindUser, v); err != nil {
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
		})
	}
}

func TestBannedDoesNotAllocate(t *testing.T) {
	for _, im := range impls {
		t.Run(im.name, func(t *testing.T) {
			s := im.open(t)
			for _, b := range fixture() {
				if err := s.AddBan(ctx, b); err != nil {
					t.Fatal(err)
				}
			}
			now := time.Now()
			tests := []struct {
				name, value string
			}{
				{name: "hit", value: "u1"},
				{name: "miss", value: "nobody"},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					allocs := testing.AllocsPerRun(1000, func() {
						s.Banned("acme", KindUser, tt.value, now)
					})
					if allocs != 0 {
						t.Errorf("Banned allocates %v times per call", allocs)
					}
				})
			}
		})
	}
}
