package policy

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// This file holds a small model of the server's MUC, enough to run scripted
// meetings against a Room: it applies the Room's actions, and feeds back the
// presences and affiliation changes the server would send, as the caller
// does.

var t0 = time.Date(2030, 1, 2, 10, 0, 0, 0, time.UTC)

// who maps a test name to nick and JIDs: "alice" is alice@example.test/web;
// "alice#2" a second session (resource 2, nick "alice#2"); names starting
// with "bot" live on recorder.example.test (a bot domain), "guest" ones on
// guest.example.test.
func who(name string) (nick, full, bare string) {
	user, res := name, "web"
	if i := strings.IndexByte(name, '#'); i >= 0 {
		user, res = name[:i], name[i+1:]
	}
	domain := "example.test"
	switch {
	case strings.HasPrefix(user, "bot"):
		domain = "recorder.example.test"
	case strings.HasPrefix(user, "guest"):
		domain = "guest.example.test"
	}
	return name, user + "@" + domain + "/" + res, user + "@" + domain
}

func local(bare string) string { return bare[:strings.IndexByte(bare, '@')] }

// short formats an action as the script tables write it.
func short(a Action) string {
	if a.Kind == ActionSetRole {
		return fmt.Sprintf("role %s %s %s", a.Nick, a.Role, a.Reason)
	}
	return fmt.Sprintf("aff %s %s %s", local(a.BareJID), a.Affiliation, a.Reason)
}

func shortGrant(g Grant) string {
	if g.Refused() {
		return "refused " + g.Refusal
	}
	s := fmt.Sprintf("%s/%s %s", g.Affiliation, g.Role, g.Reason)
	if g.SetAffiliation {
		s += " set"
	}
	return s
}

type simOcc struct {
	nick, full, bare string
	role             Role
	// What the model knows for its own view of auto-owner eligibility.
	bot, viewer, guest, demoted bool
	tokenExp                    time.Time
}

type simKnock struct {
	id  Identity
	at  time.Time
	aff Affiliation
}

type sim struct {
	t       testing.TB
	r       *Room
	opts    Options
	cfg     RoomConfig
	now     time.Time
	server  map[string]Affiliation // bare JID to affiliation; missing is none
	occ     []*simOcc              // join order
	knocks  map[string]simKnock    // full JID to its last granted knock
	log     []string               // actions of the current step
	steps   int                    // actions applied, to catch loops
	away    bool                   // gavel missed events; Reconcile ends it
	byGavel map[string]bool        // bare JID to whether gavel made its last change
}

func newSim(t testing.TB, room string, opts Options) *sim {
	return &sim{
		t: t, r: NewRoom(room, opts), opts: opts, cfg: opts.RoomConfig(), now: t0,
		server: map[string]Affiliation{}, knocks: map[string]simKnock{}, byGavel: map[string]bool{},
	}
}

func (s *sim) aff(bare string) Affiliation {
	if a, ok := s.server[bare]; ok {
		return a
	}
	return None
}

func (s *sim) find(nick string) (int, *simOcc) {
	for i, o := range s.occ {
		if o.nick == nick {
			return i, o
		}
	}
	return -1, nil
}

func (s *sim) byFull(full string) *simOcc {
	for _, o := range s.occ {
		if o.full == full {
			return o
		}
	}
	return nil
}

// serverRole is the role the server gives an occupant with aff.
func (s *sim) serverRole(aff Affiliation) Role {
	switch {
	case aff >= Admin:
		return Moderator
	case aff == Member:
		return Participant
	case aff == None && s.cfg.Moderated:
		return Visitor
	case aff == None:
		return Participant
	}
	return RoleNone
}

func (s *sim) presence(o *simOcc) Presence {
	return Presence{Nick: o.nick, FullJID: o.full, BareJID: o.bare, Affiliation: s.aff(o.bare), Role: o.role}
}

// apply performs actions as the server would, then delivers the resulting
// presences and changes to the Room, and so on until nothing is left.
func (s *sim) apply(acts []Action) {
	batch := slices.Clone(acts)
	for len(batch) > 0 {
		var echoes []func() []Action
		for _, a := range batch {
			if s.steps++; s.steps > 10000 {
				s.t.Fatalf("actions do not settle: %v", s.log)
			}
			s.log = append(s.log, short(a))
			switch a.Kind {
			case ActionSetAffiliation:
				s.byGavel[a.BareJID] = true
				echoes = append(echoes, s.setAff(a.BareJID, a.Affiliation)...)
			case ActionSetRole:
				_, o := s.find(a.Nick)
				if o == nil {
					s.t.Fatalf("%s for a nick not present", short(a))
				}
				echoes = append(echoes, s.setRole(o, a.Role)...)
			default:
				s.t.Fatalf("bad action %v", a)
			}
		}
		batch = nil
		for _, e := range echoes {
			batch = append(batch, e()...)
		}
	}
}

