package component

import (
	"crypto/rand"
	"encoding/base64"
	"strings"
	"sync"
	"time"

	"mellium.im/xmpp/jid"
)

// iqTracker holds the IQs gavel sent and waits for, one table per session.
//
// It is correct by construction in three ways:
//   - ids are 16 random bytes, so nobody can guess one from another;
//   - a response is taken only from the JID the request went to (the
//     server stamps from), and only if it is a result or an error; anything
//     else with a known id is dropped and the waiter keeps waiting;
//   - every entry has a deadline and a timer that removes it when the
//     deadline passes, so a caller that never waits cannot leak it.
type iqTracker struct {
	domain string // the component's own domain: a response from it may arrive without from
	// onSize, if set, is told of every change of the table's size (a
	// gauge); onDropped of every response dropped for its sender.
	onSize    func(delta int)
	onDropped func(st *stanza, want string)

	mu      sync.Mutex
	pending map[string]*pendingIQ
	closed  bool
}

// pendingIQ is one request in the table.
type pendingIQ struct {
	to      string
	resp    chan *stanza  // the answer, delivered once
	expired chan struct{} // closed when the deadline passed first
	timer   *time.Timer
	// then, if set, is called instead: with the answer, in the read loop
	// (so it sees it in stream order with what follows it), or with nil at
	// the deadline or when the session ends. It must not block.
	then func(*stanza)
}

func newTracker(domain string) *iqTracker {
	return &iqTracker{domain: domain, pending: map[string]*pendingIQ{}}
}

// newID returns an unpredictable stanza id.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand never fails on Linux; it panics otherwise
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// track registers a request to to with a fresh id. The entry is removed
// when an answer arrives, when timeout passes, or by forget.
func (t *iqTracker) track(to string, timeout time.Duration) (string, *pendingIQ) {
	return t.trackThen(to, timeout, nil)
}

// trackThen is track with a callback for the answer (pendingIQ.then).
func (t *iqTracker) trackThen(to string, timeout time.Duration, then func(*stanza)) (string, *pendingIQ) {
	id := newID()
	p := &pendingIQ{to: to, resp: make(chan *stanza, 1), expired: make(chan struct{}), then: then}
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		p.end() // without t.mu: a callback may push to a room
		return id, p
	}
	t.pending[id] = p
	p.timer = time.AfterFunc(timeout, func() {
		if t.remove(id, p) {
			p.end()
		}
	})
	t.size(1)
	t.mu.Unlock()
	return id, p
}

// remove deletes the entry id if it is still p; it reports whether it did
// (exactly one of the answer, the deadline and forget wins).
func (t *iqTracker) remove(id string, p *pendingIQ) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.pending[id] != p {
		return false
	}
	delete(t.pending, id)
	p.timer.Stop()
	t.size(-1)
	return true
}

// forget drops the entry of a request nobody waits for any more.
func (t *iqTracker) forget(id string, p *pendingIQ) { t.remove(id, p) }

// deliver hands an IQ result or error to its waiter. It reports whether
// st was the answer to a tracked request. A stanza with a tracked id from
// another JID is dropped (and reported to onDropped): the entry stays.
func (t *iqTracker) deliver(st *stanza) bool {
	if st.Type != "result" && st.Type != "error" {
		return false
	}
	t.mu.Lock()
	p, ok := t.pending[st.ID]
	t.mu.Unlock()
	if !ok {
		return false
	}
	if !t.sameJID(p.to, st.From) {
		if t.onDropped != nil {
			t.onDropped(st, p.to)
		}
		return true
	}
	if t.remove(st.ID, p) {
		if p.then != nil {
			p.then(st)
		} else {
			p.resp <- st // buffered, written once
		}
	}
	return true
}

// end tells the waiter that no answer will come.
func (p *pendingIQ) end() {
	if p.then != nil {
		p.then(nil)
		return
	}
	close(p.expired)
}

// sameJID reports whether from (as received) is the JID a request was
// sent to. Both are compared normalized, bare with bare and full with
// full. The server never sends the component's own domain as from: it
// arrives empty.
func (t *iqTracker) sameJID(to, from string) bool {
	if from == "" {
		return strings.EqualFold(to, t.domain)
	}
	a, errA := jid.Parse(to)
	b, errB := jid.Parse(from)
	if errA != nil || errB != nil {
		return to == from
	}
	return a.Equal(b)
}

// Len is the number of requests waiting for an answer.
func (t *iqTracker) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.pending)
}

// close ends every wait (the session is gone) and refuses new entries.
func (t *iqTracker) close() {
	t.mu.Lock()
	t.closed = true
	ended := make([]*pendingIQ, 0, len(t.pending))
	for id, p := range t.pending {
		delete(t.pending, id)
		p.timer.Stop()
		t.size(-1)
		ended = append(ended, p)
	}
	t.mu.Unlock()
	for _, p := range ended {
		p.end() // without t.mu: a callback may push to a room
	}
}

func (t *iqTracker) size(delta int) {
	if t.onSize != nil {
		t.onSize(delta)
	}
}
