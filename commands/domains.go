package commands

import "github.com/gavelxmpp/gavel/auth"

// RoomMapper is implemented by Rooms that know other names for rooms than
// the server's: the JaaS domain form "name@conference.<appId>.<base>" for
// the tenant's room "[appId]name@conference.<base>" (Jitsi's
// muc_domain_mapper). The command layer then acts on the room MapRoom
// returns, and its tenant is the app id, so that JaaS scripts work
// unchanged: the admin token's sub is the app id, and bans made with the
// app id cover those rooms.
type RoomMapper interface {
	// MapRoom returns the room the server holds for ar (ar itself when
	// there is no other name).
	MapRoom(ar auth.Room) auth.Room
}
