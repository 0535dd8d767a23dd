package main

import (
	"context"
	"fmt"
	"net"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/gavelxmpp/gavel/api"
	"github.com/gavelxmpp/gavel/auth"
	"github.com/gavelxmpp/gavel/commands"
	"github.com/gavelxmpp/gavel/component"
	"github.com/gavelxmpp/gavel/config"
)

// serveHTTP runs the admin API, health and metrics listener.
func serveHTTP(ctx context.Context, cfg *config.Config, log *zap.Logger, cmds *commands.Service, comp *component.Component, reg *prometheus.Registry) error {
	keys, err := adminKeys(cfg.HTTP.AdminToken)
	if err != nil {
		return err
	}
	srv, err := api.New(api.Options{
		Commands: cmds,
		Ready: func() error {
			if !comp.Connected() {
				return component.ErrNotConnected
			}
			return nil
		},
		Keys:          keys,
		Registry:      reg,
		Logger:        log,
		MaxBodyBytes:  cfg.HTTP.MaxBodyBytes,
		RatePerMinute: cfg.HTTP.RatePerMinute,
	})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.HTTP.Listen)
	if err != nil {
		return fmt.Errorf("http: listen on %s: %w", cfg.HTTP.Listen, err)
	}
	log.Info("http listening", zap.String("address", ln.Addr().String()))
	return srv.Serve(ctx, ln)
}

// adminKeys maps http.admin_token onto the API's keys.
func adminKeys(t config.Token) (api.AdminKeys, error) {
	k := api.AdminKeys{Issuers: t.Issuers, Audiences: t.Audiences, Leeway: t.Leeway}
	for _, s := range t.Secrets {
		k.Secrets = append(k.Secrets, []byte(s.Reveal()))
	}
	for i, f := range t.PublicKeys {
		pk, err := auth.LoadPublicKeyFile(f)
		if err != nil {
			return k, fmt.Errorf("config: http.admin_token.public_keys[%d]: %v", i, err)
		}
		k.PublicKeys = append(k.PublicKeys, pk)
	}
	return k, nil
}
