package component

import (
	"context"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/gavelxmpp/gavel/policy"
	"github.com/gavelxmpp/gavel/store"
)

// This file holds how gavel admits joiners that never knock (Jitsi Meet
// clients): by the <identity/> the server stamps into their presence
// (Jitsi's mod_presence_identity), by a secure domain (Jicofo's XMPP
// authentication), or as guests; and how it refuses to trust identities
// where the server cannot guarantee them.

// identityTrust is what the connect-time check found for one MUC.
type identityTrust struct {
	ready   bool            // the check has finished for this session
	domains map[string]bool // identity domains that answered as Prosody
}

// identityTrusted reports whether the check for muc has finished and, if
// so, whether an identity from a joiner of domain is to be believed.
func (m *Moderation) identityTrusted(muc, domain string) (ready, trusted bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t := m.trust[muc]
	if t == nil || !t.ready {
		return false, false
	}
	return true, t.domains[strings.ToLower(domain)]
}

// checkIdentity runs once per session for a MUC that trusts identities:
// each identity domain must answer as a Prosody server, the only server
// with mod_presence_identity. A domain that does not is refused: its
// joiners' identities are ignored, and the refusal is logged as an error.
// Until the check ends, identities wait (joiners are admitted when it does).
func (m *Moderation) checkIdentity(sess *session, muc MUC) {
	defer m.loops.Done()
	verified := map[string]bool{}
	for _, d := range muc.IdentityDomains {
		d = strings.ToLower(d)
		software, ok, why := m.probeServer(sess, d)
		if sess.closed.Load() {
			return
		}
		if ok {
			verified[d] = true
			m.log.Info("trusting <identity/> in presence", zap.String("muc", muc.Domain), zap.String("domain", d), zap.String("server", software))
			continue
		}
		m.log.Error("trust_identity refused: identities from this domain are ignored", zap.String("muc", muc.Domain), zap.String("domain", d), zap.String("reason", why))
	}
	m.mu.Lock()
	if m.sess != sess {
		m.mu.Unlock()
		return
	}
	m.trust[muc.Domain] = &identityTrust{ready: true, domains: verified}
	var rooms []*room
	for _, r := range m.rooms {
		if r.ar.Domain == muc.Domain {
			rooms = append(rooms, r)
		}
	}
	m.mu.Unlock()
	for _, r := range rooms {
		r.push(event{kind: evIdentityReady})
	}
}

// probeServer asks domain who serves it (disco#info, then
// jabber:iq:version). It reports the software and whether it is Prosody.
func (m *Moderation) probeServer(sess *session, domain string) (software string, prosody bool, why string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := sess.iq(ctx, m.c.opts.Domain, domain, "get", func(b *xb) { b.empty("query", "xmlns", nsDiscoInfo) })
	if err != nil {
		return "", false, "no answer to disco#info (" + err.Error() + "): it must be a VirtualHost of the server gavel is connected to"
	}
	server := false
	if r.DiscoInfo != nil {
		for _, id := range r.DiscoInfo.Identities {
			if id.Category != "server" {
				continue
			}
			server = true
			software = id.Name
			switch n := strings.ToLower(id.Name); {
			case strings.Contains(n, "prosody"):
				return id.Name, true, ""
			case strings.Contains(n, "ejabberd"):
				return id.Name, false, "ejabberd has no mod_presence_identity: nothing removes identities that clients forge"
			}
		}
	}
	if !server {
		return "", false, "it answers disco#info without a server identity: it is not a VirtualHost (a component or a MUC?)"
	}
	// A renamed server identity: the software version may still tell.
	v, err := sess.iq(ctx, m.c.opts.Domain, domain, "get", func(b *xb) { b.empty("query", "xmlns", nsVersion) })
	if err == nil && v.Version != nil && strings.Contains(strings.ToLower(v.Version.Name), "prosody") {
		return v.Version.Name, true, ""
	}
	return software, false, "cannot tell it is Prosody (server identity " + quote(software) + ", no jabber:iq:version): keep Prosody's default server name or load mod_version there"
}

func quote(s string) string { return "'" + s + "'" }

// identityOfElement turns a stamped <identity/> into what policy decides
// on, as Jitsi's token plugins read context.user.
func identityOfElement(el *identityEl) policy.Identity {
	u := el.User
	aff := strings.ToLower(strings.TrimSpace(u.Affiliation))
	return policy.Identity{
		HasToken:  true,
		UserID:    strings.TrimSpace(u.ID),
		Moderator: strings.EqualFold(strings.TrimSpace(u.Moderator), "true") || aff == "owner" || aff == "moderator" || aff == "teacher",
		Viewer:    strings.EqualFold(strings.TrimSpace(u.Role), "viewer"),
	}
}

// noteIdentity keeps the identity of an occupant's latest presence.
func (r *room) noteIdentity(full string, el *identityEl) {
	if el == nil {
		delete(r.idents, full)
		return
	}
	r.idents[full] = el
}

