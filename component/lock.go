package component

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"strings"

	"go.uber.org/zap"

	"github.com/gavelxmpp/gavel/commands"
	"github.com/gavelxmpp/gavel/policy"
)

// This file executes a meeting's run-time options and its lock
// (policy/lock.go). A knock that a locked room holds is not answered: it
// waits in room.holds, and every host in the room gets a message from
// gavel with a data form (XEP-0004) naming the knocker and the request.
// A host answers with the ad-hoc command "admit" (room, request,
// decision), or by sending the form back submitted in a message; the knock is then decided as usual, or refused "locked". The
// policy refuses the held knocks whose time is over, or that no host is
// left to answer. Bridge joins are not held (the module cannot wait that
// long): a locked room lets in only its hosts.

// NSKnockRequest is the FORM_TYPE of the hosts' form.
const NSKnockRequest = NSKnock + "#request"

var _ commands.RoomOptionSetter = (*Moderation)(nil)

// SetRoomOptions applies a meeting's options or its lock to the room: on
// its worker, which performs what a policy switch changes and decides the
// knocks an unlock releases; or, while nobody is in the room, to its parked
// settings (durable), which its first knock takes up.
func (m *Moderation) SetRoomOptions(ctx context.Context, roomJID string, o commands.RoomOptions) error {
	var kind policy.Kind
	if o.Policy != "" {
		k, err := policy.ParseKind(o.Policy)
		if err != nil {
			return commands.ErrInvalid
		}
		kind = k
	}
	apply := func(p *policy.Room) ([]policy.Action, []policy.HeldKnock) {
		var acts []policy.Action
		if o.Policy != "" {
			acts = p.SetKind(kind, m.now())
		}
		if o.SetMax {
			p.SetMaxParticipants(o.MaxParticipants)
		}
		if !o.KeepUntil.IsZero() {
			p.KeepSettingsUntil(o.KeepUntil)
		}
		var released []policy.HeldKnock
		if o.Locked != nil {
			released = p.SetLocked(*o.Locked)
		}
		return acts, released
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	for range 3 {
		done := make(chan error, 1)
		ev := event{kind: evCommand, done: done, cmd: func(r *room) error {
			acts, released := apply(r.pol)
			var err error
			if r.state == joined && r.sess != nil {
				if errs := r.perform(acts); len(errs) > 0 {
					err = errs[0].err
				}
			}
			r.release(released)
			if r.state == joined {
				r.save()
			}
			return err
		}}
		if m.deliver(roomJID, false, ev) {
			select {
			case err := <-done:
				return unavailable(err)
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if ok, err := m.withParked(roomJID, func(p *policy.Room) error { apply(p); return nil }); ok {
			return unavailable(err)
		}
	}
	return commands.ErrUnavailable
}

// holdKnock holds k when the room is locked and k is not a host's, asks
// the hosts, and reports whether it took k (held or refused).
func (r *room) holdKnock(k *knockReq) bool {
	if k.admitted || !r.pol.Locked() {
		return false
	}
	if k.bridge {
		// The module waits seconds, not minutes: a bridge join cannot be
		// held for a host's answer. Hosts pass; everyone else is refused.
		if r.pol.LockAdmits(k.bare, k.id, r.m.now()) {
			return false
		}
		r.m.refuse(k.sess, k.st, knockLocked, "the meeting is locked: only its hosts may join now", k.started)
		return true
	}
	var b [12]byte
	_, _ = rand.Read(b[:])
	h := policy.HeldKnock{ID: hex.EncodeToString(b[:]), BareJID: k.bare, FullJID: k.full, UserID: k.id.UserID}
	if k.claims != nil {
		h.Name = k.claims.Name
	}
	v, replaced := r.pol.Hold(h, k.id, r.m.now())
	for _, old := range replaced {
		if ok := r.holds[old.ID]; ok != nil {
			delete(r.holds, old.ID)
			r.m.refuse(ok.sess, ok.st, knockLocked, "the meeting is locked: a newer knock replaced this one", ok.started)
		}
	}
	switch v {
	case policy.LockPass:
		return false
	case policy.LockNoHost:
		r.m.refuse(k.sess, k.st, knockLocked, "the meeting is locked and no host is here to admit you", k.started)
		return true
	case policy.LockBusy:
		r.m.refuse(k.sess, k.st, knockRoomBusy, "the meeting is locked and too many knocks wait for a host: try again in a moment", k.started)
		return true
	}
	if r.holds == nil {
		r.holds = map[string]*knockReq{}
	}
	r.holds[h.ID] = k
	r.askHosts(h)
	r.m.log.Debug("knock held by the lock", zap.String("room", r.jid), zap.String("from", k.full), zap.String("request", h.ID))
	return true
}

// askHosts sends each host in the room the form for held knock h.
func (r *room) askHosts(h policy.HeldKnock) {
	if r.sess == nil {
		return
	}
	m := r.m
	nick := h.Name
	if nick == "" {
		nick = h.BareJID
	}
	var b xb
	for o := range r.pol.Occupants() {
		if o.Bot || o.Affiliation != policy.Owner && o.Role != policy.Moderator {
			continue
		}
		b.open("message", "from", m.c.opts.Domain, "to", o.FullJID, "type", "normal", "id", "knock-"+h.ID)
		b.elem("body", fmt.Sprintf("%s (%s) asks to join the locked meeting %s. Answer the form, or run the command %q on %s with request %s.",
			nick, h.FullJID, r.jid, "admit", m.c.opts.Domain, h.ID))
		b.open("x", "xmlns", nsData, "type", "form").elem("title", "Admit "+nick+"?")
		formValue(&b, "FORM_TYPE", "hidden", NSKnockRequest)
		formValue(&b, "room", "hidden", r.jid)
		formValue(&b, "request", "hidden", h.ID)
		formValue(&b, "nick", "text-single", nick)
		formValue(&b, "jid", "jid-single", h.FullJID)
		formValue(&b, "user-id", "text-single", h.UserID)
		b.open("field", "var", "decision", "type", "list-single", "label", "Admit or deny")
		for _, d := range []string{"admit", "deny"} {
			b.open("option", "label", d).elem("value", d).close("option")
		}
		b.close("field").close("x").close("message")
	}
	if err := r.sess.write(b.Bytes()); err != nil {
		m.log.Debug("could not ask the hosts", zap.String("room", r.jid), zap.Error(err))
	}
}

func formValue(b *xb, name, typ, value string) {
	b.open("field", "var", name, "type", typ).elem("value", value).close("field")
}

// release decides the held knocks an unlock released, as admitted.
func (r *room) release(hs []policy.HeldKnock) {
	for _, h := range hs {
		if k := r.holds[h.ID]; k != nil {
			delete(r.holds, h.ID)
			k.admitted = true
			r.onKnock(k)
		}
	}
}

// expireHolds refuses the held knocks the policy gives up on.
func (r *room) expireHolds() {
	if len(r.holds) == 0 {
		return
	}
	for _, h := range r.pol.ExpireHolds(r.m.now()) {
		if k := r.holds[h.ID]; k != nil {
			delete(r.holds, h.ID)
			r.m.refuse(k.sess, k.st, knockLocked, "the meeting is locked: no host admitted you in time", k.started)
		}
	}
}

// dropHolds refuses (with o) or, without a stream to answer on, forgets
// every held knock.
func (r *room) dropHolds(o knockOutcome, answer bool) {
	r.pol.DropHolds()
	for id, k := range r.holds {
		delete(r.holds, id)
		if answer {
			r.m.refuse(k.sess, k.st, o, "", k.started)
		}
	}
}

// Errors of a host's answer.
var (
	errNoHeld  = errors.New("no such request waits in this room: it was answered, or timed out")
	errNotHost = errors.New("only a host in the room may admit")
)

// answerHeld is a host's answer to held knock id in roomJID: from is the
// host's JID.
func (m *Moderation) answerHeld(ctx context.Context, from, roomJID, id string, admit bool) error {
	done := make(chan error, 1)
	ev := event{kind: evCommand, done: done, cmd: func(r *room) error {
		h, err := r.pol.AnswerHeld(id, bareOf(from))
		switch {
		case errors.Is(err, policy.ErrNoHeldKnock):
			return errNoHeld
		case errors.Is(err, policy.ErrNotHost):
			return errNotHost
		case err != nil:
			return err
		}
		k := r.holds[h.ID]
		delete(r.holds, h.ID)
		if k == nil {
			return errNoHeld
		}
		m.log.Info("held knock answered", zap.String("room", r.jid), zap.String("from", k.full), zap.String("by", bareOf(from)), zap.Bool("admit", admit))
		if !admit {
			m.refuse(k.sess, k.st, knockLocked, "the meeting is locked: a host did not admit you", k.started)
			return nil
		}
		k.admitted = true
		r.onKnock(k)
		return nil
	}}
	if !m.deliver(roomJID, false, ev) {
		return errNoHeld
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

var nameDataForm = xml.Name{Space: nsData, Local: "x"}

// maxFormAnswers bounds the hosts' answers by message in flight: each
// waits for its room's worker, and a flood of forms must not queue
// without bound.
const maxFormAnswers = 32

// formAnswer takes a host's answer to a held knock as the form of gavel's
// message submitted back in a message (XEP-0004), as the ad-hoc command
// "admit" takes it. gavel tells the host the outcome in a message. Forms
// of another kind, and answers beyond maxFormAnswers in flight, are
// dropped.
func (m *Moderation) formAnswer(sess *session, st *stanza) {
	f := st.DataForm
	if f == nil || f.Type != "submit" || f.value("FORM_TYPE") != NSKnockRequest || !strings.Contains(st.From, "@") {
		return
	}
	select {
	case m.formSlots <- struct{}{}:
	default:
		m.log.Debug("form answer dropped: too many in flight", zap.String("from", st.From))
		return
	}
	go func() {
		defer func() { <-m.formSlots }()
		ctx, cancel := context.WithTimeout(context.Background(), m.opts.IQTimeout)
		defer cancel()
		note, err := m.runAdmit(ctx, st.From, f)
		body := "The request was " + note + "."
		if err != nil {
			body = "Your answer was not taken: " + err.Error()
		}
		var b xb
		b.open("message", "from", st.To, "to", st.From, "type", "normal")
		b.elem("body", body)
		b.close("message")
		_ = sess.write(b.Bytes())
	}()
}

// runAdmit is the ad-hoc command "admit", which hosts run (not only
// admins): the room's policy checks that from is a host there.
func (m *Moderation) runAdmit(ctx context.Context, from string, f *dataForm) (string, error) {
	admit := true
	switch f.value("decision") {
	case "", "admit":
	case "deny":
		admit = false
	default:
		return "", fmt.Errorf("%w: decision must be admit or deny", commands.ErrInvalid)
	}
	if err := m.answerHeld(ctx, from, f.value("room"), f.value("request"), admit); err != nil {
		return "", err
	}
	if admit {
		return "admitted", nil
	}
	return "denied", nil
}
