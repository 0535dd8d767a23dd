// Package config reads gavel's YAML configuration file: its types, defaults,
// strict decoding (unknown keys are errors) and validation. Every error names
// the file, the line and the key at fault.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"time"

	"go.yaml.in/yaml/v3"
)

// Config is the whole configuration file after defaults are applied.
type Config struct {
	Component Component `yaml:"component"`
	MUC       []MUC     `yaml:"muc"`
	Log       Log       `yaml:"log"`
	HTTP      HTTP      `yaml:"http"`
	DataDir   string    `yaml:"data_dir"`
	// Store chooses where durable state lives: bbolt in DataDir (the
	// default), or PostgreSQL shared by the gavels of several shards.
	Store Store `yaml:"store"`
	// Admins are bare JIDs allowed to run ad-hoc commands.
	Admins []string `yaml:"admins"`
	// Tenants maps a tenant name to its settings; "default" applies to every
	// tenant without an entry of its own, and its keys are inherited by the
	// entries that leave them out.
	Tenants map[string]Tenant `yaml:"tenants"`

	// Path is the file the configuration was read from.
	Path string `yaml:"-"`
}

// Component is the XEP-0114 connection to the XMPP server.
type Component struct {
	// JID is the component's domain, as named in the server's config.
	JID string `yaml:"jid"`
	// Address is the server's component port, host:port.
	Address string `yaml:"address"`
	// Exactly one of Secret, SecretFile and SecretEnv gives the shared secret.
	Secret     Secret `yaml:"secret"`
	SecretFile string `yaml:"secret_file"`
	SecretEnv  string `yaml:"secret_env"`
	// Nick is the nickname gavel uses in the rooms it governs.
	Nick string `yaml:"nick"`
	// ReconnectMin and ReconnectMax bound the backoff between connection attempts.
	ReconnectMin time.Duration `yaml:"reconnect_min"`
	ReconnectMax time.Duration `yaml:"reconnect_max"`
	// ShutdownTimeout bounds a clean stop (leave rooms, close the stream).
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
}

// MUC is one conference service gavel governs.
type MUC struct {
	Domain string `yaml:"domain"`
	// TrustIdentity trusts the server-stamped <identity/> element in presence
	// (Jitsi's mod_presence_identity) for joiners that never knock.
	TrustIdentity bool `yaml:"trust_identity"`
	// IdentityDomains are the client domains whose Prosody stamps and
	// strips <identity/> (mod_presence_identity); required with
	// TrustIdentity.
	IdentityDomains []string `yaml:"identity_domains"`
	// SecureDomains are JID domains whose users are treated as moderators
	// (Jicofo's XMPP authentication); guests of other domains are not.
	SecureDomains []string `yaml:"secure_domains"`
	// DiscoverRooms makes gavel find rooms created without a knock (by
	// Jicofo or clients) by polling every DiscoverInterval.
	DiscoverRooms    bool          `yaml:"discover_rooms"`
	DiscoverInterval time.Duration `yaml:"discover_interval"`
	// TenantSubdomains names the tenant's rooms also in the JaaS domain
	// form: "room@<prefix>.<tenant>.<rest>", where Domain is
	// "<prefix>.<rest>", is "[tenant]room@Domain" (Jitsi's
	// muc_domain_mapper; JaaS's "room@conference.<appId>.8x8.vc").
	TenantSubdomains bool `yaml:"tenant_subdomains"`
	// Bridge accepts join requests and room events from this MUC's
	// mod_gavel_bridge (prosody-modules/): joiners that never knock are
	// decided before they join, with their session's token.
	Bridge bool `yaml:"bridge"`
}

// Log selects the log level and format.
type Log struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	Format string `yaml:"format"` // json or console
}

// HTTP is the admin API, health and metrics listener.
type HTTP struct {
	// Listen is host:port; empty disables the HTTP server.
	Listen string `yaml:"listen"`
	// AdminToken holds the keys that sign admin JWTs for the API.
	AdminToken Token `yaml:"admin_token"`
	// MaxBodyBytes limits request bodies.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// RatePerMinute limits requests per client address.
	RatePerMinute int `yaml:"rate_per_minute"`
}

