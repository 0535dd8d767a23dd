package main

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// The rejoin phase measures what clear_on_leave_grace saves: each joiner
// enters a room, leaves, and at once enters the same room again (a page
// reload, a network switch), then leaves for good. Bare joins open rooms;
// deny knocks into gavel's members-only rooms with the reset sent at each
// leave; deny-grace into a tenant whose resets wait 2 s
// (clear_on_leave_grace, tenant [grace]) and are dropped by the returning
// knock. Only the returns are timed; the CPU counts the whole round, which
// ends 2.5 s after the last leave so that the resets held at the final
// leaves are in it too.
const modeDenyGrace = "deny-grace"

// rejoinGrace is tenant [grace]'s clear_on_leave_grace (env.go).
const rejoinGrace = 2 * time.Second

func (b *bench) rejoinPhase(ctx context.Context, record func(*phase)) error {
	o := b.o
	rs, d, err := b.primeSet(ctx, roomSet{gavel: true, deny: true}, "[grace]rejoin-", o.m)
	if err != nil {
		return err
	}
	b.res.Created = append(b.res.Created, created{Set: "rejoin", Mode: modeDenyGrace, Rooms: o.m, PerS: float64(o.m) / d.Seconds()})
	rs.name = modeDenyGrace
	round := func(rs roomSet) func(ctx context.Context) (sample, error) {
		return func(ctx context.Context) (sample, error) { return b.rejoinRound(ctx, rs) }
	}
	logf("rejoin: %d joiners leave and come back, %d rounds per mode", o.n, o.rounds)
	p, err := b.compare(ctx, "rejoin",
		fmt.Sprintf("Rejoin: %d clients join %d rooms, leave and join the same room again at once (timed), then leave", o.n, o.m),
		[]variant{{modeBare, round(b.rooms[modeBare])}, {modeDeny, round(b.rooms[modeDeny])}, {modeDenyGrace, round(rs)}})
	if err != nil {
		return err
	}
	record(p)
	return nil
}

// rejoinRound is joinsRound with a leave and a second entry into the same
// room in the middle; the second entries are the ones timed.
func (b *bench) rejoinRound(ctx context.Context, rs roomSet) (sample, error) {
	o := b.o
	js := b.joiners
	n := len(js)
	toks, err := b.tokens(rs, n, algHS256)
	if err != nil {
		return sample{}, err
	}
	// The same visit index: the same moderator claim as the first time.
	again, err := b.tokens(rs, n, algHS256)
	if err != nil {
		return sample{}, err
	}
	all := b.clients()
	lua := b.e.quiesce(ctx)
	c0, u0 := delivered(all), b.e.usage()
	s := sample{Mode: rs.mode(), Lat: make([]time.Duration, 0, n), LuaKiB: lua}
	var (
		mu    sync.Mutex
		nicks = make([]string, n)
		bad   errs
	)
	start := time.Now()
	_ = parallel(ctx, n, o.concurrency, func(i int) error {
		j, room := js[i], rs.jids[i%len(rs.jids)]
		nick := j.nick()
		if err := enter(ctx, j.c, room, nick, toks[i], rs.knocks()); err != nil {
			bad.add(err)
			return nil
		}
		if err := leave(ctx, j.c, room, nick); err != nil {
			bad.add(err)
			return nil
		}
		nick = j.nick()
		t := time.Now()
		if err := enter(ctx, j.c, room, nick, again[i], rs.knocks()); err != nil {
			bad.add(err)
			return nil
		}
		d := time.Since(t)
		mu.Lock()
		s.Lat = append(s.Lat, d)
		nicks[i] = nick
		mu.Unlock()
		return nil
	})
	s.JoinWall = time.Since(start)
	s.JoinCPU = cpuOf(b.e.usage(), u0)
	sleepCtx(ctx, o.stay)
	_ = parallel(ctx, n, o.concurrency, func(i int) error {
		if nicks[i] != "" {
			if err := leave(ctx, js[i].c, rs.jids[i%len(rs.jids)], nicks[i]); err != nil {
				bad.add(err)
			}
		}
		return nil
	})
	sleepCtx(ctx, rejoinGrace+500*time.Millisecond)
	s.Stanzas = settle(ctx, all) - c0
	s.RoundCPU = cpuOf(b.e.usage(), u0)
	s.Joins, s.Errors, s.FirstErr = len(s.Lat), bad.n, bad.first
	return s, ctx.Err()
}
