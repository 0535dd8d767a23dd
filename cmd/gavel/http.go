package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/gavelxmpp/gavel/api"
	"github.com/gavelxmpp/gavel/auth"
	"github.com/gavelxmpp/gavel/commands"
	"github.com/gavelxmpp/gavel/config"
)

// listenHTTP binds http.listen. Its error names the key, the address and
// the cause, as "http.listen 127.0.0.1:8080: address already in use".
func listenHTTP(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		// Drop "listen tcp ADDR: bind:", which repeats what we say.
		var oe *net.OpError
		if errors.As(err, &oe) {
			err = oe.Err
		}
		var se *os.SyscallError
		if errors.As(err, &se) {
			err = se.Err
		}
		return nil, fmt.Errorf("http.listen %s: %w", addr, err)
	}
	return ln, nil
}

// serveHTTP runs the admin API, health and metrics server on ln, and
// closes ln.
// use, if set, receives the server (for config reloads) before it serves.
func serveHTTP(ctx context.Context, cfg *config.Config, log *zap.Logger, cmds *commands.Service, ready func() error, reg *prometheus.Registry, ln net.Listener, con consoleSources, use func(*api.Server)) (err error) {
	defer func() {
		if err != nil {
			_ = ln.Close()
		}
	}()
	keys, err := adminKeys(cfg.HTTP.AdminToken)
	if err != nil {
		return err
	}
	srv, err := api.New(api.Options{
		Commands:      cmds,
		Ready:         ready,
		Keys:          keys,
		Registry:      reg,
		Logger:        log,
		MaxBodyBytes:  cfg.HTTP.MaxBodyBytes,
		RatePerMinute: cfg.HTTP.RatePerMinute,
		MUCDomain:     firstMUC(cfg),
		Meetings:      cmds,
		Rooms:         con.rooms,
		Health:        con.health,
	})
	if err != nil {
		return err
	}
	if use != nil {
		use(srv)
	}
	log.Info("http listening", zap.String("address", ln.Addr().String()), zap.String("console", "http://"+ln.Addr().String()+"/console/"))
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

// firstMUC is the MUC domain of rooms named without one (Jitsi's
// kick-participant names a room by name and tenant only).
func firstMUC(cfg *config.Config) string {
	if len(cfg.MUC) == 0 {
		return ""
	}
	return cfg.MUC[0].Domain
}

// consoleSources are what the console reads from the XMPP side.
type consoleSources struct {
	rooms  commands.RoomViewer
	health func() api.Health
}