// admitAll admits every present occupant (after a join or the identity
// check).
func (r *room) admitAll(now time.Time) {
	var fulls []string
	for o := range r.pol.Occupants() {
		fulls = append(fulls, o.FullJID)
	}
	var acts []policy.Action
	for _, f := range fulls {
		acts = append(acts, r.admit(f, now)...)
	}
	r.perform(acts)
}

// resolve says what the server says of the occupant full (of bare): a
// trusted identity, a secure domain, or nothing (nil: a guest). ready is
// false while the identity check of a MUC that trusts identities runs.
func (r *room) resolve(full, bare string) (id *policy.Identity, key string, ready bool) {
	domain := domainOf(bare)
	key = "guest"
	if r.muc.TrustIdentity {
		ok, trusted := r.m.identityTrusted(r.muc.Domain, domain)
		if !ok {
			return nil, "", false
		}
		if el := r.idents[full]; el != nil {
			if trusted {
				x := identityOfElement(el)
				return &x, "identity|" + x.UserID + "|" + boolValue(x.Moderator) + boolValue(x.Viewer), true
			}
			if !r.warnedIdentity {
				r.warnedIdentity = true
				r.m.log.Warn("ignoring <identity/> from a domain not trusted to stamp it", zap.String("room", r.jid), zap.String("from", full))
			}
		}
	}
	if containsFold(r.muc.SecureDomains, domain) {
		return &policy.Identity{HasToken: true, Moderator: true}, "secure-domain", true
	}
	return nil, key, true
}

// deniedGuest reports whether the occupant full, which did not knock, is
// a guest the tenant refuses (policy.Room.DeniesGuest). Such a guest cannot
// enter a members-only room; gavel removes it from an open one (a room a
// client created, or one that must stay open for clients that never knock).
func (r *room) deniedGuest(full, bare string) bool {
	id, _, ready := r.resolve(full, bare)
	return ready && r.pol.DeniesGuest(policy.Joiner{Knocked: r.knocked(full), Identified: id != nil, JoinAffiliation: r.joinAff[full]})
}

func (r *room) knocked(full string) bool {
	_, ok := r.knocks[full]
	return ok
}

// admit returns the actions for an occupant that did not knock, from what
// the server says of it (resolve). It checks bans (the knock does that for
// knockers), settles a room creator's ownership in a room gavel adopted,
// and removes guests the tenant denies. It acts once per occupant and
// identity.
func (r *room) admit(full string, now time.Time) []policy.Action {
	var o policy.Occupant
	found := false
	for x := range r.pol.Occupants() {
		if x.FullJID == full {
			o, found = x, true
			break
		}
	}
	if !found || o.Bot || r.knocked(full) {
		return nil
	}
	id, key, ready := r.resolve(full, o.BareJID)
	if !ready || r.admitted[full] == key {
		return nil // admitted when the identity check ends; or done already
	}
	first := r.admitted[full] == ""
	r.admitted[full] = key

	userID := ""
	if id != nil {
		userID = id.UserID
	}
	if ban, banned := r.m.bannedJoiner(r.ar.Tenant, o.BareJID, userID); banned {
		r.m.log.Info("banned joiner removed", zap.String("room", r.jid), zap.String("jid", full), zap.String("ban", string(ban.Kind)))
		delete(r.creators, o.BareJID)
		return r.pol.Ban(nil, o.BareJID)
	}
	if first && r.deniedGuest(full, o.BareJID) {
		_, creator := r.creators[o.BareJID]
		delete(r.creators, o.BareJID)
		r.m.log.Debug("guest removed", zap.String("room", r.jid), zap.String("nick", o.Nick))
		return r.pol.KickGuest(o.Nick, o.BareJID, creator)
	}
	var acts []policy.Action
	if id != nil {
		acts = append(acts, r.pol.SetIdentity(full, *id, now)...)
	}
	return r.settleCreator(o.BareJID, acts)
}

// bannedJoiner checks a joiner that never knocked against the bans the
// server's word allows: its bare JID, and the user id of its identity.
func (m *Moderation) bannedJoiner(tenant, bare, userID string) (store.Ban, bool) {
	now := m.now()
	if b, ok := m.opts.Store.Banned(tenant, store.KindJID, bare, now); ok {
		return b, true
	}
	if userID != "" {
		return m.opts.Store.Banned(tenant, store.KindUser, userID, now)
	}
	return store.Ban{}, false
}

// settleCreator settles, once, the ownership a client got by creating a
// room gavel adopted (policy.SettleCreator).
func (r *room) settleCreator(bare string, acts []policy.Action) []policy.Action {
	wants, ok := r.creators[bare]
	if !ok {
		return acts
	}
	delete(r.creators, bare)
	out, withdrawn := policy.SettleCreator(bare, wants, acts)
	if withdrawn {
		r.m.log.Debug("room creator's ownership withdrawn", zap.String("room", r.jid), zap.String("jid", bare))
	}
	return out
}
