package main

import (
	"context"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"

	"go.uber.org/zap"

	"github.com/gavelxmpp/gavel/api"
	"github.com/gavelxmpp/gavel/auth"
	"github.com/gavelxmpp/gavel/commands"
	"github.com/gavelxmpp/gavel/component"
	"github.com/gavelxmpp/gavel/config"
)

// This file holds the config reload (SIGHUP), blackbox_exporter's habit:
// the file is read and everything gavel builds from it is built into new
// values; only when all of that succeeds are they swapped in. An invalid
// file is refused with the messages of -check and the running config
// stays. What a reload changes: tenants (policy of new rooms, guests, knock
// limits, token rules and keys, meetings), the admins of ad-hoc commands
// and the admin API's keys. The rest needs a restart and is reported.

// settings are what gavel builds from a config, beyond the config itself:
// -check, the start and a reload build them the same way.
type settings struct {
	cfg       *config.Config
	verifier  *auth.Verifier
	tenants   map[string]component.Tenant
	meetings  func(string) (commands.MeetingSettings, bool)
	adminKeys api.AdminKeys
}

// prepare builds the settings of cfg; its errors are those -check prints.
// On success the caller owns (and closes) the verifier.
func prepare(cfg *config.Config, log *zap.Logger) (*settings, error) {
	s := &settings{cfg: cfg}
	var err error
	if s.tenants, err = buildTenants(cfg); err != nil {
		return nil, err
	}
	if s.meetings, err = meetingSettings(cfg); err != nil {
		return nil, err
	}
	if s.adminKeys, err = adminKeys(cfg.HTTP.AdminToken); err != nil {
		return nil, err
	}
	if s.verifier, err = buildVerifier(cfg, log); err != nil {
		return nil, err
	}
	return s, nil
}

// live holds the settings a reload swaps, for the parts of gavel that read
// them.
type live struct {
	path string
	log  *zap.Logger

	mu       sync.Mutex // one reload at a time; guards cfg, api, reloaded
	cfg      *config.Config
	reloaded bool        // a reload swapped in a new config
	api      *api.Server // nil until the HTTP server runs (or without one)
	mod      *component.Moderation
	verifier *swapVerifier
	tenants  atomic.Pointer[map[string]component.Tenant]
	meetings atomic.Pointer[func(string) (commands.MeetingSettings, bool)]
}

func newLive(s *settings, log *zap.Logger) *live {
	l := &live{path: s.cfg.Path, log: log, cfg: s.cfg, verifier: newSwapVerifier(s.verifier)}
	l.tenants.Store(&s.tenants)
	l.meetings.Store(&s.meetings)
	return l
}

// tenant is component.ModerationOptions.Tenant.
func (l *live) tenant(name string) component.Tenant {
	ts := *l.tenants.Load()
	if t, ok := ts[name]; ok {
		return t
	}
	return ts[config.DefaultTenant]
}

// meeting is the lookup for commands.Service.UseMeetings.
func (l *live) meeting(tenant string) (commands.MeetingSettings, bool) {
	return (*l.meetings.Load())(tenant)
}

// useAPI hands the running API server to reloads. A reload that came
// before it (the server was built from the file read at the start) is
// applied to it now.
func (l *live) useAPI(srv *api.Server) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.api = srv
	if l.reloaded {
		keys, err := adminKeys(l.cfg.HTTP.AdminToken)
		if err == nil {
			err = srv.SetKeys(keys)
		}
		if err != nil {
			l.log.Error("config reload: the admin API keeps the keys it started with", zap.Error(err))
		}
	}
}

