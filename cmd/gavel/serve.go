package main

import (
	"context"
	"fmt"
	"runtime/debug"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.uber.org/zap"

	"github.com/gavelxmpp/gavel/auth"
	"github.com/gavelxmpp/gavel/component"
	"github.com/gavelxmpp/gavel/config"
	"github.com/gavelxmpp/gavel/policy"
	"github.com/gavelxmpp/gavel/store"
)

func buildVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

// serve runs gavel until ctx ends.
func serve(ctx context.Context, cfg *config.Config, log *zap.Logger) error {
	verifier, err := buildVerifier(cfg, log.Named("auth"))
	if err != nil {
		return err
	}
	defer verifier.Close()

	st, err := store.Open(cfg.DataDir, store.Options{Logger: log.Named("store")})
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

	tenants, err := buildTenants(cfg)
	if err != nil {
		return err
	}
	mucs := make([]component.MUC, len(cfg.MUC))
	for i, m := range cfg.MUC {
		mucs[i] = component.MUC{
			Domain: m.Domain, TrustIdentity: m.TrustIdentity, IdentityDomains: m.IdentityDomains,
			SecureDomains: m.SecureDomains, Discover: m.DiscoverRooms, DiscoverInterval: m.DiscoverInterval,
		}
	}
	mod, err := component.NewModeration(component.ModerationOptions{
		MUCs:     mucs,
		Verifier: verifier,
		Store:    st,
		Tenant: func(name string) component.Tenant {
			if t, ok := tenants[name]; ok {
				return t
			}
			return tenants[config.DefaultTenant]
		},
		Admins:  cfg.Admins,
		Metrics: metrics,
	})
	if err != nil {
		return err
	}
	component.Version = buildVersion()
	comp, err := component.New(component.Options{
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
		zap.String("server", cfg.Component.Address), zap.Int("muc_domains", len(cfg.MUC)), zap.String("data_dir", cfg.DataDir))

	errc := make(chan error, 2)
	go func() { errc <- comp.Run(ctx) }()
	running := 1
	if cfg.HTTP.Listen != "" {
		running++
		go func() { errc <- serveHTTP(ctx, cfg, log.Named("http"), mod, comp, reg) }()
	}
	var first error
	for ; running > 0; running-- {
		if err := <-errc; err != nil && first == nil {
			first = err
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
		out[name] = component.Tenant{
			Policy: policy.Options{
				Kind: kind, Guests: guests,
				ReassertOwners: t.ReassertOwners, ClearOnLeave: t.ClearOnLeave,
				BotDomains: t.BotDomains, ModeratedRooms: t.ModeratedRooms,
			},
			TopLevelModerator:     t.TopLevelModerator,
			KnocksPerMinute:       t.KnocksPerMinute,
			KnocksPerMinutePerJID: t.KnocksPerMinutePerJID,
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
