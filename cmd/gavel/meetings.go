package main

import (
	"crypto"
	"fmt"
	"os"
	"strings"

	"github.com/gavelxmpp/gavel/auth"
	"github.com/gavelxmpp/gavel/commands"
	"github.com/gavelxmpp/gavel/config"
)

// meetingSettings builds each tenant's meeting settings from the config:
// the signing key is one the tenant's token verification trusts (its
// first secret, or meetings.signing_key_file, whose public key must be one
// of token.public_keys), so that gavel and Prosody's own token login both
// accept the tokens. It returns the lookup for commands.UseMeetings.
func meetingSettings(cfg *config.Config) (func(string) (commands.MeetingSettings, bool), error) {
	sets := map[string]commands.MeetingSettings{}
	usable := map[string]bool{}
	for name, t := range cfg.Tenants {
		path := "tenants." + name
		s := commands.MeetingSettings{
			MUCDomain: firstMUC(cfg), URLTemplate: t.Meetings.URLTemplate, HostGrace: t.Meetings.HostGrace,
			Viewers: t.Viewers, Issuer: t.Token.AppID, Audience: []string{"jitsi"},
		}
		for _, iss := range t.Token.Issuers {
			if s.Issuer == "" && iss != "*" {
				s.Issuer = iss
			}
		}
		if len(t.Token.Audiences) > 0 && t.Token.Audiences[0] != "*" {
			s.Audience = t.Token.Audiences[:1]
		}
		switch {
		case t.Meetings.SigningKeyFile != "":
			data, err := os.ReadFile(t.Meetings.SigningKeyFile)
			if err != nil {
				return nil, fmt.Errorf("config: %s.meetings.signing_key_file: %v", path, err)
			}
			key, err := auth.ParsePrivateKeyPEM(data)
			if err != nil {
				return nil, fmt.Errorf("config: %s.meetings.signing_key_file: %v", path, strings.TrimPrefix(err.Error(), "auth: "))
			}
			trusted := false
			for _, f := range t.Token.PublicKeys {
				pk, err := auth.LoadPublicKeyFile(f)
				if err == nil && samePublic(key.Public(), pk.Key) {
					trusted = true
				}
			}
			if !trusted {
				return nil, fmt.Errorf("config: %s.meetings.signing_key_file: its public key is not in %s.token.public_keys: the tenant would refuse its own meetings' tokens", path, path)
			}
			s.PrivateKey = key
		case len(t.Token.Secrets) > 0:
			s.Secret = []byte(t.Token.Secrets[0].Reveal())
		}
		sets[name] = s
		usable[name] = (s.Secret != nil || s.PrivateKey != nil) && s.MUCDomain != ""
	}
	return func(tenant string) (commands.MeetingSettings, bool) {
		name := tenant
		if _, ok := sets[name]; !ok {
			name = config.DefaultTenant
		}
		return sets[name], usable[name]
	}, nil
}

// samePublic reports whether two public keys are the same key.
func samePublic(a, b any) bool {
	eq, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && eq.Equal(b)
}
