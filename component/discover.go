package component

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/gavelxmpp/gavel/policy"
)

// This file holds room discovery: with stock Prosody nothing tells a
// component that a client created a room, so gavel polls the MUC's list of
// rooms and enters those it does not govern.
//
// Two lists exist. Prosody's MUC offers its admins an ad-hoc command,
// "Destroy Rooms" (nodeListRooms), whose first step is a form listing every
// room, hidden ones included; gavel reads that form and cancels the command
// (it never submits it). Elsewhere (ejabberd) gavel reads disco#items,
// which lists public rooms only. Prosody's disco#items is no substitute: it
// lists public rooms from a cache that a new room enters only once it is
// saved (configured, or an affiliation changes), so a room a client
// creates and never configures may never appear there.

// nodeListRooms is Prosody's admin command whose first step lists rooms.
const nodeListRooms = "http://prosody.im/protocol/muc#destroy"

type listMethod uint8

const (
	listUnknown listMethod = iota
	listCommand            // Prosody's admin command
	listItems              // disco#items
)

func (l listMethod) String() string {
	return [...]string{"unknown", "prosody admin command (every room)", "disco#items (public rooms)"}[l]
}

// dormantFor is how long discovery leaves alone a room gavel left because
// it was empty (a persistent room stays listed); then it asks the room how
// many occupants it has before entering again.
func dormantFor(interval time.Duration) time.Duration { return max(5*time.Second, 20*interval) }

// discover polls muc's room list for one session.
func (m *Moderation) discover(sess *session, muc MUC) {
	defer m.loops.Done()
	t := time.NewTicker(muc.DiscoverInterval)
	defer t.Stop()
	// seen maps each listed room to the poll that first listed it: rooms
	// first listed after the first poll were created while gavel watched,
	// so their owner is whoever created them.
	seen := map[string]int{}
	failures := 0
	method := listUnknown
	var costs listCosts
	for poll := 0; ; poll++ {
		start := time.Now()
		listed, err := m.listRooms(sess, muc.Domain, &method)
		// Listing costs the server time in proportion to its rooms
		// (about 20 µs of Prosody's CPU per room): wait at least 20
		// round trips, so polling takes at most about 5 % of it. The
		// round trip is the median of the last few, so that one slow
		// answer (a busy moment) does not hold the next poll for
		// seconds.
		t.Reset(max(muc.DiscoverInterval, 20*costs.add(time.Since(start))))
		switch {
		case sess.closed.Load():
			return
		case err != nil:
			failures++
			if failures == 1 || failures%100 == 0 {
				m.log.Warn("room discovery: the room list is not available", zap.String("muc", muc.Domain), zap.Error(err), zap.Int("failures", failures))
			}
		default:
			failures = 0
			for room := range seen {
				if !listed[room] {
					delete(seen, room)
				}
			}
			for room := range listed {
				if healthCheckRoom(room) {
					continue // Jicofo's, created and destroyed every few seconds
				}
				if _, ok := seen[room]; !ok {
					seen[room] = poll
				}
				m.adopt(sess, room, poll > 0 && seen[room] > 0)
			}
			m.forgetDormant(muc.Domain, listed)
		}
		select {
		case <-t.C:
		case <-sess.done:
			return
		}
	}
}

// listRooms returns the rooms muc lists, by prepared bare JID. It
// settles on a method at the first answer.
func (m *Moderation) listRooms(sess *session, muc string, method *listMethod) (map[string]bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	listed := map[string]bool{}
	add := func(j string) {
		room := bareOf(strings.TrimSpace(j))
		if strings.Contains(room, "@") && !strings.Contains(j, "/") && domainOf(room) == muc && !isCheckRoom(room) {
			listed[room] = true
		}
	}
	if *method != listItems {
		r, err := sess.iq(ctx, m.c.opts.Domain, muc, "set", func(b *xb) {
			b.empty("command", "xmlns", nsCommands, "node", nodeListRooms, "action", "execute")
		})
		var se *stanzaError
		switch {
		case err == nil && r.Command != nil && r.Command.Form != nil:
			// Cancel at once: the command must never complete, and an
			// open session would stay in Prosody's memory.
			if r.Command.SessionID != "" {
				_ = sess.iqNoWait(m.c.opts.Domain, muc, "set", func(b *xb) {
					b.empty("command", "xmlns", nsCommands, "node", nodeListRooms, "sessionid", r.Command.SessionID, "action", "cancel")
				})
			}
			for _, f := range r.Command.Form.Fields {
				if f.Var != "rooms" {
					continue
				}
				for _, v := range f.Values {
					add(v)
				}
				for _, o := range f.Options {
					add(o.Value)
				}
			}
			if *method == listUnknown {
				*method = listCommand
				m.log.Info("room discovery", zap.String("muc", muc), zap.String("list", method.String()))
			}
			return listed, nil
		case errors.As(err, &se) && *method == listUnknown:
			// Not Prosody, or not admin there: fall back.
			*method = listItems
			m.log.Info("room discovery", zap.String("muc", muc), zap.String("list", method.String()), zap.String("command_refused", se.Type+"/"+se.Condition))
		case err != nil:
			return nil, err
		default:
			return nil, errors.New("component: the room list command answered without a form")
		}
	}
	r, err := sess.iq(ctx, m.c.opts.Domain, muc, "get", func(b *xb) { b.empty("query", "xmlns", nsDiscoItems) })
	if err != nil {
		return nil, err
	}
	if r.DiscoItems != nil {
		for _, it := range r.DiscoItems.Items {
			add(it.JID)
		}
	}
	return listed, nil
}

