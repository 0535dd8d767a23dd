// Package component is gavel's XMPP side: the XEP-0114 session with the
// server, reconnection, the rooms gavel governs, the knock protocol and
// ad-hoc commands. Decisions come from package policy; tokens are checked by
// package auth; bans live in package store.
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
	c := &Component{opts: opts, log: opts.Logger, connCh: make(chan struct{})}
	if opts.Moderation != nil {
		opts.Moderation.attach(c)
	}
	return c, nil
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
// exponential backoff and jitter. It returns nil after a clean shutdown.
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
		reason := c.serve(ctx, sess)
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
// down cleanly). It returns why the session ended.
func (c *Component) serve(ctx context.Context, sess *session) string {
	c.mu.Lock()
	c.sess = sess
	c.connected.Store(true)
	close(c.connCh)
	c.mu.Unlock()
	if c.opts.OnState != nil {
		c.opts.OnState(true)
	}
	if m := c.opts.Moderation; m != nil {
		m.connected(sess)
	}

	readErr := make(chan error, 1)
	go func() { readErr <- sess.readLoop(func(st *stanza) { c.handle(sess, st) }) }()

	keepalive := time.NewTicker(30 * time.Second)
	defer keepalive.Stop()
	var reason string
loop:
	for {
		select {
		case err := <-readErr:
			reason = describeEnd(err)
			break loop
		case <-keepalive.C:
			_ = sess.write([]byte(" "))
		case <-ctx.Done():
			reason = "shutdown"
			deadline := time.Now().Add(c.opts.ShutdownTimeout)
			if m := c.opts.Moderation; m != nil {
				m.shutdown(sess, deadline)
			}
			sess.close(deadline)
			<-readErr
			break loop
		}
	}
	sess.conn.Close()
	c.mu.Lock()
	c.connected.Store(false)
	c.connCh = make(chan struct{})
	c.mu.Unlock()
	if m := c.opts.Moderation; m != nil {
		m.disconnected()
	}
	if c.opts.OnState != nil {
		c.opts.OnState(false)
	}
	return reason
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
