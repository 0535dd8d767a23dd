package config

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// problems collects validation errors, each tied to a key path.
type problems struct {
	name string
	root *yaml.Node
	errs []error
}

func (p *problems) add(path, format string, args ...any) {
	p.errs = append(p.errs, fmt.Errorf("config: %s:%d: %s: %s", p.name, lineOf(p.root, path), path, fmt.Sprintf(format, args...)))
}

// validate checks every value and resolves secrets from files and the
// environment. All problems are reported at once.
func (c *Config) validate(root *yaml.Node) error {
	p := &problems{name: c.Path, root: root}

	comp := &c.Component
	if comp.JID == "" {
		p.add("component.jid", "required: the component's domain as named in the server config (e.g. mod.example.test)")
	} else if err := checkDomain(comp.JID); err != nil {
		p.add("component.jid", "%v", err)
	}
	if err := checkHostPort(comp.Address); err != nil {
		p.add("component.address", "%v", err)
	}
	c.resolveComponentSecret(p)
	if comp.Nick == "" || strings.ContainsAny(comp.Nick, "/@ \t") {
		p.add("component.nick", "must be a non-empty nickname without spaces, '/' or '@'")
	}
	if comp.ReconnectMin <= 0 {
		p.add("component.reconnect_min", "must be positive, got %v", comp.ReconnectMin)
	}
	if comp.ReconnectMax < comp.ReconnectMin {
		p.add("component.reconnect_max", "must be at least reconnect_min (%v), got %v", comp.ReconnectMin, comp.ReconnectMax)
	}
	if comp.ShutdownTimeout <= 0 || comp.ShutdownTimeout > 5*time.Minute {
		p.add("component.shutdown_timeout", "must be between 0 and 5m, got %v", comp.ShutdownTimeout)
	}

	if len(c.MUC) == 0 {
		p.add("muc", "required: list the conference domains gavel governs (e.g. - domain: conference.example.test)")
	}
	seen := map[string]bool{}
	for i, m := range c.MUC {
		path := fmt.Sprintf("muc[%d].domain", i)
		if err := checkDomain(m.Domain); err != nil {
			p.add(path, "%v", err)
		} else if seen[m.Domain] {
			p.add(path, "domain %q is listed twice", m.Domain)
		}
		seen[m.Domain] = true
		for j, d := range m.SecureDomains {
			if err := checkDomain(d); err != nil {
				p.add(fmt.Sprintf("muc[%d].secure_domains[%d]", i, j), "%v", err)
			}
		}
		for j, d := range m.IdentityDomains {
			if err := checkDomain(d); err != nil {
				p.add(fmt.Sprintf("muc[%d].identity_domains[%d]", i, j), "%v", err)
			}
		}
		if m.TrustIdentity && len(m.IdentityDomains) == 0 {
			p.add(fmt.Sprintf("muc[%d].trust_identity", i), "needs identity_domains: the client domains whose Prosody stamps <identity/> (mod_presence_identity), see docs/jitsi.md")
		}
		if m.DiscoverInterval != 0 && m.DiscoverInterval < 20*time.Millisecond {
			p.add(fmt.Sprintf("muc[%d].discover_interval", i), "must be at least 20ms, got %v", m.DiscoverInterval)
		}
	}

	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		p.add("log.level", "must be debug, info, warn or error, got %q", c.Log.Level)
	}
	switch c.Log.Format {
	case "json", "console":
	default:
		p.add("log.format", "must be json or console, got %q", c.Log.Format)
	}

	if c.HTTP.Listen != "" {
		if err := checkHostPort(c.HTTP.Listen); err != nil {
			p.add("http.listen", "%v", err)
		}
	}
	if c.HTTP.MaxBodyBytes < 1024 || c.HTTP.MaxBodyBytes > 16<<20 {
		p.add("http.max_body_bytes", "must be between 1024 and 16777216, got %d", c.HTTP.MaxBodyBytes)
	}
	if c.HTTP.RatePerMinute < 1 {
		p.add("http.rate_per_minute", "must be at least 1, got %d", c.HTTP.RatePerMinute)
	}
	c.HTTP.AdminToken.check(p, "http.admin_token")

	if c.DataDir == "" {
		p.add("data_dir", "required: a directory for durable state (bans)")
	}
	c.resolveStore(p)
	for i, a := range c.Admins {
		if err := checkBareJID(a); err != nil {
			p.add(fmt.Sprintf("admins[%d]", i), "%v", err)
		}
	}

	c.checkTenants(p)
	return errors.Join(p.errs...)
}

