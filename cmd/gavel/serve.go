package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.uber.org/zap"

	"github.com/gavelxmpp/gavel/api"
	"github.com/gavelxmpp/gavel/auth"
	"github.com/gavelxmpp/gavel/bus"
	"github.com/gavelxmpp/gavel/commands"
	"github.com/gavelxmpp/gavel/component"
	"github.com/gavelxmpp/gavel/config"
	"github.com/gavelxmpp/gavel/policy"
	"github.com/gavelxmpp/gavel/store"
)

// serve runs gavel until ctx ends.
// serveOptions are the command-line choices that are not in the config.
type serveOptions struct {
	// InitStore takes an empty gavel.db as a new database.
	InitStore bool
	// Reload delivers SIGHUP: reload the config file (reload.go).
	Reload <-chan os.Signal
}

func serve(ctx context.Context, cfg *config.Config, log *zap.Logger, so serveOptions) error {
	prepared, err := prepare(cfg, log.Named("auth"))
	if err != nil {
		return err
	}
	lv := newLive(prepared, log)
	verifier := lv.verifier
	defer verifier.Close()

	st, pg, err := openStore(ctx, cfg, log.Named("store"), so)
	if err != nil {
		return err
	}
	defer st.Close()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics := component.NewMetrics(reg)
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "gavel_jwks_keys_skipped_total",
		Help: "JWKS keys skipped as unusable (invalid, unknown use, weak, alg mismatch), one per key per refresh.",
	}, func() float64 { return float64(verifier.SkippedJWKSKeys()) }))

	mucs := make([]component.MUC, len(cfg.MUC))
	for i, m := range cfg.MUC {
		mucs[i] = component.MUC{
			Domain: m.Domain, TrustIdentity: m.TrustIdentity, IdentityDomains: m.IdentityDomains,
			SecureDomains: m.SecureDomains, Discover: m.DiscoverRooms, DiscoverInterval: m.DiscoverInterval,
			TenantSubdomains: m.TenantSubdomains, Bridge: m.Bridge,
		}
	}
	mod, err := component.NewModeration(component.ModerationOptions{
		MUCs:     mucs,
		Verifier: verifier,
		Store:    st,
		Tenant:   lv.tenant,
		Admins:   cfg.Admins,
		Metrics:  metrics,
	})
	if err != nil {
		return err
	}
	// The command layer, shared by the HTTP API and the ad-hoc commands;
	// the component reaches the rooms for it, and with a shared store the
	// bus reaches the rooms of the other shards.
	var rooms commands.Rooms = mod
	var (
		cmdBus *bus.Bus
		comp   *component.Component
	)
	if pg != nil {
		// The bus applies events once the component is connected and has
		// its rooms back; comp is set before the bus starts.
		ready := func() bool { return comp.Connected() && mod.RoomsRestored() }
		if cmdBus, err = bus.New(bus.Options{Local: mod, Store: pg, Logger: log.Named("bus"), Ready: ready}); err != nil {
			return err
		}
		rooms = cmdBus
	}
	cmds, err := commands.New(commands.Options{
		Store:       st,
		Rooms:       rooms,
		ForgetToken: verifier.Forget,
		Logger:      log.Named("commands"),
		Metrics:     reg,
	})
	if err != nil {
		return err
	}
	cmds.UseMeetings(lv.meeting)
	lv.mod = mod
	if cmdBus != nil {
		// An unban through another gavel: lift the outcasts this gavel set
		// for that ban (the cache has dropped it before the event comes).
		cmdBus.Handle(store.EventBanRemove, func(context.Context, store.Event) error {
			cmds.LiftEnded()
			return nil
		})
	}
	mod.UseCommands(cmds)
	component.Version = buildVersion()
	comp, err = component.New(component.Options{
		Domain:          cfg.Component.JID,
		Address:         cfg.Component.Address,
		Secret:          []byte(cfg.Component.Secret.Reveal()),
		Nick:            cfg.Component.Nick,
		ReconnectMin:    cfg.Component.ReconnectMin,
		ReconnectMax:    cfg.Component.ReconnectMax,
		ShutdownTimeout: cfg.Component.ShutdownTimeout,
		Logger:          log.Named("component"),
		Moderation:      mod,
	})
	if err != nil {
		return err
	}
	log.Info("gavel starting", zap.String("version", buildVersion()), zap.String("jid", cfg.Component.JID),
		zap.String("server", cfg.Component.Address), zap.Int("muc_domains", len(cfg.MUC)), zap.String("data_dir", cfg.DataDir), zap.Bool("postgres", pg != nil))

	// Bind before connecting: a taken port or an unusable address stops
	// gavel at start, rather than leaving it running without health checks
	// or the API.
	var httpLn net.Listener
	if cfg.HTTP.Listen != "" {
		if httpLn, err = listenHTTP(cfg.HTTP.Listen); err != nil {
			return err
		}
	}

	// Whichever of the two stops first with an error stops the other: gavel
	// does not run on without its API, nor the API without XMPP (and a
	// component that refuses to run, component.ErrDuplicateInstance, ends
	// the process with exit code 1).
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if cmdBus != nil {
		cmdBus.Start(ctx)
	}
	// Lifts the outcasts of bans that ended (unban, expiry, while away).
	lifter := make(chan struct{})
	go func() { cmds.Run(ctx); close(lifter) }()
	defer func() { cancel(); <-lifter }()
	errc := make(chan error, 2)
	go func() {
		err := comp.Run(ctx)
		if err != nil {
			cancel()
		}
		errc <- err
	}()
	running := 1
	if httpLn != nil {
		running++
		go func() {
			err := serveHTTP(ctx, cfg, log.Named("http"), cmds, readiness(comp, mod, st), reg, httpLn,
				consoleSources{rooms: mod, health: consoleHealth(cfg, comp, st)}, lv.useAPI)
			if err != nil {
				cancel()
			}
			errc <- err
		}()
	}
	var first error
	for running > 0 {
		select {
		case <-so.Reload:
			lv.reload()
		case err := <-errc:
			running--
			if err != nil && first == nil {
				first = err
				cancel()
			}
		}
	}
	return first
}

