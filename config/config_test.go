package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const minimal = `
component:
  jid: mod.example.test
  secret: s3cret
muc:
  - domain: conference.example.test
`

func TestParseValid(t *testing.T) {
	t.Setenv("GAVEL_TEST_SECRET", "from-env")
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "secret")
	if err := os.WriteFile(secretFile, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		yaml  string
		check func(t *testing.T, c *Config)
	}{
		{"defaults", minimal, func(t *testing.T, c *Config) {
			if c.Component.Address != "127.0.0.1:5347" || c.Component.Nick != "gavel" || c.Log.Level != "info" {
				t.Errorf("defaults not applied: %+v", c.Component)
			}
			d := c.TenantFor("anything")
			if d.Policy != "token" || d.Guests != "deny" || d.TokenHolders != "none" || !d.ClearOnLeave || !d.Token.RequireExp || d.Token.Leeway != 30*time.Second {
				t.Errorf("tenant defaults: %+v", d)
			}
		}},
		{"secret from env", strings.Replace(minimal, "secret: s3cret", "secret_env: GAVEL_TEST_SECRET", 1), func(t *testing.T, c *Config) {
			if c.Component.Secret.Reveal() != "from-env" {
				t.Errorf("secret = %q", c.Component.Secret.Reveal())
			}
		}},
		{"secret from file", strings.Replace(minimal, "secret: s3cret", "secret_file: "+secretFile, 1), func(t *testing.T, c *Config) {
			if c.Component.Secret.Reveal() != "from-file" {
				t.Errorf("secret = %q", c.Component.Secret.Reveal())
			}
		}},
		{"tenant inherits default", minimal + `
tenants:
  default:
    policy: auto-owner
    bot_domains: [recorder.example.test]
    token:
      app_id: myapp
      secrets: [0123456789abcdef0123]
  acme:
    guests: visitor
    token:
      leeway: 10s
`, func(t *testing.T, c *Config) {
			a := c.TenantFor("acme")
			if a.Policy != "auto-owner" || a.Guests != "visitor" || a.Token.AppID != "myapp" || a.Token.Leeway != 10*time.Second || len(a.Token.Secrets) != 1 || len(a.BotDomains) != 1 {
				t.Errorf("acme = %+v", a)
			}
			if d := c.TenantFor("other"); d.Guests != "deny" || d.Token.Leeway != 30*time.Second {
				t.Errorf("default changed by acme: %+v", d)
			}
		}},
		{"token holders member, inherited and overridden", minimal + `
tenants:
  default:
    token_holders: member
  acme:
    guests: member
  beta:
    token_holders: none
`, func(t *testing.T, c *Config) {
			for name, want := range map[string]string{"default": "member", "acme": "member", "other": "member", "beta": "none"} {
				if got := c.TenantFor(name).TokenHolders; got != want {
					t.Errorf("%s: token_holders = %q, want %q", name, got, want)
				}
			}
		}},
		{"tenant list replaces default list", minimal + `
tenants:
  default:
    bot_domains: [a.example.test]
  acme:
    bot_domains: [b.example.test, c.example.test]
`, func(t *testing.T, c *Config) {
			if got := c.TenantFor("default").BotDomains; len(got) != 1 || got[0] != "a.example.test" {
				t.Errorf("default bot_domains = %v", got)
			}
			if got := c.TenantFor("acme").BotDomains; len(got) != 2 {
				t.Errorf("acme bot_domains = %v", got)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse("gavel.yml", []byte(tt.yaml))
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}
}

func TestParseInvalid(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want string
	}{
		{"empty", "", "config: gavel.yml: file is empty"},
		{"not a mapping", "- a\n- b\n", "config: gavel.yml:1: top level must be a mapping of keys"},
		{"unknown top key", minimal + "tennants: {}\n", `config: gavel.yml:7: unknown key "tennants" (known keys here: admins, component, data_dir, http, log, muc, store, tenants)`},
		{"unknown nested key", strings.Replace(minimal, "secret: s3cret", "secret: s3cret\n  secrte: x", 1), `config: gavel.yml:5: unknown key "component.secrte"`},
		{"unknown tenant key", minimal + "tenants:\n  acme:\n    polcy: token\n", `config: gavel.yml:9: unknown key "tenants.acme.polcy"`},
		{"unknown muc key", minimal + "  - domian: x\n", `config: gavel.yml:7: unknown key "muc[1].domian"`},
		{"syntax", "component: [\n", "config: gavel.yml:1: did not find expected node content"},
		{"wrong type", minimal + "log:\n  level: [a]\n", "config: gavel.yml:8: log.level: must be a single value, got a list"},
		{"bad duration", minimal + "tenants:\n  default:\n    token:\n      leeway: soon\n", `config: gavel.yml:10: tenants.default.token.leeway: must be a duration like 250ms, 30s or 5m, got "soon"`},
		{"missing jid", "component:\n  secret: x\nmuc:\n  - domain: conference.example.test\n", "config: gavel.yml:1: component.jid: required"},
		{"jid with at", strings.Replace(minimal, "mod.example.test", "bot@mod.example.test", 1), `config: gavel.yml:3: component.jid: must be a lowercase domain name without '@', '/' or spaces, got "bot@mod.example.test"`},
		{"no secret", strings.Replace(minimal, "secret: s3cret", "nick: g", 1), "config: gavel.yml:2: component.secret: required: set one of secret, secret_file or secret_env"},
		{"two secrets", strings.Replace(minimal, "secret: s3cret", "secret: a\n  secret_env: B", 1), "config: gavel.yml:4: component.secret: set only one of secret, secret_file or secret_env"},
		{"secret env unset", strings.Replace(minimal, "secret: s3cret", "secret_env: GAVEL_SURELY_UNSET", 1), "config: gavel.yml:4: component.secret_env: environment variable GAVEL_SURELY_UNSET is not set or empty"},
		{"secret file missing", strings.Replace(minimal, "secret: s3cret", "secret_file: /nonexistent/x", 1), "config: gavel.yml:4: component.secret_file: open /nonexistent/x: no such file or directory"},
		{"bad address", strings.Replace(minimal, "secret: s3cret", "secret: s3cret\n  address: localhost", 1), `config: gavel.yml:5: component.address: must be host:port, got "localhost"`},
		{"no muc", "component:\n  jid: mod.example.test\n  secret: x\n", "config: gavel.yml:1: muc: required"},
		{"duplicate muc", minimal + "  - domain: conference.example.test\n", `config: gavel.yml:7: muc[1].domain: domain "conference.example.test" is listed twice`},
		{"bad log level", minimal + "log:\n  level: loud\n", `config: gavel.yml:8: log.level: must be debug, info, warn or error, got "loud"`},
		{"bad policy", minimal + "tenants:\n  acme:\n    policy: everyone\n", `config: gavel.yml:9: tenants.acme.policy: must be token, auto-owner or all-owners, got "everyone"`},
		{"bad guests", minimal + "tenants:\n  default:\n    guests: maybe\n", `config: gavel.yml:9: tenants.default.guests: must be deny, member or visitor, got "maybe"`},
		{"bad token holders", minimal + "tenants:\n  acme:\n    token_holders: owner\n", `config: gavel.yml:9: tenants.acme.token_holders: must be none or member, got "owner"`},
		{"lock hold timeout too short", minimal + "tenants:\n  acme:\n    lock_hold_timeout: 10ms\n", `config: gavel.yml:9: tenants.acme.lock_hold_timeout: must be between 1s and 30m, got 10ms`},
		{"no knocks held", minimal + "tenants:\n  acme:\n    lock_max_held: 0\n", `config: gavel.yml:9: tenants.acme.lock_max_held: must be between 1 and 1000, got 0`},
		{"leeway too large", minimal + "tenants:\n  default:\n    token:\n      leeway: 1h\n", "config: gavel.yml:10: tenants.default.token.leeway: must be between 0s and 5m, got 1h0m0s"},
		{"short hs secret", minimal + "tenants:\n  default:\n    token:\n      secrets: [short]\n", "config: gavel.yml:10: tenants.default.token.secrets[0]: too short (5 bytes): use at least 16 random bytes"},
		{"bad key server", minimal + "tenants:\n  default:\n    token:\n      key_server: ftp://x\n", `config: gavel.yml:10: tenants.default.token.key_server: must be an http or https URL, got "ftp://x"`},
		{"bad tenant name", minimal + "tenants:\n  \"a b\":\n    guests: member\n", `config: gavel.yml:8: tenants.a b: tenant name "a b" must be non-empty`},
		{"bad admin", minimal + "admins: [example.test]\n", `config: gavel.yml:7: admins[0]: must be a bare JID like admin@example.test, got "example.test"`},
		{"trust identity without domains", minimal + "    trust_identity: true\n", "config: gavel.yml:7: muc[0].trust_identity: needs identity_domains"},
		{"discover interval too short", minimal + "    discover_rooms: true\n    discover_interval: 5ms\n", "config: gavel.yml:8: muc[0].discover_interval: must be at least 20ms, got 5ms"},
		{"bad http listen", minimal + "http:\n  listen: 8080\n", `config: gavel.yml:8: http.listen: must be host:port, got "8080"`},
		{"reconnect max below min", strings.Replace(minimal, "secret: s3cret", "secret: s3cret\n  reconnect_min: 2s\n  reconnect_max: 1s", 1), "config: gavel.yml:6: component.reconnect_max: must be at least reconnect_min (2s), got 1s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("gavel.yml", []byte(tt.yaml))
			if err == nil {
				t.Fatalf("no error, want %q", tt.want)
			}
			if !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("error\n got: %s\nwant: %s", err, tt.want)
			}
		})
	}
}