// resolveStore checks the store section and reads the PostgreSQL DSN from
// the environment.
func (c *Config) resolveStore(p *problems) {
	pg := &c.Store.Postgres
	if lookup(p.root, "store") != nil && lookup(lookup(p.root, "store"), "postgres") != nil && pg.DSNEnv == "" {
		p.add("store.postgres.dsn_env", "required: the environment variable that holds the PostgreSQL connection string")
	}
	if pg.DSNEnv == "" {
		return
	}
	s, ok := os.LookupEnv(pg.DSNEnv)
	if !ok || s == "" {
		p.add("store.postgres.dsn_env", "environment variable %s is not set or empty", pg.DSNEnv)
	}
	pg.DSN = Secret(s)
	if pg.ReconnectMin <= 0 {
		p.add("store.postgres.reconnect_min", "must be positive, got %v", pg.ReconnectMin)
	}
	if pg.ReconnectMax < pg.ReconnectMin {
		p.add("store.postgres.reconnect_max", "must be at least reconnect_min (%v), got %v", pg.ReconnectMin, pg.ReconnectMax)
	}
}

// validateTokens checks only the tenants and resolves their token keys:
// what the token tools need.
func (c *Config) validateTokens(root *yaml.Node) error {
	p := &problems{name: c.Path, root: root}
	c.checkTenants(p)
	return errors.Join(p.errs...)
}

func (c *Config) checkTenants(p *problems) {
	// In name order, so that -check prints the same lines every time.
	for _, name := range slices.Sorted(maps.Keys(c.Tenants)) {
		t := c.Tenants[name]
		path := "tenants." + name
		if name != DefaultTenant && (name == "" || strings.ContainsAny(name, "[]@/ ")) {
			p.add(path, "tenant name %q must be non-empty, without spaces, brackets, '@' or '/'", name)
		}
		t.check(p, path)
		c.Tenants[name] = t
	}
}

func (c *Config) resolveComponentSecret(p *problems) {
	comp := &c.Component
	set := 0
	for _, s := range []string{string(comp.Secret), comp.SecretFile, comp.SecretEnv} {
		if s != "" {
			set++
		}
	}
	switch {
	case set == 0:
		p.add("component.secret", "required: set one of secret, secret_file or secret_env")
	case set > 1:
		p.add("component.secret", "set only one of secret, secret_file or secret_env")
	case comp.SecretFile != "":
		s, err := readSecretFile(comp.SecretFile)
		if err != nil {
			p.add("component.secret_file", "%v", err)
		}
		comp.Secret = s
	case comp.SecretEnv != "":
		s, ok := os.LookupEnv(comp.SecretEnv)
		if !ok || s == "" {
			p.add("component.secret_env", "environment variable %s is not set or empty", comp.SecretEnv)
		}
		comp.Secret = Secret(s)
	}
}

func (t *Tenant) check(p *problems, path string) {
	switch t.Policy {
	case "token", "auto-owner", "all-owners":
	default:
		p.add(path+".policy", "must be token, auto-owner or all-owners, got %q", t.Policy)
	}
	switch t.Guests {
	case "deny", "member", "visitor":
	default:
		p.add(path+".guests", "must be deny, member or visitor, got %q", t.Guests)
	}
	switch t.TokenHolders {
	case "none", "member":
	default:
		p.add(path+".token_holders", "must be none or member, got %q", t.TokenHolders)
	}
	for i, d := range t.BotDomains {
		if err := checkDomain(d); err != nil {
			p.add(fmt.Sprintf("%s.bot_domains[%d]", path, i), "%v", err)
		}
	}
	if t.EndWithoutHost < 0 {
		p.add(path+".end_without_host", "must not be negative, got %v", t.EndWithoutHost)
	}
	if t.OwnerGrace < 0 {
		p.add(path+".owner_grace", "must not be negative, got %v", t.OwnerGrace)
	}
	if t.LockHoldTimeout < time.Second || t.LockHoldTimeout > 30*time.Minute {
		p.add(path+".lock_hold_timeout", "must be between 1s and 30m, got %v", t.LockHoldTimeout)
	}
	if t.LockMaxHeld < 1 || t.LockMaxHeld > 1000 {
		p.add(path+".lock_max_held", "must be between 1 and 1000, got %d", t.LockMaxHeld)
	}
	if t.MaxParticipants < 0 {
		p.add(path+".max_participants", "must not be negative, got %d", t.MaxParticipants)
	}
	if t.ClearOnLeaveGrace < 0 || t.ClearOnLeaveGrace > 10*time.Minute {
		p.add(path+".clear_on_leave_grace", "must be between 0 and 10m, got %v", t.ClearOnLeaveGrace)
	}
	if t.KnocksPerMinute < 1 {
		p.add(path+".knocks_per_minute", "must be at least 1, got %d", t.KnocksPerMinute)
	}
	if t.KnocksPerMinutePerJID < 1 {
		p.add(path+".knocks_per_minute_per_jid", "must be at least 1, got %d", t.KnocksPerMinutePerJID)
	}
	t.Token.check(p, path+".token")
	if t.Meetings.HostGrace < 0 || t.Meetings.HostGrace > 7*24*time.Hour {
		p.add(path+".meetings.host_grace", "must be between 0s and 168h, got %v", t.Meetings.HostGrace)
	}
	if u := t.Meetings.URLTemplate; u != "" && !strings.Contains(u, "{token}") {
		p.add(path+".meetings.url_template", "must hold {token}, or the links would carry no rights (e.g. https://meet.example.com/{room}?jwt={token})")
	}
}

