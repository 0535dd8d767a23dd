package component

import (
	"encoding/xml"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
)

// This file detects a second gavel connected under the same component
// name. Prosody refuses the second connection (conflict), but ejabberd
// accepts it and spreads the stanzas for the component over both
// connections: each gavel sees some of the knocks and presences, and the
// rest are lost to it.
//
// Each gavel sends probes through the server to its own JID: headline
// messages from and to mod.example.test/probe-<nonce>, carrying the nonce,
// a random instance id and when the instance started. Only the server can
// stamp a from in the component's own domain, so clients cannot forge one.
// With a single connection every probe comes back. With two, the server
// hands some probes to the other connection: each gavel then receives
// probes it never sent. The one that started later refuses to run (Run
// returns ErrDuplicateInstance); the one that started first logs it and
// sends another round at once, so the later one hears of it quickly.
//
// Probes go out when a connection is up, before rooms are joined (a second
// gavel must not enter rooms under the first one's occupant JID), and
// every ProbeInterval after that. A round whose probes only partly come
// back (another connection took some) is followed by another a second
// later.

const nsInstance = "urn:gavel:instance:0"

var nameProbe = xml.Name{Space: nsInstance, Local: "probe"}

// Probe settings.
const (
	probesPerRound = 16 // with two connections, all 16 stay on one side with p = 2^-16
	probeWait      = 2 * time.Second
	probeRetry     = time.Second
)

// ErrDuplicateInstance is returned by Run when another component instance
// is connected under the same name and started before this one.
var ErrDuplicateInstance = errors.New("component: another component instance is connected under the same name")

// DuplicateInstanceError is the error Run returns as the second instance.
// It matches ErrDuplicateInstance with errors.Is.
type DuplicateInstanceError struct {
	Domain string
	// Other is the other instance's start time.
	Other time.Time
}

func (e *DuplicateInstanceError) Error() string {
	return fmt.Sprintf("component: another component instance is connected as %s: refusing to run as the second one (the other started at %s)", e.Domain, e.Other.UTC().Format(time.RFC3339Nano))
}

// Is reports whether target is ErrDuplicateInstance.
func (e *DuplicateInstanceError) Is(target error) bool { return target == ErrDuplicateInstance }

// probeEl is the probe's payload.
type probeEl struct {
	Nonce    string `xml:"nonce,attr"`
	Instance string `xml:"instance,attr"`
	Since    string `xml:"since,attr"` // start time, Unix nanoseconds
}

// prober runs the probes of one Component across its sessions.
type prober struct {
	c        *Component
	instance string
	since    time.Time

	mu       sync.Mutex
	sent     map[string]bool // nonces of the current round
	back     int             // of them, how many came back
	warned   map[string]bool // other instances already reported
	roundEnd chan struct{}   // closed when every probe of the round is back
	fatal    chan error      // the verdict: this is the second instance
	again    chan struct{}   // a round is wanted now (another instance was seen)
}

func newProber(c *Component) *prober {
	return &prober{
		c: c, instance: newID(), since: time.Now(),
		warned: map[string]bool{}, fatal: make(chan error, 1), again: make(chan struct{}, 1),
	}
}

// round sends one round of probes and waits for them (at most probeWait).
// It returns how many came back and how many were sent.
func (p *prober) round(sess *session) (back, sent int, err error) {
	p.mu.Lock()
	p.sent = make(map[string]bool, probesPerRound)
	p.back = 0
	p.roundEnd = make(chan struct{})
	end := p.roundEnd
	var b xb
	since := strconv.FormatInt(p.since.UnixNano(), 10)
	for range probesPerRound {
		nonce := newID()
		p.sent[nonce] = true
		from := p.c.opts.Domain + "/probe-" + nonce
		b.open("message", "from", from, "to", from, "type", "headline")
		b.empty("probe", "xmlns", nsInstance, "nonce", nonce, "instance", p.instance, "since", since)
		b.close("message")
	}
	p.mu.Unlock()
	if err := sess.write(b.Bytes()); err != nil {
		return 0, probesPerRound, err
	}
	t := time.NewTimer(probeWait)
	defer t.Stop()
	select {
	case <-end:
	case <-t.C:
	case <-sess.done:
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	back = p.back
	p.sent = nil // late probes of this round count as ours, not as another's
	return back, probesPerRound, nil
}

// handle receives a probe (on the read loop: it never writes).
func (p *prober) handle(_ *session, st *stanza) {
	// Only the server can send from the component's own domain.
	if !strings.EqualFold(domainOf(st.From), p.c.opts.Domain) || !strings.Contains(st.From, "/probe-") {
		p.c.log.Debug("instance probe from elsewhere ignored", zap.String("from", st.From))
		return
	}
	if st.Probe == nil {
		return
	}
	el := *st.Probe
	if el.Instance == p.instance {
		p.mu.Lock()
		if p.sent[el.Nonce] {
			delete(p.sent, el.Nonce)
			p.back++
			if len(p.sent) == 0 {
				close(p.roundEnd)
			}
		}
		p.mu.Unlock()
		return
	}
	ns, err := strconv.ParseInt(el.Since, 10, 64)
	if err != nil || el.Instance == "" {
		p.c.log.Debug("malformed instance probe ignored", zap.String("from", st.From))
		return
	}
	other := time.Unix(0, ns)
	if other.Before(p.since) || (other.Equal(p.since) && el.Instance < p.instance) {
		select {
		case p.fatal <- &DuplicateInstanceError{Domain: p.c.opts.Domain, Other: other}:
		default:
		}
		return
	}
	p.mu.Lock()
	first := !p.warned[el.Instance]
	if len(p.warned) < 100 {
		p.warned[el.Instance] = true
	}
	p.mu.Unlock()
	if first {
		p.c.log.Error("another component instance is connected as "+p.c.opts.Domain+" (it started after this one, which keeps running; it should refuse to run)",
			zap.Time("other_started", other))
	}
	select {
	case p.again <- struct{}{}:
	default:
	}
}

// run probes sess at once and then every interval until the session
// ends. The first round's end is signalled on ready (closed whatever it
// found), so rooms are joined only after it.
func (p *prober) run(sess *session, interval time.Duration, ready chan<- struct{}) {
	readyOnce := sync.OnceFunc(func() { close(ready) })
	defer readyOnce()
	t := time.NewTimer(0)
	defer t.Stop()
	for first := true; ; first = false {
		select {
		case <-t.C:
		case <-p.again:
		case <-sess.done:
			return
		}
		back, sent, err := p.round(sess)
		if err != nil {
			return
		}
		next := interval
		switch {
		case back == sent:
		case back == 0:
			// The server did not route them back (or another connection
			// took them all): nothing to conclude from silence.
			p.c.log.Debug("no instance probe came back", zap.Int("sent", sent))
		case back < sent:
			p.c.log.Warn("some probes to gavel's own JID went to another connection: is a second instance connected as "+p.c.opts.Domain+"?",
				zap.Int("sent", sent), zap.Int("back", back))
			next = probeRetry
		}
		if first {
			readyOnce()
		}
		t.Reset(next)
	}
}