// TestTypeErrors: a value of the wrong type names the file, the line and the
// key path, one line per error, whatever the nesting.
func TestTypeErrors(t *testing.T) {
	tests := []struct {
		file string
		want string
	}{
		{"invalid-duration.yml", `config: testdata/invalid-duration.yml:4: component.reconnect_min: must be a duration like 250ms, 30s or 5m, got "fast"`},
		{"invalid-bool.yml", `config: testdata/invalid-bool.yml:6: muc[0].trust_identity: must be true or false, got "maybe"`},
		{"invalid-int-in-tenant.yml", `config: testdata/invalid-int-in-tenant.yml:8: tenants.acme.knocks_per_minute: must be a whole number, got "lots"`},
		{"invalid-list-for-scalar.yml", `config: testdata/invalid-list-for-scalar.yml:6: muc[1].domain: must be a single value, got a list`},
		{"invalid-scalar-for-list.yml", `config: testdata/invalid-scalar-for-list.yml:6: admins: must be a list, got "admin@example.test"`},
		{"invalid-many.yml", strings.Join([]string{
			`config: testdata/invalid-many.yml:5: component.shutdown_timeout: must be a duration like 250ms, 30s or 5m, got "5"`,
			`config: testdata/invalid-many.yml:6: component.reconnect_max: must be a single value, got a mapping`,
			`config: testdata/invalid-many.yml:9: muc[0].discover_rooms: must be true or false, got "yes please"`,
			`config: testdata/invalid-many.yml:11: http.max_body_bytes: must be a whole number, got "64k"`,
			`config: testdata/invalid-many.yml:13: http.admin_token.leeway: must be a single value, got a list`,
			`config: testdata/invalid-many.yml:17: tenants.default.token.require_exp: must be true or false, got "1"`,
			`config: testdata/invalid-many.yml:18: tenants.default.token.secrets: must be a list, got "s3cret-but-longer-than-16"`,
			`config: testdata/invalid-many.yml:19: tenants.acme: must be a mapping of keys, got "everyone"`,
		}, "\n")},
		{"invalid-duplicate-key.yml", `config: testdata/invalid-duplicate-key.yml:10: tenants.acme.policy: given twice (first at line 8)`},
		{"invalid-flow-mapping.yml", strings.Join([]string{
			`config: testdata/invalid-flow-mapping.yml:1: component.reconnect_max: must be a duration like 250ms, 30s or 5m, got "later"`,
			`config: testdata/invalid-flow-mapping.yml:2: muc[0].discover_interval: must be a duration like 250ms, 30s or 5m, got "often"`,
		}, "\n")},
		{"invalid-unknown-tag.yml", `config: testdata/invalid-unknown-tag.yml:3: component.secret: unknown tag !vault`},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			_, err := Load(filepath.Join("testdata", tt.file))
			if err == nil {
				t.Fatalf("no error, want %q", tt.want)
			}
			if err.Error() != tt.want {
				t.Errorf("error\n got: %s\nwant: %s", err, tt.want)
			}
		})
	}
}