func (k *Token) check(p *problems, path string) {
	for i, f := range k.SecretFiles {
		s, err := readSecretFile(f)
		if err != nil {
			p.add(fmt.Sprintf("%s.secret_files[%d]", path, i), "%v", err)
			continue
		}
		k.Secrets = append(k.Secrets, s)
	}
	for i, e := range k.SecretEnvs {
		s, ok := os.LookupEnv(e)
		if !ok || s == "" {
			p.add(fmt.Sprintf("%s.secret_envs[%d]", path, i), "environment variable %s is not set or empty", e)
			continue
		}
		k.Secrets = append(k.Secrets, Secret(s))
	}
	k.SecretFiles, k.SecretEnvs = nil, nil
	for i, s := range k.Secrets {
		if len(s) < 16 {
			p.add(fmt.Sprintf("%s.secrets[%d]", path, i), "too short (%d bytes): use at least 16 random bytes", len(s))
		}
	}
	for i, f := range k.PublicKeys {
		if _, err := os.Stat(f); err != nil {
			p.add(fmt.Sprintf("%s.public_keys[%d]", path, i), "%v", err)
		}
	}
	for _, u := range []struct{ key, val string }{{"key_server", k.KeyServer}, {"jwks_url", k.JWKSURL}} {
		if u.val == "" {
			continue
		}
		pu, err := url.Parse(u.val)
		if err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
			p.add(path+"."+u.key, "must be an http or https URL, got %q", u.val)
		}
	}
	if k.Leeway < 0 || k.Leeway > 5*time.Minute {
		p.add(path+".leeway", "must be between 0s and 5m, got %v", k.Leeway)
	}
	if k.MaxTokenBytes < 256 || k.MaxTokenBytes > 64<<10 {
		p.add(path+".max_token_bytes", "must be between 256 and 65536, got %d", k.MaxTokenBytes)
	}
}

// credentialsVar is the directory where systemd puts a service's
// credentials (LoadCredential=); a secret file may start with it.
const credentialsVar = "CREDENTIALS_DIRECTORY"

// secretPath resolves a secret file's path: a leading $CREDENTIALS_DIRECTORY
// or ${CREDENTIALS_DIRECTORY} is systemd's credentials directory.
func secretPath(path string) (string, error) {
	for _, prefix := range []string{"$" + credentialsVar + "/", "${" + credentialsVar + "}/"} {
		if rest, ok := strings.CutPrefix(path, prefix); ok {
			dir := os.Getenv(credentialsVar)
			if dir == "" {
				return "", fmt.Errorf("$%s is not set: it is set by systemd for a service with LoadCredential= (see packaging/systemd/gavel.service); elsewhere give the file's path", credentialsVar)
			}
			return filepath.Join(dir, rest), nil
		}
	}
	return path, nil
}

func readSecretFile(path string) (Secret, error) {
	path, err := secretPath(path)
	if err != nil {
		return "", err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	s := strings.TrimRight(string(b), "\r\n")
	if s == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return Secret(s), nil
}

func checkDomain(d string) error {
	if d == "" {
		return errors.New("must be a domain name, got an empty string")
	}
	if d != strings.ToLower(d) || strings.ContainsAny(d, "@/ \t[]") || strings.HasPrefix(d, ".") || strings.HasSuffix(d, ".") || len(d) > 253 {
		return fmt.Errorf("must be a lowercase domain name without '@', '/' or spaces, got %q", d)
	}
	return nil
}

func checkBareJID(j string) error {
	local, domain, ok := strings.Cut(j, "@")
	if !ok || local == "" || strings.Contains(domain, "/") {
		return fmt.Errorf("must be a bare JID like admin@example.test, got %q", j)
	}
	return checkDomain(domain)
}

func checkHostPort(a string) error {
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return fmt.Errorf("must be host:port, got %q", a)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("port must be 1-65535, got %q", port)
	}
	_ = host
	return nil
}

// TenantFor returns the settings of the named tenant, or the default ones.
func (c *Config) TenantFor(name string) Tenant {
	if t, ok := c.Tenants[name]; ok {
		return t
	}
	return c.Tenants[DefaultTenant]
}