// adopt enters room unless gavel governs it already or left it empty a
// moment ago.
func (m *Moderation) adopt(sess *session, room string, fresh bool) {
	m.mu.Lock()
	_, governed := m.rooms[room]
	left, dormant := m.dormant[room]
	closing := m.closing
	m.mu.Unlock()
	if governed || closing {
		return
	}
	if dormant {
		muc := m.mucs[domainOf(room)]
		if m.now().Sub(left) < dormantFor(muc.DiscoverInterval) {
			return
		}
		n, err := m.occupants(sess, room)
		if err != nil || n == 0 {
			m.mu.Lock()
			m.dormant[room] = m.now()
			m.mu.Unlock()
			return
		}
	}
	if m.deliver(room, true, event{kind: evAdopt, fresh: fresh}) {
		m.log.Debug("room discovered", zap.String("room", room), zap.Bool("fresh", fresh))
	}
}

// occupants asks room how many occupants it has (muc#roominfo).
func (m *Moderation) occupants(sess *session, room string) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := sess.iq(ctx, m.c.opts.Domain, room, "get", func(b *xb) { b.empty("query", "xmlns", nsDiscoInfo) })
	if err != nil {
		return 0, err
	}
	if r.DiscoInfo == nil || r.DiscoInfo.Form == nil {
		return 1, nil // cannot tell: look
	}
	v := r.DiscoInfo.Form.value("muc#roominfo_occupants")
	if v == "" {
		return 1, nil
	}
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil {
		return 1, nil
	}
	// gavel itself is not there: it left.
	return n, nil
}

// forgetDormant drops the dormant marks of muc's rooms that are no longer
// listed (destroyed).
func (m *Moderation) forgetDormant(muc string, listed map[string]bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for room := range m.dormant {
		if domainOf(room) == muc && !listed[room] {
			delete(m.dormant, room)
		}
	}
}

// adoptCreators runs as gavel enters a room that a client created while
// gavel watched: it returns the occupants as the policy is to see them and
// notes the creators (policy.Room.AdoptCreators).
func (r *room) adoptCreators(present []policy.Presence) []policy.Presence {
	shown, creators := r.pol.AdoptCreators(present)
	for _, c := range creators {
		r.creators[c] = false
		r.m.log.Debug("room creator found", zap.String("room", r.jid), zap.String("jid", c))
	}
	return shown
}

// holdCreatorGrants removes from acts the owner grants for creators (they
// are owners already) and notes that the policy wants them owner.
func (r *room) holdCreatorGrants(acts []policy.Action) []policy.Action {
	if len(r.creators) == 0 {
		return slices.Clone(acts)
	}
	out, wanted := policy.HoldCreatorGrants(acts, slices.Collect(maps.Keys(r.creators)))
	for _, w := range wanted {
		r.creators[w] = true
	}
	return out
}

// listCosts keeps the last few room-list round trips.
type listCosts struct {
	last [5]time.Duration
	n    int
}

// add records d and returns the median of the round trips kept.
func (c *listCosts) add(d time.Duration) time.Duration {
	c.last[c.n%len(c.last)] = d
	c.n++
	k := min(c.n, len(c.last))
	s := slices.Clone(c.last[:k])
	slices.Sort(s)
	return s[k/2]
}

// healthCheckRoom reports whether room is one of Jicofo's health-check
// rooms ("__jicofo-health-check-<random>"), which gavel leaves alone.
func healthCheckRoom(room string) bool {
	return strings.HasPrefix(room, "__jicofo-health-check")
}
