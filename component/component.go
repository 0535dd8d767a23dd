package component

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap"
)

// Version is gavel's version, answered to jabber:iq:version.
var Version = "dev"

// Options configure a Component.
type Options struct {
	// Domain is the component's JID (a domain) and Address the server's
	// component port.
	Domain, Address string
	Secret          []byte
	// Nick is gavel's nickname in rooms.
	Nick string
	// ReconnectMin and ReconnectMax bound the backoff after a dropped or
	// refused connection. A handshake refusal (wrong secret, name taken)
	// backs off up to HandshakeBackoffMax.
	ReconnectMin, ReconnectMax time.Duration
	HandshakeBackoffMax        time.Duration
	// ShutdownTimeout bounds a clean stop.
	ShutdownTimeout time.Duration
	Logger          *zap.Logger
	// Moderation, when set, governs rooms; without it gavel only connects
	// and answers disco and ping.
	Moderation *Moderation
	// OnState, if set, is called on every connection state change.
	OnState func(connected bool)
	// ProbeInterval is how often gavel checks that no other instance is
	// connected under the same name (instance.go): default 30 s; negative
	// turns the check off. The check also runs on every connection.
	ProbeInterval time.Duration
	// Metrics receives the session's metrics; by default the
	// Moderation's, or unregistered ones.
	Metrics *Metrics

	iqTimeout time.Duration // tests shorten it
}

// Component keeps a session with the XMPP server alive and serves it.
type Component struct {
	opts Options
	log  *zap.Logger

	mu        sync.Mutex
	sess      *session
	epoch     int
	connected atomic.Bool
	connCh    chan struct{} // closed while connected
	wg        sync.WaitGroup
	mux       *stanzaMux
	prober    *prober
	metrics   *Metrics

	reconnects atomic.Uint64
}