// setAff changes an affiliation on the server and returns the deliveries it
// causes.
func (s *sim) setAff(bare string, aff Affiliation) []func() []Action {
	if aff == None {
		delete(s.server, bare)
	} else {
		s.server[bare] = aff
	}
	var out []func() []Action
	present := false
	for _, o := range slices.Clone(s.occ) {
		if o.bare != bare {
			continue
		}
		present = true
		if aff == Outcast || (aff < Member && s.cfg.MembersOnly) {
			s.remove(o.nick)
			nick := o.nick
			if aff == Outcast {
				out = append(out, func() []Action { return s.r.AffiliationChanged(bare, aff, s.now) })
			}
			out = append(out, func() []Action { return s.r.Left(nick, s.now) })
			continue
		}
		o.role = s.serverRole(aff)
		p := s.presence(o)
		out = append(out, func() []Action { return s.r.Joined(p, s.now) })
	}
	if !present {
		out = append(out, func() []Action { return s.r.AffiliationChanged(bare, aff, s.now) })
	}
	return out
}

func (s *sim) setRole(o *simOcc, role Role) []func() []Action {
	if role == RoleNone {
		s.remove(o.nick)
		nick := o.nick
		return []func() []Action{func() []Action { return s.r.Left(nick, s.now) }}
	}
	o.role = role
	p := s.presence(o)
	return []func() []Action{func() []Action { return s.r.Joined(p, s.now) }}
}

func (s *sim) remove(nick string) {
	if i, _ := s.find(nick); i >= 0 {
		s.occ = slices.Delete(s.occ, i, i+1)
	}
}

// identity parses a token spec: "mod", "tok", "viewer", "guest", "modview",
// then options "exp=DURATION" (from now), "expired", "uid=ID".
func (s *sim) identity(words []string) Identity {
	var id Identity
	for _, w := range words {
		switch {
		case w == "mod":
			id.HasToken, id.Moderator = true, true
		case w == "tok":
			id.HasToken = true
		case w == "viewer":
			id.HasToken, id.Viewer = true, true
		case w == "modview":
			id.HasToken, id.Moderator, id.Viewer = true, true, true
		case w == "guest":
		case w == "expired":
			id.Expires = s.now.Add(-time.Second)
		case strings.HasPrefix(w, "exp="):
			d, err := time.ParseDuration(w[4:])
			if err != nil {
				s.t.Fatal(err)
			}
			id.Expires = s.now.Add(d)
		case strings.HasPrefix(w, "uid="):
			id.UserID = w[4:]
		default:
			s.t.Fatalf("bad identity word %q", w)
		}
	}
	return id
}

func (s *sim) knock(name string, id Identity) Grant {
	_, full, bare := who(name)
	g, acts := s.r.Knock(bare, full, id, s.now)
	switch o := s.byFull(full); {
	case g.Refused():
	case o != nil: // a refreshed token of an occupant
		o.viewer, o.guest, o.tokenExp = id.HasToken && id.Viewer, !id.HasToken, id.Expires
	default:
		s.knocks[full] = simKnock{id: id, at: s.now, aff: g.Affiliation}
	}
	s.apply(acts)
	return g
}

// refused reports whether the Room refuses an identity outright.
func (s *sim) refused(id Identity) bool {
	if !id.HasToken {
		return s.opts.Guests == GuestsDeny
	}
	return !id.Expires.IsZero() && !s.now.Before(id.Expires)
}

// join sends a join presence; it reports the server's refusal, if any.
func (s *sim) join(name string) string {
	nick, full, bare := who(name)
	aff := s.aff(bare)
	switch {
	case aff == Outcast:
		return "refused forbidden"
	case s.cfg.MembersOnly && aff < Member:
		return "refused registration-required"
	}
	if _, o := s.find(nick); o != nil {
		s.t.Fatalf("%s is already present", nick)
	}
	o := &simOcc{nick: nick, full: full, bare: bare, role: s.serverRole(aff)}
	o.bot = strings.HasPrefix(local(bare), "bot")
	if k, ok := s.knocks[full]; ok && s.now.Sub(k.at) < KnockTTL {
		o.viewer, o.guest, o.tokenExp = k.id.HasToken && k.id.Viewer, !k.id.HasToken, k.id.Expires
	} else {
		o.guest = aff < Member
	}
	delete(s.knocks, full)
	s.occ = append(s.occ, o)
	s.apply(s.r.Joined(s.presence(o), s.now))
	return ""
}

