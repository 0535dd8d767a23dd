package main

import (
	"testing"
	"time"

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

// TestBuildTenantsLock: the lock's settings reach the policy options, the
// defaults where the file is silent.
func TestBuildTenantsLock(t *testing.T) {
	cfg, err := config.Parse("gavel.yml", []byte(`
component:
  jid: mod.example.test
  secret: s3cret
muc:
  - domain: conference.example.test
tenants:
  acme:
    lock_hold_timeout: 5m
    lock_max_held: 3
`))
	if err != nil {
		t.Fatal(err)
	}
	tenants, err := buildTenants(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if p := tenants["acme"].Policy; p.HoldTimeout != 5*time.Minute || p.MaxHeld != 3 {
		t.Errorf("acme: HoldTimeout %v, MaxHeld %d", p.HoldTimeout, p.MaxHeld)
	}
	if p := tenants["default"].Policy; p.HoldTimeout != policy.DefaultHoldTimeout || p.MaxHeld != policy.DefaultMaxHeld {
		t.Errorf("default: HoldTimeout %v, MaxHeld %d", p.HoldTimeout, p.MaxHeld)
	}
}
