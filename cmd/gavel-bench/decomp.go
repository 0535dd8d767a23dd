package main

import (
	"context"
	"fmt"
)

// The decomposition phase splits Prosody's extra CPU per moderated join
// into its parts by adding them one at a time, in one run, rounds
// alternating (compare), all into the main rooms (rooms of -m):
//
//	bare          clients join open rooms (no gavel)
//	no-knock      clients join gavel's open rooms without knocking: gavel's
//	              presence in the room (one more occupant to tell)
//	knock         every visit knocks with a participant token into gavel's
//	              open rooms: the knock IQ in and its answer out; no grant
//	knock+owner   every visit knocks with a moderator token: gavel sets
//	              owner before answering and resets it when the holder
//	              leaves (clear_on_leave): two affiliation changes a visit,
//	              each announced to the room's moderators and saved
//	knock+member  every visit knocks with a participant token into gavel's
//	              members-only rooms ([deny]): member set and reset
//	lua+member    the Lua stand-in sets member at pre-join and resets it
//	              at leave: the same two changes without the knock or
//	              gavel's IQs (the floor of a pre-join design)
//
// Each variant runs a second time with Prosody's Lua collector stopped for
// the round (a diagnostic: how much of each part is garbage collection).
// Room saves are split by running the phase again with -muc-storage memory.
const (
	decKnock       = "knock"
	decOwner       = "knock+owner"
	decMember      = "knock+member"
	decLuaMember   = "lua+member"
	decNoGC        = "/gc-stopped"
	decompFullSide = 1.0
)

func (b *bench) decompose(ctx context.Context, record func(*phase)) error {
	o := b.o
	direct := b.rooms[modeGavel]
	direct.direct = true
	named := func(rs roomSet, name string, mods float64) roomSet {
		rs.name, rs.mods = name, mods
		return rs
	}
	sets := []roomSet{
		named(b.rooms[modeBare], modeBare, 0),
		named(direct, modeDirect, 0),
		named(b.rooms[modeGavel], decKnock, 0),
		named(b.rooms[modeGavel], decOwner, decompFullSide),
		named(b.rooms[modeDeny], decMember, 0),
		named(b.rooms[modeLuaDeny], decLuaMember, 0),
	}
	var vs []variant
	for _, stopped := range []bool{false, true} {
		for _, rs := range sets {
			rs := rs
			if stopped {
				rs.name += decNoGC
			}
			vs = append(vs, variant{rs.name, func(ctx context.Context) (sample, error) {
				if stopped {
					// quiesce collects first (an explicit collection runs
					// while the collector is stopped), then the round runs
					// without collection steps.
					if err := b.e.luaGC(ctx, "stop"); err != nil {
						return sample{}, err
					}
					defer func() { _ = b.e.luaGC(context.WithoutCancel(ctx), "restart") }()
				}
				return b.joinsRound(ctx, rs, b.joiners, o.concurrency, o.stay)
			}})
		}
	}
	if !b.e.gcOK {
		vs = vs[:len(sets)]
	}
	logf("decomp: %d variants, %d rounds each", len(vs), o.rounds)
	p, err := b.compare(ctx, "decomp",
		fmt.Sprintf("Decomposition: %d clients join %d rooms (%d in flight), one part of moderation added at a time", o.n, o.m, o.concurrency), vs)
	if err != nil {
		return err
	}
	record(p)
	return nil
}