// reload reads the config file again and swaps in what may change. It
// reports whether the new config is in use.
func (l *live) reload() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.log.Info("reloading the config", zap.String("file", l.path))
	cfg, err := config.Load(l.path)
	var s *settings
	if err == nil {
		s, err = prepare(cfg, l.log.Named("auth"))
	}
	if err != nil {
		// One line per problem, as -check prints them.
		for _, line := range strings.Split(err.Error(), "\n") {
			l.log.Error("config reload refused: the running config stays", zap.String("error", line))
		}
		return false
	}
	if l.api != nil {
		if err := l.api.SetKeys(s.adminKeys); err != nil {
			s.verifier.Close()
			l.log.Error("config reload refused: the running config stays", zap.String("error", "config: "+l.path+": http.admin_token: "+strings.TrimPrefix(err.Error(), "api: ")))
			return false
		}
	}
	if err := l.mod.SetAdmins(cfg.Admins); err != nil {
		// The config checked them: not reached in practice.
		l.log.Error("config reload: admins unchanged", zap.Error(err))
	}
	l.tenants.Store(&s.tenants)
	l.meetings.Store(&s.meetings)
	l.verifier.swap(s.verifier)
	for _, key := range restartKeys(l.cfg, cfg) {
		l.log.Warn("config reload: this change needs a restart; the running value stays", zap.String("key", key))
	}
	// The values that did not change on a reload stay those of the file
	// read at the start.
	kept := *l.cfg
	kept.Tenants, kept.Admins, kept.HTTP.AdminToken = cfg.Tenants, cfg.Admins, cfg.HTTP.AdminToken
	l.cfg = &kept
	l.reloaded = true
	l.log.Info("config reloaded", zap.String("file", l.path), zap.Int("tenants", len(cfg.Tenants)), zap.Int("admins", len(cfg.Admins)))
	return true
}

// restartKeys names the keys that differ between old and new and that a
// reload does not change: everything but tenants, admins and
// http.admin_token.
func restartKeys(old, new *config.Config) []string {
	var keys []string
	ov, nv := reflect.ValueOf(*old), reflect.ValueOf(*new)
	t := ov.Type()
	for i := 0; i < t.NumField(); i++ {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		switch name {
		case "", "-", "tenants", "admins":
			continue
		}
		of, nf := ov.Field(i), nv.Field(i)
		if of.Kind() != reflect.Struct {
			if !reflect.DeepEqual(of.Interface(), nf.Interface()) {
				keys = append(keys, name)
			}
			continue
		}
		for j := 0; j < of.NumField(); j++ {
			sub, _, _ := strings.Cut(of.Type().Field(j).Tag.Get("yaml"), ",")
			key := name + "." + sub
			if sub == "-" || sub == "" {
				key = name // resolved from another key (a secret, a DSN)
			}
			if key == "http.admin_token" {
				continue
			}
			if !reflect.DeepEqual(of.Field(j).Interface(), nf.Field(j).Interface()) && (len(keys) == 0 || keys[len(keys)-1] != key) {
				keys = append(keys, key)
			}
		}
	}
	return keys
}

// swapVerifier is the token verifier a reload replaces: Verify uses the
// current one; a replaced one is closed once the verifications it started
// have ended.
type swapVerifier struct {
	mu      sync.RWMutex
	cur     *verifierUse
	skipped atomic.Int64 // JWKS keys skipped by the replaced verifiers
}

type verifierUse struct {
	v     *auth.Verifier
	inUse sync.WaitGroup
}

func newSwapVerifier(v *auth.Verifier) *swapVerifier {
	return &swapVerifier{cur: &verifierUse{v: v}}
}

func (s *swapVerifier) acquire() *verifierUse {
	s.mu.RLock()
	defer s.mu.RUnlock()
	u := s.cur
	u.inUse.Add(1)
	return u
}

// Verify is auth.Verifier.Verify with the current verifier.
func (s *swapVerifier) Verify(ctx context.Context, token string, room auth.Room) (*auth.Claims, error) {
	u := s.acquire()
	defer u.inUse.Done()
	return u.v.Verify(ctx, token, room)
}

// Forget is auth.Verifier.Forget on the current verifier (a replaced one
// no longer answers).
func (s *swapVerifier) Forget(tokenHash [32]byte) {
	u := s.acquire()
	defer u.inUse.Done()
	u.v.Forget(tokenHash)
}

// SkippedJWKSKeys counts over every verifier gavel used.
func (s *swapVerifier) SkippedJWKSKeys() int64 {
	u := s.acquire()
	defer u.inUse.Done()
	return s.skipped.Load() + u.v.SkippedJWKSKeys()
}

// swap makes v current and closes the previous verifier in the
// background, once its verifications have ended.
func (s *swapVerifier) swap(v *auth.Verifier) {
	s.mu.Lock()
	old := s.cur
	s.cur = &verifierUse{v: v}
	s.skipped.Add(old.v.SkippedJWKSKeys())
	s.mu.Unlock()
	go func() {
		old.inUse.Wait()
		old.v.Close()
	}()
}

// Close closes the current verifier.
func (s *swapVerifier) Close() {
	s.mu.Lock()
	u := s.cur
	s.mu.Unlock()
	u.inUse.Wait()
	u.v.Close()
}
