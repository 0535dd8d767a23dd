package store

import (
	"fmt"
	"testing"
	"time"
)

// benchBans is the number of bans BenchmarkBanned loads.
const benchBans = 100_000

// benchKeys are (tenant, kind, value) triples to look up.
type benchKey struct {
	tenant string
	kind   Kind
	value  string
}

// loadBench fills a Memory store with benchBans bans over 10 tenants and the
// three kinds, and returns keys that hit and keys that miss. Bolt.Banned runs
// the same index code, so Memory stands for both.
func loadBench(b *testing.B) (s *Memory, hits, misses []benchKey) {
	b.Helper()
	s = NewMemory()
	kinds := []Kind{KindUser, KindToken, KindJID}
	for i := range benchBans {
		k := benchKey{tenant: fmt.Sprintf("tenant-%d", i%10), kind: kinds[i%3]}
		miss := k
		switch k.kind {
		case KindUser:
			k.value, miss.value = fmt.Sprintf("user-%d", i), fmt.Sprintf("user-%d-x", i)
		case KindToken:
			k.value, miss.value = tokenHashHex(fmt.Sprint(i)), tokenHashHex(fmt.Sprint(-i-1))
		case KindJID:
			k.value, miss.value = fmt.Sprintf("u%d@example.com", i), fmt.Sprintf("u%d@example.org", i)
		}
		if err := s.AddBan(ctx, Ban{Tenant: k.tenant, Kind: k.kind, Value: k.value, Reason: "bench", Expires: inAnHour}); err != nil {
			b.Fatal(err)
		}
		hits = append(hits, k)
		misses = append(misses, miss)
	}
	return s, hits, misses
}

func BenchmarkBanned(b *testing.B) {
	s, hits, misses := loadBench(b)
	defer func() { _ = s.Close() }()
	now := time.Now()
	tests := []struct {
		name string
		keys []benchKey
		want bool
	}{
		{name: "hit", keys: hits, want: true},
		{name: "miss", keys: misses, want: false},
	}
	for _, tt := range tests {
		b.Run(tt.name, func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				k := &tt.keys[i%len(tt.keys)]
				if _, ok := s.Banned(k.tenant, k.kind, k.value, now); ok != tt.want {
					b.Fatalf("Banned(%v) = %v", *k, ok)
				}
				i++
			}
		})
		b.Run(tt.name+"-parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					k := &tt.keys[i%len(tt.keys)]
					if _, ok := s.Banned(k.tenant, k.kind, k.value, now); ok != tt.want {
						b.Errorf("Banned(%v) = %v", *k, ok)
						return
					}
					i++
				}
			})
		})
	}
}

// BenchmarkBoltAddBan measures a durable AddBan: one bbolt transaction and
// its fsyncs.
func BenchmarkBoltAddBan(b *testing.B) {
	s, err := Open(b.TempDir(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if err := s.AddBan(ctx, Ban{Tenant: "acme", Kind: KindUser, Value: fmt.Sprintf("user-%d", i)}); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
