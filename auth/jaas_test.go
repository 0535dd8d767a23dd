package auth

import "testing"

func TestTenantDomainRoom(t *testing.T) {
	base := func(d string) bool { return d == "conference.meet.example" || d == "muc.example.test" }
	for _, tc := range []struct {
		in, want, tenant string
		mapped           bool
	}{
		{"standup@conference.acme.meet.example", "[acme]standup@conference.meet.example", "acme", true},
		{"Standup@Conference.ACME.meet.example", "[acme]standup@conference.meet.example", "acme", true},
		{"standup@muc.app1.example.test", "[app1]standup@muc.example.test", "app1", true},
		// Already in the server's form, on the base itself, or on a domain
		// whose base is not governed: unchanged.
		{"[acme]standup@conference.meet.example", "[acme]standup@conference.meet.example", "acme", false},
		{"standup@conference.meet.example", "standup@conference.meet.example", "meet.example", false},
		{"standup@conference.acme.other.example", "standup@conference.acme.other.example", "acme.other.example", false},
		{"standup@conference.example", "standup@conference.example", "example", false},
	} {
		r, err := ParseRoom(tc.in)
		if err != nil {
			t.Fatal(err)
		}
		got, mapped := TenantDomainRoom(r, base)
		if got.JID != tc.want || mapped != tc.mapped || got.Tenant != tc.tenant {
			t.Errorf("%s: got %s (tenant %q, mapped %v), want %s (tenant %q, mapped %v)", tc.in, got.JID, got.Tenant, mapped, tc.want, tc.tenant, tc.mapped)
		}
	}
}