// Tenant is one tenant's moderation policy and token rules.
type Tenant struct {
	// Policy is token, auto-owner or all-owners.
	Policy string `yaml:"policy"`
	// Guests says what joiners without a token get: deny, member or visitor.
	Guests string `yaml:"guests"`
	// TokenHolders is the affiliation of token holders whose token does not
	// make them moderators: none (member only where the room needs it:
	// members-only or moderated) or member (in every room, as Jitsi's
	// token_affiliation). Viewers stay viewers.
	TokenHolders string `yaml:"token_holders"`
	// ModeratedRooms (all-owners) are room names that use the token policy.
	ModeratedRooms []string `yaml:"moderated_rooms"`
	// ReassertOwners (all-owners) re-grants ownership when an owner is demoted.
	ReassertOwners bool `yaml:"reassert_owners"`
	// ClearOnLeave resets affiliations gavel granted when their holder leaves.
	ClearOnLeave bool `yaml:"clear_on_leave"`
	// ClearOnLeaveGrace holds that reset this long after the leave, and
	// drops it when the same user knocks again for the same rights
	// meanwhile (a reconnect costs the server no affiliation change).
	ClearOnLeaveGrace time.Duration `yaml:"clear_on_leave_grace"`
	// Viewers admits tokens whose context.user.role is viewer: the tenant's
	// rooms are then moderated from their creation (and never members-only),
	// so viewers join without voice. Without it such knocks are refused.
	Viewers bool `yaml:"viewers"`
	// WaitForHost refuses other knocks with host-absent (type wait) until a
	// moderator is in the room (Jitsi's muc_wait_for_host).
	WaitForHost bool `yaml:"wait_for_host"`
	// HostOpens lets only a moderator open a meeting: other knocks are
	// refused with host-absent until one has been in the room since it was
	// last empty (Jitsi's token_owner_party).
	HostOpens bool `yaml:"host_opens"`
	// EndWithoutHost destroys a room that has had occupants but no
	// moderator for this long (Jitsi's owner_restricted with role_timeout,
	// 120s there); 0 never does.
	EndWithoutHost time.Duration `yaml:"end_without_host"`
	// OwnerGrace (auto-owner) gives ownership back to an owner that left
	// and knocks again within it (a reload), by user id or bare JID; 0 turns
	// it off. KeepInterimOwner lets the stand-in keep ownership too.
	OwnerGrace       time.Duration `yaml:"owner_grace"`
	KeepInterimOwner bool          `yaml:"keep_interim_owner"`
	// LockHoldTimeout is how long a knock held by a locked meeting waits
	// for a host's answer; LockMaxHeld bounds the knocks held per room.
	LockHoldTimeout time.Duration `yaml:"lock_hold_timeout"`
	LockMaxHeld     int           `yaml:"lock_max_held"`
	// MaxParticipants bounds the occupants with voice; joiners beyond it
	// become viewers (the tenant needs viewers: true) or are refused with
	// room-full. 0: no bound.
	MaxParticipants int `yaml:"max_participants"`
	// TopLevelModerator accepts a top-level "moderator": true claim.
	TopLevelModerator bool `yaml:"top_level_moderator"`
	// BotDomains are JID domains never chosen as auto-owner (recorders, gateways).
	BotDomains []string `yaml:"bot_domains"`
	// KnocksPerMinute limits the tenant's knocks with a valid token (a
	// quarter of it, its tokenless and failed knocks); KnocksPerMinutePerJID
	// each bare JID's knocks. Token buckets: docs/protocol.md, section 6.
	KnocksPerMinute       int `yaml:"knocks_per_minute"`
	KnocksPerMinutePerJID int `yaml:"knocks_per_minute_per_jid"`
	// Token holds the rules and keys that validate joiners' tokens.
	Token Token `yaml:"token"`
	// Meetings configures the meetings made through the API (/v1/meetings).
	Meetings Meetings `yaml:"meetings"`
}