func (s *sim) leave(name string) {
	if _, o := s.find(name); o == nil {
		s.t.Fatalf("%s is not present", name)
	}
	s.remove(name)
	s.apply(s.r.Left(name, s.now))
}

// external makes someone other than gavel set bare's affiliation.
func (s *sim) external(bare string, aff Affiliation) {
	s.noteExternal(bare, aff)
	var batch []Action
	for _, e := range s.setAff(bare, aff) {
		batch = append(batch, e()...)
	}
	s.apply(batch)
}

// noteExternal updates the model's view of a change gavel did not make.
func (s *sim) noteExternal(bare string, aff Affiliation) {
	old := s.aff(bare)
	s.byGavel[bare] = false
	for _, o := range s.occ {
		if o.bare != bare {
			continue
		}
		if old == Owner && aff < Owner {
			o.demoted = true
		}
		if aff == Owner {
			o.demoted = false
		}
	}
	if aff == Outcast { // the Room drops their knocks
		for full := range s.knocks {
			if strings.HasPrefix(full, bare+"/") {
				delete(s.knocks, full)
			}
		}
	}
}

func (s *sim) wait(d time.Duration) {
	s.now = s.now.Add(d)
	s.apply(s.r.Tick(s.now))
}

func (s *sim) reconcile() {
	affs := map[string]Affiliation{}
	for b, a := range s.server {
		affs[b] = a
	}
	var present []Presence
	for _, o := range s.occ {
		present = append(present, s.presence(o))
	}
	s.away = false
	s.apply(s.r.Reconcile(affs, present, s.now))
}

// do runs one script step and returns the grant or refusal it produced.
func (s *sim) do(step string) string {
	w := strings.Fields(step)
	if len(w) == 0 {
		s.t.Fatal("empty step")
	}
	arg := func(i int) string {
		if i >= len(w) {
			s.t.Fatalf("step %q: missing argument", step)
		}
		return w[i]
	}
	switch w[0] {
	case "knock":
		return shortGrant(s.knock(arg(1), s.identity(w[2:])))
	case "join":
		return s.join(arg(1))
	case "enter": // knock, then join if granted
		g := s.knock(arg(1), s.identity(w[2:]))
		if g.Refused() {
			return shortGrant(g)
		}
		if refused := s.join(arg(1)); refused != "" {
			return refused
		}
		return shortGrant(g)
	case "leave", "kick":
		s.leave(arg(1))
	case "ban":
		_, _, bare := who(arg(1))
		s.external(bare, Outcast)
	case "set": // someone else sets an affiliation
		_, _, bare := who(arg(1))
		a, err := ParseAffiliation(arg(2))
		if err != nil {
			s.t.Fatal(err)
		}
		s.external(bare, a)
	case "wait":
		d, err := time.ParseDuration(arg(1))
		if err != nil {
			s.t.Fatal(err)
		}
		s.wait(d)
	case "identity":
		_, full, _ := who(arg(1))
		id := s.identity(w[2:])
		if o := s.byFull(full); o != nil && !s.refused(id) {
			o.viewer, o.guest, o.tokenExp = id.HasToken && id.Viewer, !id.HasToken, id.Expires
		}
		s.apply(s.r.SetIdentity(full, id, s.now))
	case "redeliver":
		_, o := s.find(arg(1))
		if o == nil {
			s.t.Fatalf("%s is not present", arg(1))
		}
		s.apply(s.r.Joined(s.presence(o), s.now))
	case "nick": // nick change: the same session under a new nick
		_, o := s.find(arg(1))
		if o == nil {
			s.t.Fatalf("%s is not present", arg(1))
		}
		o.nick = arg(2)
		s.apply(s.r.Joined(s.presence(o), s.now))
	case "reconcile":
		s.reconcile()
	case "restart": // gavel's process restarts: only the snapshot survives
		s.away = true
		snap := s.r.Snapshot()
		s.r = NewRoom(s.r.JID(), s.opts)
		s.r.Restore(snap)
	// Things that happen while gavel is away: it sees none of them.
	case "forget": // an occupant leaves
		s.away = true
		s.remove(arg(1))
	case "skip": // time passes
		s.away = true
		d, err := time.ParseDuration(arg(1))
		if err != nil {
			s.t.Fatal(err)
		}
		s.now = s.now.Add(d)
	case "quiet-set": // someone sets an affiliation
		s.away = true
		_, _, bare := who(arg(1))
		a, err := ParseAffiliation(arg(2))
		if err != nil {
			s.t.Fatal(err)
		}
		s.noteExternal(bare, a)
		s.server[bare] = a
		if a == None {
			delete(s.server, bare)
		}
	case "quiet-join": // someone joins
		s.away = true
		nick, full, bare := who(arg(1))
		s.occ = append(s.occ, &simOcc{nick: nick, full: full, bare: bare, role: s.serverRole(s.aff(bare)), guest: s.aff(bare) < Member})
	default:
		s.t.Fatalf("unknown step %q", step)
	}
	return ""
}

