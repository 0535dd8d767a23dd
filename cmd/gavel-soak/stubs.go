package main

import "context"

func gavelRestart(ctx context.Context, o options, r *result) error { return nil }
func churn(ctx context.Context, o options, r *result) error        { return nil }
func outage(ctx context.Context, o options, r *result) error       { return nil }