func TestSecretNeverPrints(t *testing.T) {
	c, err := Parse("gavel.yml", []byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{c.Component.Secret.String(), strings.TrimSpace(strings.ReplaceAll(fmtAll(c), "\n", " "))} {
		if strings.Contains(s, "s3cret") {
			t.Errorf("secret leaked: %s", s)
		}
	}
}

// The example config is also checked by cmd/gavel (with -check, which
// builds the token verifier too).
func TestExampleConfigIsValid(t *testing.T) {
	t.Setenv("GAVEL_COMPONENT_SECRET", "example")
	if _, err := Load("../gavel.example.yml"); err != nil {
		t.Fatal(err)
	}
}

// TestValidationOrder: errors of several tenants come in name order, so
// that -check prints the same lines every time.
func TestValidationOrder(t *testing.T) {
	y := minimal + "tenants:\n  zeta:\n    policy: z\n  alpha:\n    policy: a\n  mid:\n    policy: m\n"
	want := strings.Join([]string{
		`config: gavel.yml:11: tenants.alpha.policy: must be token, auto-owner or all-owners, got "a"`,
		`config: gavel.yml:13: tenants.mid.policy: must be token, auto-owner or all-owners, got "m"`,
		`config: gavel.yml:9: tenants.zeta.policy: must be token, auto-owner or all-owners, got "z"`,
	}, "\n")
	for i := 0; i < 20; i++ {
		_, err := Parse("gavel.yml", []byte(y))
		if err == nil || err.Error() != want {
			t.Fatalf("error\n got: %v\nwant: %s", err, want)
		}
	}
}

// TestParseTokens: the token tools need neither the component secret nor
// the admin API keys, but the file is decoded as strictly as for the
// daemon and the tenants' token keys are still checked.
func TestParseTokens(t *testing.T) {
	t.Setenv("GAVEL_TEST_TOKEN_SECRET", "0123456789abcdef0123")
	const base = `
component:
  jid: mod.example.test
  secret_env: GAVEL_SURELY_UNSET
muc:
  - domain: conference.example.test
http:
  admin_token:
    secret_envs: [GAVEL_SURELY_UNSET_TOO]
tenants:
  default:
    token:
      app_id: myapp
      secret_envs: [GAVEL_TEST_TOKEN_SECRET]
`
	t.Run("valid", func(t *testing.T) {
		c, err := ParseTokens("gavel.yml", []byte(base))
		if err != nil {
			t.Fatal(err)
		}
		if got := c.TenantFor("acme").Token.Secrets; len(got) != 1 || got[0].Reveal() != "0123456789abcdef0123" {
			t.Errorf("token secrets not resolved: %d", len(got))
		}
		if c.Component.Secret != "" {
			t.Error("component secret resolved")
		}
		// The daemon still refuses the same file.
		if _, err := Parse("gavel.yml", []byte(base)); err == nil {
			t.Error("Parse accepted an unset component secret")
		}
	})
	tests := []struct {
		name string
		yaml string
		want string
	}{
		{"token secret env unset", strings.Replace(base, "GAVEL_TEST_TOKEN_SECRET", "GAVEL_SURELY_UNSET", 1),
			"config: gavel.yml:14: tenants.default.token.secret_envs[0]: environment variable GAVEL_SURELY_UNSET is not set or empty"},
		{"bad tenant policy", base + "  acme:\n    policy: everyone\n",
			`config: gavel.yml:16: tenants.acme.policy: must be token, auto-owner or all-owners, got "everyone"`},
		{"type error outside tenants", strings.Replace(base, "secret_env: GAVEL_SURELY_UNSET", "reconnect_min: fast", 1),
			`config: gavel.yml:4: component.reconnect_min: must be a duration like 250ms, 30s or 5m, got "fast"`},
		{"unknown key outside tenants", base + "htp: {}\n",
			`config: gavel.yml:15: unknown key "htp"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseTokens("gavel.yml", []byte(tt.yaml))
			if err == nil {
				t.Fatalf("no error, want %q", tt.want)
			}
			if !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("error\n got: %s\nwant: %s", err, tt.want)
			}
		})
	}
}

// A secret file under $CREDENTIALS_DIRECTORY is read from systemd's
// credentials directory (LoadCredential=); without one, the error says so.
func TestSecretFromCredentialsDirectory(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "component-secret"), []byte("from-credential\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, spelling := range []string{"$CREDENTIALS_DIRECTORY/component-secret", "${CREDENTIALS_DIRECTORY}/component-secret"} {
		yaml := strings.Replace(minimal, "secret: s3cret", "secret_file: "+spelling, 1)
		t.Setenv("CREDENTIALS_DIRECTORY", dir)
		c, err := Parse("gavel.yml", []byte(yaml))
		if err != nil {
			t.Fatalf("%s: %v", spelling, err)
		}
		if got := c.Component.Secret.Reveal(); got != "from-credential" {
			t.Errorf("%s: secret = %q", spelling, got)
		}
		t.Setenv("CREDENTIALS_DIRECTORY", "")
		_, err = Parse("gavel.yml", []byte(yaml))
		want := "config: gavel.yml:4: component.secret_file: $CREDENTIALS_DIRECTORY is not set: it is set by systemd for a service with LoadCredential= (see packaging/systemd/gavel.service); elsewhere give the file's path"
		if err == nil || err.Error() != want {
			t.Errorf("%s without the variable: %v, want %s", spelling, err, want)
		}
	}
}
