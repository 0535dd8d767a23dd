package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gavelxmpp/gavel/internal/prosodytest"
	"github.com/gavelxmpp/gavel/internal/xclient"
)

// Modes of a round. Bare clients join directly; gavel clients knock first.
// Arrivals use the algorithm names for their moderated variants.
const (
	modeBare  = "bare"
	modeGavel = "gavel"
	// modeDirect joins gavel's rooms without knocking (a guest, a member
	// in these open rooms): what gavel's presence in the room costs alone.
	modeDirect = "no-knock"
	// modeDeny knocks into gavel's members-only rooms (tenant "deny",
	// guests: deny, gavel's default): every participant's knock sets member.
	modeDeny = "deny"
	// modeLua and modeLuaDeny join open and members-only rooms where the
	// Lua stand-in (standin.go) sets the affiliation at pre-join.
	modeLua     = "lua"
	modeLuaDeny = "lua-deny"
	algHS256    = "HS256"
	algRS256    = "RS256"
)

// opTimeout bounds each client operation (a knock, a join, a leave).
const opTimeout = 20 * time.Second

// roomSet is a set of rooms that exist and hold a resident each, so that a
// round measures joins, not room creation.
type roomSet struct {
	gavel bool
	// direct: clients join without knocking (only with gavel rooms).
	direct bool
	// lua: clients put a claim into their join for the Lua stand-in.
	lua bool
	// deny: the rooms are members-only (gavel's tenant "deny", or
	// configured so for the stand-in).
	deny bool
	// mods is the share of visits whose token (or claim) is a moderator's.
	mods float64
	// name overrides the mode's name (decomposition variants).
	name string
	// domain is the rooms' MUC service (default prosodytest.MUC).
	domain string
	jids   []string
}

// mucDomain returns the MUC service of rs's rooms.
func (rs roomSet) mucDomain() string {
	if rs.domain != "" {
		return rs.domain
	}
	return prosodytest.MUC
}

// mode names the side of a comparison a round of rs is on.
func (rs roomSet) mode() string {
	switch {
	case rs.name != "":
		return rs.name
	case rs.lua && rs.deny:
		return modeLuaDeny
	case rs.lua:
		return modeLua
	case rs.gavel && rs.deny && !rs.direct:
		return modeDeny
	case rs.gavel && rs.direct:
		return modeDirect
	case rs.gavel:
		return modeGavel
	}
	return modeBare
}

// knocks reports whether joiners of rs knock first.
func (rs roomSet) knocks() bool { return rs.gavel && !rs.direct }

// joiner is a logged-in client that joins rooms under a fresh nick each
// time (xclient matches presences by nick across its whole history).
type joiner struct {
	id  int
	c   *xclient.Client
	seq atomic.Int64
}

func (j *joiner) nick() string { return fmt.Sprintf("j%d-%d", j.id, j.seq.Add(1)) }

// sample is one round of one mode.
type sample struct {
	Mode     string          `json:"mode"`
	Round    int             `json:"round"`
	Joins    int             `json:"joins"`
	Errors   int             `json:"errors"`
	FirstErr string          `json:"first_error,omitempty"`
	Late     int             `json:"late,omitempty"` // paced: visits that waited for a free client
	JoinWall time.Duration   `json:"join_wall_ns"`   // first join's start to last join's end
	Lat      []time.Duration `json:"-"`
	Stanzas  int             `json:"stanzas"`              // presences and messages delivered to the clients
	Presence int             `json:"presences"`            // of which presences
	Messages int             `json:"messages"`             // and messages
	ToGavel  *inbound        `json:"to_gavel,omitempty"`   // stanzas Prosody routed to gavel (where counted)
	LuaKiB   float64         `json:"prosody_lua_heap_kib"` // after the full collection before the round
	JoinCPU  cpuJSON         `json:"join_cpu"`
	RoundCPU cpuJSON         `json:"round_cpu"`
}

// cpuJSON is CPU time used by each process during a window.
type cpuJSON struct {
	Wall    time.Duration `json:"wall_ns"`
	Prosody time.Duration `json:"prosody_ns"`
	Gavel   time.Duration `json:"gavel_ns"`
	Self    time.Duration `json:"load_generator_ns"`
}

func cpuOf(u, u0 usage) cpuJSON {
	d := u.sub(u0)
	return cpuJSON{Wall: u.at.Sub(u0.at), Prosody: d.prosody, Gavel: d.gavel, Self: d.self}
}

// errs collects the errors of a round without stopping it.
type errs struct {
	mu    sync.Mutex
	n     int
	first string
}

func (e *errs) add(err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.n++
	if e.first == "" {
		e.first = err.Error()
	}
}

