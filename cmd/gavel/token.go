package main

import (
	"context"
	"encoding/json"

	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/gavelxmpp/gavel/auth"
	"github.com/gavelxmpp/gavel/config"
)

// tokenCmd runs "gavel token verify" and "gavel token mint".
func tokenCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: gavel token verify -config FILE -room ROOMJID [TOKEN|-]\n       gavel token mint [flags]")
		return 2
	}
	switch args[0] {
	case "verify":
		return tokenVerify(args[1:], os.Stdin, stdout, stderr)
	case "mint":
		return tokenMint(args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "gavel token: unknown subcommand %q (want verify or mint)\n", args[0])
	return 2
}

// tokenVerify explains why a token is accepted or refused for a room: exit
// 0 valid, 1 refused, 2 usage or config error.
func tokenVerify(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("gavel token verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "gavel config file (its tenants' token rules are used)")
	room := fs.String("room", "", "room JID the token is for, e.g. [acme]standup@conference.example.test")
	asJSON := fs.Bool("json", false, "print the verdict as JSON")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *cfgPath == "" || *room == "" || fs.NArg() > 1 {
		fmt.Fprintln(stderr, "usage: gavel token verify -config FILE -room ROOMJID [TOKEN|-]")
		return 2
	}
	token := fs.Arg(0)
	if token == "" || token == "-" {
		b, err := io.ReadAll(io.LimitReader(stdin, 1<<20))
		if err != nil {
			fmt.Fprintln(stderr, "gavel token verify: reading the token from standard input:", err)
			return 2
		}
		token = string(b)
	}
	token = strings.TrimSpace(token)
	// Verification connects to nothing: the component secret and the
	// admin API keys need not be available, only the tenants' token keys.
	cfg, err := config.LoadTokens(*cfgPath)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	v, err := buildVerifier(cfg, zap.NewNop())
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	defer v.Close()
	r, err := auth.ParseRoom(*room)
	if err != nil {
		fmt.Fprintln(stderr, "gavel token verify: -room:", err)
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	claims, verr := v.Verify(ctx, token, r)
	type verdict struct {
		Valid  bool         `json:"valid"`
		Reason string       `json:"reason,omitempty"`
		Detail string       `json:"detail,omitempty"`
		Room   string       `json:"room"`
		Tenant string       `json:"tenant"`
		Claims *auth.Claims `json:"claims,omitempty"`
	}
	out := verdict{Valid: verr == nil, Room: r.JID, Tenant: r.Tenant, Claims: claims}
	if verr != nil {
		out.Reason = string(auth.ReasonOf(verr))
		out.Detail = strings.TrimPrefix(verr.Error(), "auth: ")
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(out)
	} else {
		if out.Valid {
			fmt.Fprintf(stdout, "valid: accepted for room %s (tenant %s)\n", out.Room, out.Tenant)
			fmt.Fprintf(stdout, "moderator: %v\n", claims.Moderator)
			if !claims.Expires.IsZero() {
				fmt.Fprintf(stdout, "expires: %s (in %s)\n", claims.Expires.UTC().Format(time.RFC3339), time.Until(claims.Expires).Round(time.Second))
			}
		} else {
			fmt.Fprintf(stdout, "refused: %s\n", out.Reason)
			fmt.Fprintf(stdout, "detail: %s\n", out.Detail)
			fmt.Fprintf(stdout, "room: %s (tenant %s)\n", out.Room, out.Tenant)
		}
		if claims != nil {
			b, _ := json.MarshalIndent(claims, "", "  ")
			fmt.Fprintf(stdout, "claims: %s\n", b)
		}
	}
	if verr != nil {
		return 1
	}
	return 0
}

// tokenMint signs a token for development, tests and the demo.
func tokenMint(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("gavel token mint", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		secret    = fs.String("secret", "", "HS shared secret (prefer -secret-env or -secret-file)")
		secretEnv = fs.String("secret-env", "", "environment variable holding the HS secret")
		secretF   = fs.String("secret-file", "", "file holding the HS secret")
		keyFile   = fs.String("key", "", "PEM private key file (RS*, PS*, ES*, EdDSA)")
		alg       = fs.String("alg", "", "algorithm (default HS256 with a secret, else the key's)")
		kid       = fs.String("kid", "", "key id header")
		iss       = fs.String("iss", "", "issuer (app id)")
		sub       = fs.String("sub", "", "subject: the tenant, or the MUC domain without conference.")
		aud       = fs.String("aud", "jitsi", "audience (comma separated)")
		room      = fs.String("room", "*", "room claim (a room name, or *)")
		userID    = fs.String("user-id", "", "context.user.id")
		name      = fs.String("name", "", "context.user.name")
		email     = fs.String("email", "", "context.user.email")
		moderator = fs.Bool("moderator", false, "context.user.moderator")
		affil     = fs.String("affiliation", "", "context.user.affiliation (owner, moderator, teacher, member)")
		role      = fs.String("role", "", "context.user.role (viewer)")
		ttl       = fs.Duration("ttl", time.Hour, "lifetime (negative: an already expired token)")
		noExp     = fs.Bool("no-exp", false, "omit exp (refused by default rules)")
		admin     = fs.Bool("admin", false, "add admin: true (for gavel's HTTP API)")
	)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	req := auth.MintRequest{
		Algorithm: *alg, KeyID: *kid, Issuer: *iss, Subject: *sub, Room: *room,
		UserID: *userID, Name: *name, Email: *email, Moderator: *moderator,
		Affiliation: *affil, Role: *role, TTL: *ttl, NoExpiry: *noExp,
	}
	if *ttl <= 0 && !*noExp {
		// A negative lifetime makes an already expired token, for trying
		// out refusals.
		req.TTL = 0
		req.Expires = time.Now().Add(*ttl)
		req.IssuedAt = req.Expires.Add(-time.Hour)
	}
	if *aud != "" {
		req.Audience = strings.Split(*aud, ",")
	}
	if *admin {
		req.Extra = map[string]any{"admin": true}
	}
	switch {
	case *keyFile != "":
		pem, err := os.ReadFile(*keyFile)
		if err != nil {
			fmt.Fprintln(stderr, "gavel token mint:", err)
			return 2
		}
		req.PrivateKeyPEM = pem
	case *secretEnv != "":
		req.Secret = []byte(os.Getenv(*secretEnv))
	case *secretF != "":
		b, err := os.ReadFile(*secretF)
		if err != nil {
			fmt.Fprintln(stderr, "gavel token mint:", err)
			return 2
		}
		req.Secret = []byte(strings.TrimRight(string(b), "\r\n"))
	default:
		req.Secret = []byte(*secret)
	}
	if len(req.Secret) == 0 && req.PrivateKeyPEM == nil {
		fmt.Fprintln(stderr, "gavel token mint: give a key: -secret, -secret-env, -secret-file or -key")
		return 2
	}
	tok, err := auth.Mint(req)
	if err != nil {
		fmt.Fprintln(stderr, "gavel token mint:", err)
		return 2
	}
	fmt.Fprintln(stdout, tok)
	return 0
}