// buildTenants maps each configured tenant onto the component's settings.
func buildTenants(cfg *config.Config) (map[string]component.Tenant, error) {
	out := map[string]component.Tenant{}
	for name, t := range cfg.Tenants {
		kind, err := policy.ParseKind(t.Policy)
		if err != nil {
			return nil, fmt.Errorf("config: tenants.%s.policy: %w", name, err)
		}
		guests, err := policy.ParseGuests(t.Guests)
		if err != nil {
			return nil, fmt.Errorf("config: tenants.%s.guests: %w", name, err)
		}
		holders, err := policy.ParseAffiliation(t.TokenHolders)
		if err != nil || (holders != policy.None && holders != policy.Member) {
			return nil, fmt.Errorf("config: tenants.%s.token_holders: must be none or member, got %q", name, t.TokenHolders)
		}
		out[name] = component.Tenant{
			Policy: policy.Options{
				Kind: kind, Guests: guests,
				ReassertOwners: t.ReassertOwners, ClearOnLeave: t.ClearOnLeave, Viewers: t.Viewers,
				TokenHolders: holders, BotDomains: t.BotDomains, ModeratedRooms: t.ModeratedRooms,
				WaitForHost: t.WaitForHost, HostOpens: t.HostOpens, EndWithoutHost: t.EndWithoutHost,
				OwnerGrace: t.OwnerGrace, KeepInterimOwner: t.KeepInterimOwner, MaxParticipants: t.MaxParticipants,
				HoldTimeout: t.LockHoldTimeout, MaxHeld: t.LockMaxHeld,
			},
			Name:                  name,
			TopLevelModerator:     t.TopLevelModerator,
			KnocksPerMinute:       t.KnocksPerMinute,
			KnocksPerMinutePerJID: t.KnocksPerMinutePerJID,
			ClearGrace:            t.ClearOnLeaveGrace,
		}
	}
	return out, nil
}

// buildVerifier maps each tenant's token section onto auth settings.
func buildVerifier(cfg *config.Config, log *zap.Logger) (*auth.Verifier, error) {
	tenants := map[string]auth.Settings{}
	for name, t := range cfg.Tenants {
		s, err := authSettings(t.Token, fmt.Sprintf("tenants.%s.token", name))
		if err != nil {
			return nil, err
		}
		if name == config.DefaultTenant {
			name = ""
		}
		tenants[name] = s
	}
	v, err := auth.New(tenants, auth.Options{Logger: log})
	if err != nil {
		// Name the config key: auth says `tenant "acme": ...`.
		msg := strings.TrimPrefix(err.Error(), "auth: ")
		if rest, ok := strings.CutPrefix(msg, "tenant \""); ok {
			if name, detail, ok := strings.Cut(rest, "\": "); ok {
				msg = "tenants." + name + ".token: " + detail
			}
		}
		return nil, fmt.Errorf("config: %s: %s", cfg.Path, msg)
	}
	return v, nil
}

func authSettings(t config.Token, path string) (auth.Settings, error) {
	s := auth.DefaultSettings(t.AppID)
	for _, sec := range t.Secrets {
		s.Secrets = append(s.Secrets, []byte(sec.Reveal()))
	}
	for i, f := range t.PublicKeys {
		k, err := auth.LoadPublicKeyFile(f)
		if err != nil {
			return s, fmt.Errorf("config: %s.public_keys[%d]: %v", path, i, strings.TrimPrefix(err.Error(), "auth: "))
		}
		s.PublicKeys = append(s.PublicKeys, k)
	}
	s.Algorithms = t.Algorithms
	s.KeyServer = t.KeyServer
	s.JWKSURL = t.JWKSURL
	if len(t.Issuers) > 0 {
		s.Issuers = t.Issuers
	}
	if len(t.Audiences) > 0 {
		s.Audiences = t.Audiences
	}
	s.RequireExp = t.RequireExp
	s.Leeway = t.Leeway
	s.RequireRoom = t.RequireRoom
	s.AllowWildcardRoom = t.AllowWildcardRoom
	s.AllowRegexRoom = t.AllowRegexRoom
	s.AllowWildcardSub = t.AllowWildcardSub
	s.MaxTokenBytes = t.MaxTokenBytes
	s.MUCDomainPrefix = t.MUCDomainPrefix
	return s, nil
}

// consoleHealth is the console's health view of the XMPP connection and
// the store.
func consoleHealth(cfg *config.Config, comp *component.Component, st store.Store) func() api.Health {
	return func() api.Health {
		h := api.Health{Servers: []api.ServerHealth{{Address: cfg.Component.Address, Connected: comp.Connected(), Reconnects: comp.Reconnects()}}}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := st.Check(ctx); err != nil {
			h.Store = err.Error()
		}
		return h
	}
}

// readiness is /readyz: connected to the XMPP server, a server that
// passed the connect-time check (gavel is owner where the MUC's settings
// need it), and a store that takes writes (a full or read-only disk fails
// it until it recovers).
func readiness(comp *component.Component, mod *component.Moderation, st store.Store) func() error {
	return func() error {
		if !comp.Connected() {
			return component.ErrNotConnected
		}
		if err := mod.ServerCheck(); err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		return st.Check(ctx)
	}
}
