package main

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/gavelxmpp/gavel/component"
	"github.com/gavelxmpp/gavel/config"
)

// serveHTTP runs the admin API, health and metrics listener.
func serveHTTP(ctx context.Context, cfg *config.Config, log *zap.Logger, mod *component.Moderation, comp *component.Component, reg *prometheus.Registry) error {
	<-ctx.Done()
	return nil
}