// step is one line of a scripted meeting: what happens, the grant or
// refusal it gives, and every action the Room asks for on the way
// (including those caused by the server's echoes).
type step struct {
	do   string
	want string
	acts []string
}

// run plays steps, checking each and the Room's invariants after it.
func (s *sim) run(steps []step) {
	s.t.Helper()
	for i, st := range steps {
		s.log = nil
		got := s.do(st.do)
		if got != st.want {
			s.t.Errorf("step %d %q: got %q, want %q", i, st.do, got, st.want)
		}
		if !slices.Equal(s.log, st.acts) && !(len(s.log) == 0 && len(st.acts) == 0) {
			s.t.Errorf("step %d %q: actions\n got %q\nwant %q", i, st.do, s.log, st.acts)
		}
		s.check()
		if s.t.Failed() {
			s.t.FailNow()
		}
	}
}

// check verifies what must hold after every step.
func (s *sim) check() {
	s.t.Helper()
	if s.away {
		return
	}
	if s.r.Len() != len(s.occ) {
		s.t.Errorf("Len() = %d, server has %d occupants", s.r.Len(), len(s.occ))
	}
	nicks, fulls := map[string]bool{}, map[string]bool{}
	i := 0
	for o := range s.r.Occupants() {
		if nicks[o.Nick] || fulls[o.FullJID] {
			s.t.Errorf("occupant %s (%s) tracked twice", o.Nick, o.FullJID)
		}
		nicks[o.Nick], fulls[o.FullJID] = true, true
		if i < len(s.occ) && (s.occ[i].nick != o.Nick || s.occ[i].full != o.FullJID) {
			s.t.Errorf("occupant %d is %s (%s), server has %s (%s)", i, o.Nick, o.FullJID, s.occ[i].nick, s.occ[i].full)
		}
		if o.Affiliation != s.aff(o.BareJID) {
			s.t.Errorf("%s: Room believes %s, server has %s", o.Nick, o.Affiliation, s.aff(o.BareJID))
		}
		i++
	}
	owners := 0
	for _, o := range s.occ {
		if !o.bot && s.aff(o.bare) == Owner {
			owners++
		}
	}
	if s.r.Owners() != owners {
		s.t.Errorf("Owners() = %d, server has %d", s.r.Owners(), owners)
	}
	if s.r.Kind() == AutoOwner && owners == 0 && !s.ownerPending() {
		for _, o := range s.occ {
			if s.eligible(o) {
				s.t.Errorf("auto-owner: no owner while %s is eligible", o.nick)
			}
		}
	}
}

// eligible is the model's own view of who auto-owner may promote.
func (s *sim) eligible(o *simOcc) bool {
	if o.bot || o.viewer || o.demoted || o.role < Participant {
		return false
	}
	if !o.tokenExp.IsZero() && !s.now.Before(o.tokenExp) {
		return false
	}
	return !o.guest || s.opts.Guests != GuestsVisitor
}

// ownerPending reports a knock granted owner that has not joined yet.
func (s *sim) ownerPending() bool {
	for full, k := range s.knocks {
		if k.aff == Owner && s.now.Sub(k.at) < KnockTTL && !strings.Contains(full, "@recorder.") && s.aff(full[:strings.IndexByte(full, '/')]) != Outcast {
			return true
		}
	}
	return false
}
