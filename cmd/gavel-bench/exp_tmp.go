package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/gavelxmpp/gavel/internal/prosodytest"
)

func init() {
	if os.Getenv("GB_EXP") != "" {
		expHook = experiment
	}
}

func experiment(ctx context.Context, b *bench) error {
	e := b.e
	n := len(b.joiners)
	measure := func(name string, conc int, f func(i int) error) {
		for r := 0; r < 3; r++ {
			e.quiesce(ctx)
			u0 := e.usage()
			t := time.Now()
			err := parallel(ctx, n, conc, f)
			el := time.Since(t)
			time.Sleep(300 * time.Millisecond)
			u := e.usage().sub(u0)
			fmt.Printf("%-28s %v/s  prosody %.3f ms/op  gavel %.3f ms/op err=%v\n", name, int(float64(n)/el.Seconds()), ms(u.prosody)/float64(n), ms(u.gavel)/float64(n), err)
		}
	}
	measure("ping server", 32, func(i int) error {
		return b.joiners[i].c.IQ(ctx, prosodytest.Host, "get", `<ping xmlns='urn:xmpp:ping'/>`, nil)
	})
	measure("disco#info component", 32, func(i int) error {
		return b.joiners[i].c.IQ(ctx, prosodytest.Component, "get", `<query xmlns='http://jabber.org/protocol/disco#info'/>`, nil)
	})
	measure("disco#info room", 32, func(i int) error {
		return b.joiners[i].c.IQ(ctx, b.rooms[modeGavel].jids[0], "get", `<query xmlns='http://jabber.org/protocol/disco#info'/>`, nil)
	})
	b.o.moderators = 0
	toks, _ := b.tokens(b.rooms[modeGavel], n, algHS256)
	measure("knock (participant)", 32, func(i int) error {
		_, err := b.joiners[i].c.Knock(ctx, prosodytest.Component, b.rooms[modeGavel].jids[i%len(b.rooms[modeGavel].jids)], toks[i])
		return err
	})
	for _, mode := range []string{modeBare, modeGavel, modeBare, modeGavel} {
		rs := b.rooms[mode]
		rs.gavel = false // join without knocking
		s, err := b.joinsRound(ctx, rs, b.joiners, 32, 0)
		fmt.Printf("join no knock %-6s %.0f/s prosody %.3f ms/visit gavel %.3f stanzas/join %.2f err=%v %d\n", mode, float64(s.Joins)/s.JoinWall.Seconds(),
			ms(s.RoundCPU.Prosody)/float64(s.Joins), ms(s.RoundCPU.Gavel)/float64(s.Joins), float64(s.Stanzas)/float64(s.Joins), err, s.Errors)
	}
	return nil
}