// Meetings configures how gavel makes a tenant's meetings: the links it
// hands out and the key that signs their tokens.
type Meetings struct {
	// URLTemplate makes the links: {room}, {tenant}, {jid} and {token} are
	// replaced (e.g. https://meet.example.com/{room}?jwt={token}). Empty:
	// only the tokens and the room JID are returned.
	URLTemplate string `yaml:"url_template"`
	// HostGrace is how long host rights outlast the meeting's end date.
	HostGrace time.Duration `yaml:"host_grace"`
	// SigningKeyFile is a PEM private key (RSA, ECDSA or Ed25519) whose
	// public key is one of token.public_keys. Empty: the tokens are
	// signed HS256 with the first of token.secrets.
	SigningKeyFile string `yaml:"signing_key_file"`
}

// Token is a set of keys and rules for validating JWTs.
type Token struct {
	AppID             string        `yaml:"app_id"`
	Secrets           []Secret      `yaml:"secrets"`
	SecretFiles       []string      `yaml:"secret_files"`
	SecretEnvs        []string      `yaml:"secret_envs"`
	PublicKeys        []string      `yaml:"public_keys"`
	Algorithms        []string      `yaml:"algorithms"`
	KeyServer         string        `yaml:"key_server"`
	JWKSURL           string        `yaml:"jwks_url"`
	Issuers           []string      `yaml:"issuers"`
	Audiences         []string      `yaml:"audiences"`
	RequireExp        bool          `yaml:"require_exp"`
	Leeway            time.Duration `yaml:"leeway"`
	RequireRoom       bool          `yaml:"require_room"`
	AllowWildcardRoom bool          `yaml:"allow_wildcard_room"`
	AllowRegexRoom    bool          `yaml:"allow_regex_room"`
	AllowWildcardSub  bool          `yaml:"allow_wildcard_sub"`
	MaxTokenBytes     int           `yaml:"max_token_bytes"`
	// MUCDomainPrefix is the label before the tenant in MUC domains
	// ("conference" in conference.<sub>; docker-jitsi-meet uses "muc").
	MUCDomainPrefix string `yaml:"muc_domain_prefix"`
}

// Secret is a string that never prints.
type Secret string

// String hides the value from logs and fmt.
func (Secret) String() string { return "[redacted]" }

// GoString hides the value from %#v.
func (Secret) GoString() string { return "[redacted]" }

// MarshalText hides the value from encoders (JSON, zap).
func (Secret) MarshalText() ([]byte, error) { return []byte("[redacted]"), nil }

// Reveal returns the secret itself.
func (s Secret) Reveal() string { return string(s) }

// Store is the store section. Without a postgres key, gavel keeps its state
// in a bbolt file in data_dir.
type Store struct {
	Postgres Postgres `yaml:"postgres"`
}

// Postgres is the shared PostgreSQL store (docs/scale-out.md). It is in use
// when DSNEnv is set.
type Postgres struct {
	// DSNEnv names the environment variable holding the connection string
	// (it carries a password, so it is never written in the file).
	DSNEnv string `yaml:"dsn_env"`
	// DSN is the connection string read from DSNEnv.
	DSN Secret `yaml:"-"`
	// ReconnectMin and ReconnectMax bound the backoff between attempts to
	// reach PostgreSQL again.
	ReconnectMin time.Duration `yaml:"reconnect_min"`
	ReconnectMax time.Duration `yaml:"reconnect_max"`
}

// Enabled reports whether the postgres section is in use.
func (p Postgres) Enabled() bool { return p.DSNEnv != "" }

// DefaultTenant is the name of the tenant section every other inherits from.
const DefaultTenant = "default"

// Defaults returns the configuration used where the file is silent.
func Defaults() Config {
	return Config{
		Component: Component{
			Address:         "127.0.0.1:5347",
			Nick:            "gavel",
			ReconnectMin:    100 * time.Millisecond,
			ReconnectMax:    time.Second,
			ShutdownTimeout: 5 * time.Second,
		},
		Log:     Log{Level: "info", Format: "json"},
		HTTP:    HTTP{MaxBodyBytes: 64 << 10, RatePerMinute: 600, AdminToken: DefaultToken()},
		DataDir: "gavel-data",
		Store:   Store{Postgres: Postgres{ReconnectMin: 100 * time.Millisecond, ReconnectMax: 5 * time.Second}},
	}
}

