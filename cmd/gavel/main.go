// Command gavel is the moderation component for XMPP meeting rooms.
//
//	gavel -config gavel.yml           run the daemon (SIGHUP reloads the config)
//	gavel -config gavel.yml -check    validate the config and exit
//	gavel -config gavel.yml -init-store   start afresh on an empty gavel.db
//	gavel token verify|mint ...       explain or make tokens
//	gavel store migrate -from bbolt:DIR -to postgres:DSN -scope JID   move bans and state to PostgreSQL
//	gavel version                     print the version and VCS revision
package main

import (
	"context"

	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/gavelxmpp/gavel/config"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "token" {
		return tokenCmd(args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "store" {
		return storeCmd(args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "version" {
		if len(args) > 1 {
			fmt.Fprintln(stderr, "usage: gavel version")
			return 2
		}
		fmt.Fprintln(stdout, versionLine())
		return 0
	}
	fs := flag.NewFlagSet("gavel", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "path to the YAML config file (required)")
	check := fs.Bool("check", false, "validate the config file and exit")
	version := fs.Bool("version", false, "print the version and VCS revision and exit (as gavel version)")
	initStore := fs.Bool("init-store", false, "take an empty (0-byte) gavel.db as a new database instead of refusing it (its bans are gone)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: gavel -config FILE [-check] [-init-store]\n       gavel token verify -config FILE -room ROOMJID [TOKEN|-]\n       gavel token mint [flags]\n       gavel store migrate -from bbolt:DIR -to postgres:DSN -scope COMPONENT_JID\n       gavel version\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *version {
		fmt.Fprintln(stdout, versionLine())
		return 0
	}
	if *cfgPath == "" || fs.NArg() > 0 {
		fs.Usage()
		return 2
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if *check {
		s, err := prepare(cfg, zap.NewNop())
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		s.verifier.Close()
		fmt.Fprintf(stdout, "%s: ok\n", *cfgPath)
		return 0
	}
	log, err := newLogger(cfg.Log)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	defer func() { _ = log.Sync() }()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	// SIGHUP reloads the config (reload.go) instead of ending gavel.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	if err := serve(ctx, cfg, log, serveOptions{InitStore: *initStore, Reload: hup}); err != nil {
		log.Error("gavel stopped", zap.Error(err))
		// Also in plain words, for whoever started gavel by hand.
		fmt.Fprintln(stderr, "gavel:", err)
		return 1
	}
	return 0
}

func newLogger(c config.Log) (*zap.Logger, error) {
	level, err := zapcore.ParseLevel(c.Level)
	if err != nil {
		return nil, fmt.Errorf("config: log.level: %w", err)
	}
	var zc zap.Config
	if c.Format == "console" {
		zc = zap.NewDevelopmentConfig()
		zc.DisableStacktrace = true
	} else {
		zc = zap.NewProductionConfig()
		zc.EncoderConfig.TimeKey = "time"
		zc.EncoderConfig.EncodeTime = zapcore.ISO8601TimeEncoder
	}
	zc.Level = zap.NewAtomicLevelAt(level)
	zc.DisableStacktrace = true
	zc.DisableCaller = true
	return zc.Build()
}