// bench drives the phases against a running env.
type bench struct {
	e         *env
	o         options
	residents []*xclient.Client
	joiners   []*joiner
	rooms     map[string]roomSet // by mode: the main rooms
	res       *results
	// tokenSeq numbers the tokens' user ids across the run.
	tokenSeq atomic.Int64
}

// moderator reports whether visit i of a round into rooms rooms carries a
// moderator token. Visits go round the rooms in waves (visit i into room
// i mod rooms); a share o.moderators of the waves are moderators, so every
// room gets its share, as meetings have one host among many guests.
func moderator(i, rooms int, share float64) bool {
	w := float64(i / rooms)
	f := share
	return int((w+1)*f) > int(w*f)
}

// clients returns every long-lived client, whose deliveries are counted.
func (b *bench) clients() []*xclient.Client {
	out := append([]*xclient.Client(nil), b.residents...)
	for _, j := range b.joiners {
		out = append(out, j.c)
	}
	return out
}

func delivered(cs []*xclient.Client) int {
	p, m := deliveredSplit(cs)
	return p + m
}

// deliveredSplit counts the presences and messages cs have received.
func deliveredSplit(cs []*xclient.Client) (presences, messages int) {
	for _, c := range cs {
		if c == nil {
			continue
		}
		p, m := c.Count()
		presences, messages = presences+p, messages+m
	}
	return presences, messages
}

// settle waits until no more stanzas arrive at cs (nothing new for 150 ms,
// at most 5 s) and returns the count.
func settle(ctx context.Context, cs []*xclient.Client) int {
	last, stable := delivered(cs), 0
	deadline := time.Now().Add(5 * time.Second)
	for stable < 3 && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(50 * time.Millisecond)
		n := delivered(cs)
		if n == last {
			stable++
		} else {
			last, stable = n, 0
		}
	}
	return last
}

// primeSet creates n rooms named prefix0..: a resident creates each (bare
// and the Lua stand-in's: joins and submits the instant-room form,
// members-only for rs.deny; gavel: knocks with a moderator token, gavel
// creates the room, members-only when its tenant says so, and the
// resident joins as owner) and stays.
func (b *bench) primeSet(ctx context.Context, rs roomSet, prefix string, n int) (roomSet, time.Duration, error) {
	gavel := rs.gavel
	rs.jids = make([]string, n)
	if rs.mods == 0 && rs.name == "" {
		rs.mods = b.o.moderators
	}
	form := `<query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'/></query>`
	if rs.deny && !gavel {
		form = `<query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'>` +
			`<field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/muc#roomconfig</value></field>` +
			`<field var='muc#roomconfig_membersonly'><value>1</value></field></x></query>`
	}
	toks := make([]string, n)
	for i := range rs.jids {
		rs.jids[i] = fmt.Sprintf("%s%d@%s", prefix, i, rs.mucDomain())
		if gavel {
			t, err := b.e.token(algHS256, rs.jids[i], fmt.Sprintf("host-%s%d", prefix, i), true)
			if err != nil {
				return rs, 0, err
			}
			toks[i] = t
		}
	}
	start := time.Now()
	err := parallel(ctx, n, b.o.concurrency, func(i int) error {
		c := b.residents[i%len(b.residents)]
		cctx, cancel := context.WithTimeout(ctx, opTimeout)
		defer cancel()
		room := rs.jids[i]
		if gavel {
			if _, err := c.Knock(cctx, prosodytest.Component, room, toks[i]); err != nil {
				return fmt.Errorf("knock %s: %w", room, err)
			}
			if _, err := c.Join(cctx, room, "host"); err != nil {
				return fmt.Errorf("join %s: %w", room, err)
			}
			return nil
		}
		if _, err := c.Join(cctx, room, "host"); err != nil {
			return fmt.Errorf("join %s: %w", room, err)
		}
		if err := c.IQ(cctx, room, "set", form, nil); err != nil {
			return fmt.Errorf("unlock %s: %w", room, err)
		}
		return nil
	})
	return rs, time.Since(start), err
}

// enter knocks (in gavel rooms) and joins room as nick. A token that
// starts with "<" is the Lua stand-in's claim: it goes into the join's muc
// element instead of a knock.
func enter(ctx context.Context, c *xclient.Client, room, nick, token string, knock bool) error {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	if strings.HasPrefix(token, "<") {
		return joinClaim(ctx, c, room, nick, token)
	}
	if knock {
		if _, err := c.Knock(ctx, prosodytest.Component, room, token); err != nil {
			return fmt.Errorf("knock %s: %w", room, err)
		}
	}
	if _, err := c.Join(ctx, room, nick); err != nil {
		return fmt.Errorf("join %s as %s: %w", room, nick, err)
	}
	return nil
}

