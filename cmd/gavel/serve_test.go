package main

import (
	"testing"

	"github.com/gavelxmpp/gavel/config"
	"github.com/gavelxmpp/gavel/policy"
)

// TestBuildTenantsTokenHolders: token_holders reaches each tenant's policy
// options, inherited from default and overridden per tenant.
func TestBuildTenantsTokenHolders(t *testing.T) {
	cfg, err := config.Parse("gavel.yml", []byte(`
component:
  jid: mod.example.test
  secret: s3cret
muc:
  - domain: conference.example.test
tenants:
  default:
    token_holders: member
  acme:
    guests: member
  beta:
    token_holders: none
`))
	if err != nil {
		t.Fatal(err)
	}
	tenants, err := buildTenants(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]policy.Affiliation{"default": policy.Member, "acme": policy.Member, "beta": policy.None} {
		if got := tenants[name].Policy.TokenHolders; got != want {
			t.Errorf("%s: TokenHolders = %v, want %v", name, got, want)
		}
	}
}
