package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gavelxmpp/gavel/auth"
	"github.com/gavelxmpp/gavel/internal/prosodytest"
	"github.com/gavelxmpp/gavel/internal/xclient"
)

// floodTenant is the tenant of the flood phase, configured with gavel's
// default knock limits and guests denied (gavelConfig).
const floodTenant = "flood"

// floodResult is the flood phase: good joiners knocking within their own
// limit, first alone, then while anonymous guests flood knocks with bad
// signatures.
type floodResult struct {
	Guests      int            `json:"guests"`
	Good        int            `json:"good_accounts"`
	GoodEvery   time.Duration  `json:"good_knock_every_ns"`
	Duration    time.Duration  `json:"duration_ns"`
	Quiet       floodSide      `json:"quiet"`
	Flooded     floodSide      `json:"flooded"`
	FloodKnocks int            `json:"flood_knocks"`
	FloodPerS   float64        `json:"flood_knocks_per_second"`
	FloodOut    map[string]int `json:"flood_outcomes"`
	GavelCPU    time.Duration  `json:"gavel_cpu_ns_flooded"`
	ProsodyCPU  time.Duration  `json:"prosody_cpu_ns_flooded"`
}

// floodSide is what the good knocks got in one half of the phase.
type floodSide struct {
	Knocks   int            `json:"knocks"`
	Outcomes map[string]int `json:"outcomes"`
	P50      float64        `json:"p50_ms"`
	P99      float64        `json:"p99_ms"`
	Max      float64        `json:"max_ms"`
}

// knockOutcome names the answer to a knock: granted or its application
// condition.
func knockOutcome(err error) string {
	if err == nil {
		return "granted"
	}
	var xe *xclient.Error
	if errors.As(err, &xe) && xe.App != "" {
		return xe.App
	}
	return "error"
}

