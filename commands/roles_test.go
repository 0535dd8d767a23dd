package commands

import (
	"context"
	"errors"
	"testing"
	"time"
)

// roleRooms adds the role commands to the in-test rooms.
type roleRooms struct {
	rooms
	roles    []RoleRequest
	policies []string
}

func (r *roleRooms) SetRole(_ context.Context, req RoleRequest) (int, error) {
	r.roles = append(r.roles, req)
	return 1, nil
}

func (r *roleRooms) SetPolicy(_ context.Context, room, policy string) error {
	r.policies = append(r.policies, room+":"+policy)
	return nil
}

// TestAssignRoleAndSetPolicy: the role and policy commands are validated
// once here, whatever interface they came from, and reach the rooms with
// the room prepared.
func TestAssignRoleAndSetPolicy(t *testing.T) {
	f := newFixture(t)
	rr := &roleRooms{}
	f.svc.rooms = rr
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	room := "[Acme]Room@" + governed
	for _, tc := range []struct {
		name string
		req  RoleRequest
		ok   bool
	}{
		{"by participant", RoleRequest{Room: room, Participant: "p1", Role: RoleViewer}, true},
		{"by user id until", RoleRequest{Room: room, UserID: "u1", Role: RoleModerator, Until: now.Add(time.Hour)}, true},
		{"default", RoleRequest{Room: room, UserID: "u1", Role: RoleDefault}, true},
		{"both targets", RoleRequest{Room: room, Participant: "p1", UserID: "u1", Role: RoleViewer}, false},
		{"no target", RoleRequest{Room: room, Role: RoleViewer}, false},
		{"unknown role", RoleRequest{Room: room, UserID: "u1", Role: "owner"}, false},
		{"end in the past", RoleRequest{Room: room, UserID: "u1", Role: RoleViewer, Until: now.Add(-time.Second)}, false},
		{"default with an end", RoleRequest{Room: room, UserID: "u1", Role: RoleDefault, Until: now.Add(time.Hour)}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(rr.roles)
			_, err := f.svc.AssignRole(context.Background(), tc.req, "test")
			if tc.ok != (err == nil) || !tc.ok && !errors.Is(err, ErrInvalid) {
				t.Fatalf("AssignRole = %v, want ok %t", err, tc.ok)
			}
			if tc.ok && (len(rr.roles) != before+1 || rr.roles[before].Room != "[acme]room@"+governed) {
				t.Errorf("rooms got %+v", rr.roles[before:])
			}
		})
	}
	if err := f.svc.SetPolicy(context.Background(), room, PolicyAllOwners, "test"); err != nil || len(rr.policies) != 1 {
		t.Errorf("SetPolicy = %v, %v", err, rr.policies)
	}
	if err := f.svc.SetPolicy(context.Background(), room, "everyone", "test"); !errors.Is(err, ErrInvalid) {
		t.Errorf("SetPolicy of an unknown policy = %v", err)
	}
}
