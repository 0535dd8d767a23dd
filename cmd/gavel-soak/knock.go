package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/gavelxmpp/gavel/internal/prosodytest"
	"github.com/gavelxmpp/gavel/internal/xclient"
)

// Outcomes of a knock other than a refusal's reason.
const (
	outGranted    = "granted"
	outUnanswered = "unanswered"      // no IQ response within knockTimeout on a live session
	outLost       = "connection-lost" // the client's own session ended first
)

// knock sends one knock, bounded by knockTimeout, and records its outcome
// in st (which may be nil). It returns the result, and for a refusal the
// *xclient.Error.
func knock(ctx context.Context, st *knockStats, c *xclient.Client, roomJID, tok string) (xclient.KnockResult, string, error) {
	kctx, cancel := context.WithTimeout(ctx, knockTimeout)
	defer cancel()
	res, err := c.Knock(kctx, prosodytest.Component, roomJID, tok)
	out := classify(err, kctx.Err() != nil && ctx.Err() == nil, sessionEnded(c))
	if st != nil {
		st.add(out)
	}
	return res, out, err
}

// classify names a knock's outcome: granted, the refusal's application
// condition (or its stanza condition when the server refused it),
// unanswered, or connection-lost.
func classify(err error, timedOut, ended bool) string {
	if err == nil {
		return outGranted
	}
	var xe *xclient.Error
	if errors.As(err, &xe) {
		if xe.App != "" && xe.App != "not-connected" {
			return xe.App
		}
		return xe.Condition
	}
	if ended {
		return outLost
	}
	if timedOut {
		return outUnanswered
	}
	return outLost
}

func sessionEnded(c *xclient.Client) bool {
	select {
	case <-c.Done():
		return true
	default:
		return false
	}
}

// retryable reports whether a refusal is one a client retries with backoff
// (docs/protocol.md, "While gavel is down").
func retryable(out string) bool {
	switch out {
	case "remote-server-timeout", "remote-server-not-found", "rate-limited", "busy", "room-busy",
		"room-unavailable", "shutting-down", "token-key-unavailable", "service-unavailable", "resource-constraint":
		return true
	}
	return false
}

// knockRetry knocks until granted, a final refusal, or limit has passed,
// backing off from 100 ms to 1 s on refusals a client retries.
func knockRetry(ctx context.Context, st *knockStats, c *xclient.Client, roomJID, tok string, limit time.Duration) (xclient.KnockResult, string, error) {
	deadline := time.Now().Add(limit)
	wait := 100 * time.Millisecond
	for {
		res, out, err := knock(ctx, st, c, roomJID, tok)
		if out == outGranted || !retryable(out) || time.Now().Add(wait).After(deadline) || ctx.Err() != nil {
			return res, out, err
		}
		time.Sleep(wait)
		wait = min(2*wait, time.Second)
	}
}

// enter knocks (retrying what a client retries, for up to 30 s) and joins,
// and checks the first self-presence against the knock's promise. It
// returns the outcome of the last knock; wrong is set when the room gave
// another role or affiliation than promised.
func enter(ctx context.Context, st *knockStats, c *xclient.Client, roomJID, nick, tok string) (out string, wrong string, err error) {
	res, out, err := knockRetry(ctx, st, c, roomJID, tok, 30*time.Second)
	if err != nil {
		return out, "", fmt.Errorf("knock %s: %s: %w", roomJID, out, err)
	}
	jctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	p, err := c.Join(jctx, roomJID, nick)
	if err != nil {
		return out, "", fmt.Errorf("join %s as %s: %w", roomJID, nick, err)
	}
	if w := wrongRole(res, p); w != "" {
		if st != nil {
			st.wrong(w)
		}
		return out, w, nil
	}
	return out, "", nil
}

// wrongRole compares a knock's promise with the joiner's first
// self-presence; "" when they agree.
func wrongRole(res xclient.KnockResult, p xclient.Presence) string {
	if res.Role == p.Role && res.Affiliation == p.Affiliation {
		return ""
	}
	return fmt.Sprintf("promised %s/%s (%s), joined as %s/%s", res.Affiliation, res.Role, res.Reason, p.Affiliation, p.Role)
}

// leave leaves the room and waits for the room's confirmation.
func leave(ctx context.Context, c *xclient.Client, roomJID, nick string) error {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	if err := c.Leave(ctx, roomJID, nick); err != nil {
		return err
	}
	occupant := roomJID + "/" + nick
	_, err := c.WaitPresence(ctx, func(p xclient.Presence) bool {
		return p.Type == "unavailable" && strings.EqualFold(p.From, occupant)
	})
	return err
}

// seesAffiliation waits until c has received a presence of occupant
// (room/nick) with affiliation aff, counting only presences after the
// first skip ones.
func seesAffiliation(ctx context.Context, c *xclient.Client, occupant, aff string, skip int, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	i := 0
	_, err := c.WaitPresence(ctx, func(p xclient.Presence) bool {
		i++
		return i > skip && p.Type == "" && strings.EqualFold(p.From, occupant) && p.Affiliation == aff
	})
	return err
}

// removed waits until c sees itself leave roomJID (kicked or banned).
func removedFrom(ctx context.Context, c *xclient.Client, roomJID, nick string, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	_, err := c.WaitPresence(ctx, func(p xclient.Presence) bool {
		return p.Type == "unavailable" && strings.EqualFold(p.From, roomJID+"/"+nick)
	})
	return err
}