// DefaultTenantSettings returns the tenant settings used where the file is silent.
func DefaultTenantSettings() Tenant {
	return Tenant{
		Policy:                "token",
		Guests:                "deny",
		TokenHolders:          "none",
		ClearOnLeave:          true,
		OwnerGrace:            30 * time.Second,
		LockHoldTimeout:       60 * time.Second,
		LockMaxHeld:           20,
		KnocksPerMinute:       6000,
		KnocksPerMinutePerJID: 30,
		Token:                 DefaultToken(),
		Meetings:              Meetings{HostGrace: time.Hour},
	}
}

// DefaultToken returns the token rules used where the file is silent.
func DefaultToken() Token {
	return Token{
		RequireExp:        true,
		Leeway:            30 * time.Second,
		RequireRoom:       true,
		AllowWildcardRoom: true,
		AllowWildcardSub:  true,
		MaxTokenBytes:     8192,
		MUCDomainPrefix:   "conference",
	}
}

// Load reads, decodes and validates the file at path.
func Load(path string) (*Config, error) {
	return load(path, Parse)
}

// LoadTokens reads the file at path for the token tools (gavel token
// verify), which connect to nothing: see ParseTokens.
func LoadTokens(path string) (*Config, error) {
	return load(path, ParseTokens)
}

func load(path string, parse func(string, []byte) (*Config, error)) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return parse(path, data)
}

// Parse decodes and validates data; name is used in error messages.
func Parse(name string, data []byte) (*Config, error) {
	return parse(name, data, (*Config).validate)
}

// ParseTokens decodes data as strictly as Parse (unknown keys and values of
// the wrong type are errors anywhere in the file) but validates only the
// tenants, whose token keys it resolves. It neither requires nor resolves
// the component secret, the admin API keys or anything else only the
// daemon uses: Component.Secret and HTTP.AdminToken are left as written.
func ParseTokens(name string, data []byte) (*Config, error) {
	return parse(name, data, (*Config).validateTokens)
}

func parse(name string, data []byte, validate func(*Config, *yaml.Node) error) (*Config, error) {
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, errEOF) || err.Error() == "EOF" {
			return nil, fmt.Errorf("config: %s: file is empty", name)
		}
		return nil, yamlError(name, err)
	}
	doc := &root
	if doc.Kind == yaml.DocumentNode && len(doc.Content) == 1 {
		doc = doc.Content[0]
	}
	if doc.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("config: %s:%d: top level must be a mapping of keys", name, doc.Line)
	}
	var errs []error
	checkNode(name, doc, typeOfConfig, "", doc.Line, &errs)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}

	cfg := Defaults()
	tenantsNode := lookup(doc, "tenants")
	rest := withoutKey(doc, "tenants")
	if err := rest.Decode(&cfg); err != nil {
		return nil, yamlError(name, err)
	}
	tenants, err := decodeTenants(name, tenantsNode)
	if err != nil {
		return nil, err
	}
	cfg.Tenants = tenants
	cfg.Path = name
	if err := validate(&cfg, doc); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// decodeTenants decodes the default section over the built-in defaults, then
// each tenant over the default section.
func decodeTenants(name string, node *yaml.Node) (map[string]Tenant, error) {
	base := DefaultTenantSettings()
	out := map[string]Tenant{}
	if node == nil {
		out[DefaultTenant] = base
		return out, nil
	}
	if node.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("config: %s:%d: tenants: must be a mapping of tenant names to settings", name, node.Line)
	}
	if def := lookup(node, DefaultTenant); def != nil {
		if err := def.Decode(&base); err != nil {
			return nil, yamlError(name, err)
		}
	}
	out[DefaultTenant] = base
	for i := 0; i+1 < len(node.Content); i += 2 {
		key, val := node.Content[i], node.Content[i+1]
		if key.Value == DefaultTenant {
			continue
		}
		t := base
		if err := val.Decode(&t); err != nil {
			return nil, yamlError(name, err)
		}
		out[key.Value] = t
	}
	return out, nil
}