// leave leaves room and waits for the room to confirm.
func leave(ctx context.Context, c *xclient.Client, room, nick string) error {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	if err := c.Leave(ctx, room, nick); err != nil {
		return err
	}
	occupant := room + "/" + nick
	_, err := c.WaitPresence(ctx, func(p xclient.Presence) bool {
		return p.Type == "unavailable" && strings.EqualFold(p.From, occupant)
	})
	return err
}

// tokens mints one token (alg HS256 or RS256) per visit of a gavel round;
// visit i goes to room rooms[i % len(rooms)]. Every token is new, so that
// gavel's cache of verified tokens never hits.
func (b *bench) tokens(rs roomSet, visits int, alg string) ([]string, error) {
	out := make([]string, visits)
	if rs.lua {
		for i := range out {
			out[i] = claimXML(moderator(i, len(rs.jids), rs.mods))
		}
		return out, nil
	}
	if !rs.knocks() {
		return out, nil
	}
	for i := range out {
		user := fmt.Sprintf("user-%d", b.tokenSeq.Add(1))
		t, err := b.e.token(alg, rs.jids[i%len(rs.jids)], user, moderator(i, len(rs.jids), rs.mods))
		if err != nil {
			return nil, err
		}
		out[i] = t
	}
	return out, nil
}

// joinsRound has each joiner enter a room (joiner i into room i mod M, at
// most conc at once), waits until all are in, lets them stay, and has them
// leave.
func (b *bench) joinsRound(ctx context.Context, rs roomSet, js []*joiner, conc int, stay time.Duration) (sample, error) {
	mode := rs.mode()
	n := len(js)
	toks, err := b.tokens(rs, n, algHS256)
	if err != nil {
		return sample{}, err
	}
	all := b.clients()
	lua := b.e.quiesce(ctx)
	g0 := b.e.toGavel(ctx)
	p0, m0 := deliveredSplit(all)
	c0, u0 := p0+m0, b.e.usage()
	s := sample{Mode: mode, Lat: make([]time.Duration, 0, n), LuaKiB: lua}
	var (
		mu    sync.Mutex
		nicks = make([]string, n)
		bad   errs
	)
	start := time.Now()
	_ = parallel(ctx, n, conc, func(i int) error {
		j, room := js[i], rs.jids[i%len(rs.jids)]
		nick := j.nick()
		t := time.Now()
		err := enter(ctx, j.c, room, nick, toks[i], rs.knocks())
		d := time.Since(t)
		if err != nil {
			bad.add(err)
			return nil
		}
		mu.Lock()
		s.Lat = append(s.Lat, d)
		nicks[i] = nick
		mu.Unlock()
		return nil
	})
	s.JoinWall = time.Since(start)
	s.JoinCPU = cpuOf(b.e.usage(), u0)
	sleepCtx(ctx, stay)
	_ = parallel(ctx, n, conc, func(i int) error {
		if nicks[i] == "" {
			return nil
		}
		if err := leave(ctx, js[i].c, rs.jids[i%len(rs.jids)], nicks[i]); err != nil {
			bad.add(err)
		}
		return nil
	})
	s.Stanzas = settle(ctx, all) - c0
	s.RoundCPU = cpuOf(b.e.usage(), u0)
	p1, m1 := deliveredSplit(all)
	s.Presence, s.Messages = p1-p0, m1-m0
	s.ToGavel = g0.to(b.e.toGavel(ctx))
	s.Joins, s.Errors, s.FirstErr = len(s.Lat), bad.n, bad.first
	return s, ctx.Err()
}