// New checks options and returns a component ready to Run.
func New(opts Options) (*Component, error) {
	if opts.Domain == "" || opts.Address == "" || len(opts.Secret) == 0 {
		return nil, errors.New("component: domain, address and secret are required")
	}
	if opts.Nick == "" {
		opts.Nick = "gavel"
	}
	if opts.ReconnectMin <= 0 {
		opts.ReconnectMin = 100 * time.Millisecond
	}
	if opts.ReconnectMax < opts.ReconnectMin {
		opts.ReconnectMax = 2 * time.Second
	}
	if opts.HandshakeBackoffMax <= 0 {
		opts.HandshakeBackoffMax = time.Minute
	}
	if opts.ShutdownTimeout <= 0 {
		opts.ShutdownTimeout = 5 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if opts.ProbeInterval == 0 {
		opts.ProbeInterval = 30 * time.Second
	}
	if opts.Metrics == nil && opts.Moderation != nil {
		opts.Metrics = opts.Moderation.metrics
	}
	if opts.Metrics == nil {
		opts.Metrics = NewMetrics(nil)
	}
	c := &Component{opts: opts, log: opts.Logger, connCh: make(chan struct{}), metrics: opts.Metrics}
	c.prober = newProber(c)
	routes := append(c.routes(), handleMessage("headline", nameProbe, HandlerFunc(c.prober.handle)))
	if opts.Moderation != nil {
		opts.Moderation.attach(c)
		routes = append(routes, opts.Moderation.routes()...)
	}
	c.mux = newMux(routes...)
	return c, nil
}

// PendingIQs is the number of IQs sent on the current session and
// waiting for an answer.
func (c *Component) PendingIQs() int {
	c.mu.Lock()
	sess := c.sess
	c.mu.Unlock()
	if sess == nil {
		return 0
	}
	return sess.pendingIQs()
}

// Connected reports whether the session with the server is up.
func (c *Component) Connected() bool { return c.connected.Load() }

// Reconnects counts sessions established after the first.
func (c *Component) Reconnects() uint64 { return c.reconnects.Load() }

// WaitConnected blocks until the session is up or ctx ends.
func (c *Component) WaitConnected(ctx context.Context) error {
	for {
		c.mu.Lock()
		ch := c.connCh
		c.mu.Unlock()
		if c.connected.Load() {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Run connects and serves until ctx ends, reconnecting with capped
// exponential backoff and jitter. It returns nil after a clean shutdown,
// and a *DuplicateInstanceError (errors.Is ErrDuplicateInstance) when
// another instance started earlier is connected under the same name.
func (c *Component) Run(ctx context.Context) error {
	defer c.wg.Wait()
	var (
		delay, hsDelay time.Duration
		lastState      string
	)
	logState := func(state, reason string, fields ...zap.Field) {
		key := state + "|" + reason
		if key == lastState {
			c.log.Debug("component "+state, append(fields, zap.String("reason", reason))...)
			return
		}
		lastState = key
		fn := c.log.Warn
		if state == "connected" {
			fn = c.log.Info
		}
		fn("component "+state, append(fields, zap.String("reason", reason))...)
	}
	for ctx.Err() == nil {
		c.mu.Lock()
		c.epoch++
		epoch := c.epoch
		c.mu.Unlock()
		sess, err := dial(ctx, c.opts.Address, c.opts.Domain, c.opts.Secret, epoch)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			var hs *HandshakeError
			var wait time.Duration
			if errors.As(err, &hs) {
				hsDelay, wait = backoff(hsDelay, time.Second, c.opts.HandshakeBackoffMax)
				logState("refused", err.Error(), zap.Duration("retry_in", wait))
				if hs.Condition == "conflict" {
					// Prosody refuses a second connection under one name.
					// This may be the second gavel, or the first one
					// reconnecting before the server dropped its old
					// connection: retry, and say so every time.
					c.log.Warn("another component instance is connected as "+c.opts.Domain+": the server refused this one (conflict); retrying", zap.Duration("retry_in", wait))
				}
			} else {
				delay, wait = backoff(delay, c.opts.ReconnectMin, c.opts.ReconnectMax)
				logState("unreachable", shortNetErr(err), zap.String("address", c.opts.Address), zap.Duration("retry_in", wait))
			}
			if !sleep(ctx, wait) {
				break
			}
			continue
		}
		if epoch > 1 {
			c.reconnects.Add(1)
		}
		started := time.Now()
		logState("connected", "handshake accepted", zap.String("jid", c.opts.Domain), zap.String("address", c.opts.Address))
		reason, fatal := c.serve(ctx, sess)
		if fatal != nil {
			c.log.Error("another component instance is connected as "+c.opts.Domain+": refusing to run as the second one", zap.Error(fatal))
			return fatal
		}
		if ctx.Err() != nil {
			break
		}
		logState("disconnected", reason)
		if time.Since(started) > 10*time.Second {
			delay, hsDelay = 0, 0
		}
		var wait time.Duration
		delay, wait = backoff(delay, c.opts.ReconnectMin, c.opts.ReconnectMax)
		if !sleep(ctx, wait) {
			break
		}
	}
	c.log.Info("component stopped")
	return nil
}

// serve runs one session until it ends or ctx is cancelled (then it shuts
// down cleanly). It returns why the session ended, and an error when this
// instance must stop (a second instance under the same name).
func (c *Component) serve(ctx context.Context, sess *session) (string, error) {
	if c.opts.iqTimeout > 0 {
		sess.iqTimeout = c.opts.iqTimeout
	}
	sess.iqs.onSize = func(d int) { c.metrics.PendingIQs.Add(float64(d)) }
	sess.iqs.onDropped = func(st *stanza, want string) {
		c.metrics.DroppedIQs.Inc()
		c.log.Debug("IQ answer dropped: it does not come from the JID the request went to",
			zap.String("id", st.ID), zap.String("from", st.From), zap.String("want", want))
	}
	c.mu.Lock()
	c.sess = sess
	c.mu.Unlock()

	readErr := make(chan error, 1)
	go func() { readErr <- sess.readLoop(func(st *stanza) { c.serveStanza(sess, st) }) }()

	// Before anything else (joining rooms under this instance's occupant
	// JID), check that this is the only instance.
	ready := make(chan struct{})
	if c.opts.ProbeInterval > 0 {
		c.wg.Add(1)
		go func() { defer c.wg.Done(); c.prober.run(sess, c.opts.ProbeInterval, ready) }()
	} else {
		close(ready)
	}
	var (
		reason string
		fatal  error
		up     bool
	)
	keepalive := time.NewTicker(30 * time.Second)
	defer keepalive.Stop()
loop:
	for {
		select {
		case <-ready:
			ready = nil
			up = true
			c.mu.Lock()
			c.connected.Store(true)
			close(c.connCh)
			c.mu.Unlock()
			if c.opts.OnState != nil {
				c.opts.OnState(true)
			}
			if m := c.opts.Moderation; m != nil {
				m.connected(sess)
			}
		case err := <-readErr:
			reason = describeEnd(err)
			break loop
		case fatal = <-c.prober.fatal:
			reason = "another instance is connected under the same name"
			// Leave no room: this instance's occupant JID may be the
			// other one's. Closing the stream is enough.
			deadline := time.Now().Add(c.opts.ShutdownTimeout)
			if m := c.opts.Moderation; m != nil {
				m.shutdown(nil, deadline)
			}
			sess.close(deadline)
			<-readErr
			break loop
		case <-keepalive.C:
			_ = sess.queue([]byte(" "))
		case <-ctx.Done():
			reason = "shutdown"
			deadline := time.Now().Add(c.opts.ShutdownTimeout)
			if m := c.opts.Moderation; m != nil {
				leave := sess
				if !up {
					leave = nil // this session never entered a room
				}
				m.shutdown(leave, deadline)
			}
			sess.close(deadline)
			<-readErr
			break loop
		}
	}
	sess.conn.Close()
	<-sess.wdone
	c.mu.Lock()
	c.sess = nil
	wasUp := c.connected.Swap(false)
	if wasUp {
		c.connCh = make(chan struct{})
	}
	c.mu.Unlock()
	if m := c.opts.Moderation; m != nil {
		m.disconnected()
	}
	if c.opts.OnState != nil && wasUp {
		c.opts.OnState(false)
	}
	return reason, fatal
}

func describeEnd(err error) string {
	if err == nil || errors.Is(err, net.ErrClosed) {
		return "connection closed"
	}
	if err.Error() == "EOF" {
		return "the server closed the connection"
	}
	return err.Error()
}

func shortNetErr(err error) string {
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	}
	return err.Error()
}

// backoff doubles the nominal delay prev within [min, max] and returns it
// with the time to wait: half of it fixed, half random, so a refused
// connection never becomes a hot loop and many instances do not retry in
// step. The nominal delay carries no jitter, so waits cannot shrink.
func backoff(prev, min, max time.Duration) (next, wait time.Duration) {
	next = prev * 2
	if next < min {
		next = min
	}
	if next > max {
		next = max
	}
	return next, next/2 + rand.N(next/2+1)
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