// flood runs the flood phase.
func (b *bench) flood(ctx context.Context) (*floodResult, error) {
	o, e := b.o, b.e
	room := fmt.Sprintf("[%s]flooded@%s", floodTenant, prosodytest.MUC)
	users, err := e.register("good", o.floodGood)
	if err != nil {
		return nil, err
	}
	good, err := e.loginAll(ctx, users, 16)
	if err != nil {
		return nil, err
	}
	defer closeAll(good)
	logf("flood: %d anonymous guests log in", o.floodGuests)
	guests := make([]*xclient.Client, o.floodGuests)
	err = parallel(ctx, len(guests), 16, func(i int) error {
		c, err := xclient.Login(ctx, e.srv.C2SAddr, "", prosodytest.GuestHost, "")
		guests[i] = c
		return err
	})
	defer closeAll(guests)
	if err != nil {
		return nil, err
	}
	// A valid token for the room, but signed with the wrong secret.
	bad, err := auth.Mint(auth.MintRequest{
		Secret: []byte("not-the-secret-gavel-knows-at-all"), Issuer: appID, Audience: []string{"jitsi"},
		Subject: floodTenant, Room: "flooded", UserID: "mallory", Moderator: true, TTL: time.Hour,
	})
	if err != nil {
		return nil, err
	}
	tokens := make([]string, len(good))
	for i := range good {
		if tokens[i], err = b.floodToken(room, users[i]); err != nil {
			return nil, err
		}
	}
	res := &floodResult{Guests: len(guests), Good: len(good), GoodEvery: o.floodEvery, Duration: o.floodTime, FloodOut: map[string]int{}}

	// The good joiners knock every floodEvery each, staggered, for d.
	goodRun := func(ctx context.Context, d time.Duration) floodSide {
		var mu sync.Mutex
		side := floodSide{Outcomes: map[string]int{}}
		var lat []time.Duration
		var wg sync.WaitGroup
		end := time.Now().Add(d)
		for i, c := range good {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sleepCtx(ctx, o.floodEvery*time.Duration(i)/time.Duration(len(good)))
				for next := time.Now(); next.Before(end) && ctx.Err() == nil; next = next.Add(o.floodEvery) {
					sleepCtx(ctx, time.Until(next))
					kctx, cancel := context.WithTimeout(ctx, opTimeout)
					start := time.Now()
					_, err := c.Knock(kctx, prosodytest.Component, room, tokens[i])
					took := time.Since(start)
					cancel()
					mu.Lock()
					side.Knocks++
					side.Outcomes[knockOutcome(err)]++
					lat = append(lat, took)
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		slices.Sort(lat)
		side.P50, side.P99 = ms(pct(lat, 50)), ms(pct(lat, 99))
		if len(lat) > 0 {
			side.Max = ms(lat[len(lat)-1])
		}
		return side
	}

	logf("flood: %d good accounts knock every %v for %v, alone", len(good), o.floodEvery, o.floodTime)
	res.Quiet = goodRun(ctx, o.floodTime)

	logf("flood: the same while %d guests knock with bad signatures as fast as they are answered", len(guests))
	fctx, stop := context.WithCancel(ctx)
	var floodN atomic.Int64
	var fmu sync.Mutex
	var fw sync.WaitGroup
	u0 := e.usage()
	for _, g := range guests {
		fw.Add(1)
		go func() {
			defer fw.Done()
			for fctx.Err() == nil {
				kctx, cancel := context.WithTimeout(fctx, opTimeout)
				_, err := g.Knock(kctx, prosodytest.Component, room, bad)
				cancel()
				if fctx.Err() != nil {
					return
				}
				floodN.Add(1)
				fmu.Lock()
				res.FloodOut[knockOutcome(err)]++
				fmu.Unlock()
			}
		}()
	}
	start := time.Now()
	res.Flooded = goodRun(ctx, o.floodTime)
	stop()
	fw.Wait()
	wall := time.Since(start)
	u := e.usage().sub(u0)
	res.FloodKnocks = int(floodN.Load())
	res.FloodPerS = float64(res.FloodKnocks) / wall.Seconds()
	res.GavelCPU, res.ProsodyCPU = u.gavel, u.prosody
	return res, nil
}

// floodToken is a good joiner's token for room in the flood tenant.
func (b *bench) floodToken(room, user string) (string, error) {
	return auth.Mint(auth.MintRequest{
		Secret: b.e.secret, Issuer: appID, Audience: []string{"jitsi"},
		Subject: floodTenant, Room: "flooded", UserID: user, Name: user, TTL: 2 * time.Hour,
	})
}

func writeFlood(w io.Writer, r *floodResult, md bool) {
	out := func(m map[string]int) string {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		s := ""
		for _, k := range keys {
			if s != "" {
				s += ", "
			}
			s += fmt.Sprintf("%s %d", k, m[k])
		}
		return s
	}
	side := func(s floodSide) [4]string {
		return [4]string{fmt.Sprint(s.Knocks), out(s.Outcomes), fmt.Sprintf("%.2f / %.2f", s.P50, s.P99), fmt.Sprintf("%.1f", s.Max)}
	}
	q, f := side(r.Quiet), side(r.Flooded)
	rows := [][3]string{
		{"good knocks", q[0], f[0]},
		{"good outcomes", q[1], f[1]},
		{"good knock p50 / p99 (ms)", q[2], f[2]},
		{"good knock max (ms)", q[3], f[3]},
		{"flood knocks (bad signature)", "0", fmt.Sprintf("%d (%.0f/s)", r.FloodKnocks, r.FloodPerS)},
		{"flood outcomes", "-", out(r.FloodOut)},
		{"gavel / Prosody CPU while flooded", "-", fmt.Sprintf("%.2f s / %.2f s over %v", r.GavelCPU.Seconds(), r.ProsodyCPU.Seconds(), r.Duration)},
	}
	if md {
		mdRow(w, []string{"flood", "alone", "flooded"})
		mdRow(w, []string{"---", "---:", "---:"})
	} else {
		fmt.Fprintf(w, "\n== Flood: %d good accounts knock every %v each (within their limit) for %v, alone and while %d anonymous guests flood bad-signature knocks\n",
			r.Good, r.GoodEvery, r.Duration, r.Guests)
	}
	for _, row := range rows {
		if md {
			mdRow(w, row[:])
		} else {
			fmt.Fprintf(w, "%-36s %-28s %s\n", row[0], row[1], row[2])
		}
	}
}