// pacedRound starts a visit every 1/rate seconds for d: a free joiner
// enters the next room, stays, leaves, and becomes free again. Latency
// counts from the visit's scheduled start, so a late start is not hidden.
func (b *bench) pacedRound(ctx context.Context, rs roomSet, js []*joiner, rate float64, d, stay time.Duration) (sample, error) {
	mode := rs.mode()
	total := int(rate * d.Seconds())
	toks, err := b.tokens(rs, total, algHS256)
	if err != nil {
		return sample{}, err
	}
	pool := make(chan *joiner, len(js))
	for _, j := range js {
		pool <- j
	}
	all := b.clients()
	lua := b.e.quiesce(ctx)
	g0 := b.e.toGavel(ctx)
	p0, m0 := deliveredSplit(all)
	c0, u0 := p0+m0, b.e.usage()
	s := sample{Mode: mode, Lat: make([]time.Duration, 0, total), LuaKiB: lua}
	var (
		mu      sync.Mutex
		lastEnd time.Time
		bad     errs
		wg      sync.WaitGroup
	)
	start := time.Now()
	for k := 0; k < total && ctx.Err() == nil; k++ {
		at := start.Add(time.Duration(float64(k) / rate * float64(time.Second)))
		sleepCtx(ctx, time.Until(at))
		var j *joiner
		select {
		case j = <-pool:
		default:
			s.Late++
			select {
			case j = <-pool:
			case <-ctx.Done():
				continue
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { pool <- j }()
			room := rs.jids[k%len(rs.jids)]
			nick := j.nick()
			err := enter(ctx, j.c, room, nick, toks[k], rs.knocks())
			end := time.Now()
			if err != nil {
				bad.add(err)
				return
			}
			mu.Lock()
			s.Lat = append(s.Lat, end.Sub(at))
			if end.After(lastEnd) {
				lastEnd = end
			}
			mu.Unlock()
			sleepCtx(ctx, stay)
			if err := leave(ctx, j.c, room, nick); err != nil {
				bad.add(err)
			}
		}()
	}
	wg.Wait()
	s.JoinWall = lastEnd.Sub(start)
	s.JoinCPU = cpuOf(b.e.usage(), u0)
	s.Stanzas = settle(ctx, all) - c0
	s.RoundCPU = cpuOf(b.e.usage(), u0)
	p1, m1 := deliveredSplit(all)
	s.Presence, s.Messages = p1-p0, m1-m0
	s.ToGavel = g0.to(b.e.toGavel(ctx))
	s.Joins, s.Errors, s.FirstErr = len(s.Lat), bad.n, bad.first
	return s, ctx.Err()
}

// arrivalsRound has each account log in, knock (unless bare) and join at
// once, at most conc at a time, into the rooms of rs; then they all
// disconnect. alg is the tokens' algorithm ("" for bare).
func (b *bench) arrivalsRound(ctx context.Context, rs roomSet, users []string, conc int, alg string) (sample, error) {
	mode := modeBare
	toks := make([]string, len(users))
	if rs.gavel {
		mode = alg
		if rs.deny {
			mode = alg + "-" + modeDeny
		}
		var err error
		if toks, err = b.tokens(rs, len(users), alg); err != nil {
			return sample{}, err
		}
	}
	lua := b.e.quiesce(ctx)
	u0 := b.e.usage()
	s := sample{Mode: mode, Lat: make([]time.Duration, 0, len(users)), LuaKiB: lua}
	clients := make([]*xclient.Client, len(users))
	var (
		mu  sync.Mutex
		bad errs
	)
	start := time.Now()
	_ = parallel(ctx, len(users), conc, func(i int) error {
		t := time.Now()
		cctx, cancel := context.WithTimeout(ctx, opTimeout)
		defer cancel()
		c, err := xclient.Login(cctx, b.e.srv.C2SAddr, users[i], prosodytest.Host, "pw")
		if err != nil {
			bad.add(err)
			return nil
		}
		clients[i] = c
		if err := enter(ctx, c, rs.jids[i%len(rs.jids)], fmt.Sprintf("a%d", i), toks[i], rs.gavel); err != nil {
			bad.add(err)
			return nil
		}
		d := time.Since(t)
		mu.Lock()
		s.Lat = append(s.Lat, d)
		mu.Unlock()
		return nil
	})
	s.JoinWall = time.Since(start)
	s.JoinCPU = cpuOf(b.e.usage(), u0)
	closeAll(clients)
	settle(ctx, b.residents)
	s.RoundCPU = cpuOf(b.e.usage(), u0)
	s.Joins, s.Errors, s.FirstErr = len(s.Lat), bad.n, bad.first
	return s, ctx.Err()
}

// joinClaim joins room as nick with claim inside the join's muc element,
// where the Lua stand-in reads it and the room relays nothing.
func joinClaim(ctx context.Context, c *xclient.Client, room, nick, claim string) error {
	occupant := room + "/" + nick
	if err := c.Send(ctx, `<presence to='`+occupant+`'><x xmlns='http://jabber.org/protocol/muc'><history maxstanzas='0'/>`+claim+`</x></presence>`); err != nil {
		return err
	}
	p, err := c.WaitPresence(ctx, func(p xclient.Presence) bool {
		return strings.EqualFold(p.From, occupant) && (p.Self() || p.Type == "error")
	})
	if err == nil && p.Error != nil {
		err = p.Error
	}
	if err != nil {
		return fmt.Errorf("join %s as %s: %w", room, nick, err)
	}
	return nil
}

func sleepCtx(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
