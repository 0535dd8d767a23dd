// Package component is gavel's XMPP side. It only executes: every decision
// is package policy's, tokens are package auth's, durable state package
// store's, and admin commands arrive through package commands, whose Rooms
// interface *Moderation implements.
//
// Where things are:
//
// The session layer (one XEP-0114 connection and its life):
//   - component.go: Component: dial, reconnect with backoff, serve a session.
//   - session.go: the connection, the read loop, ordered writes.
//   - tracker.go: the IQ tracker: random ids, answers accepted only from
//     the JID asked, a deadline on every entry.
//   - mux.go, handle.go: dispatch by registration; disco, ping, version.
//   - instance.go: detecting a second gavel on the same component name.
//   - wire.go: the stanzas gavel reads and the XML it writes.
//   - metrics.go, clock.go: metrics and the injectable clock.
//
// The room (one actor per governed room):
//   - room.go: the worker, the join/leave state machine with timeouts, and
//     perform, the one executor of policy.Action.
//   - persist.go: the room's governing state in the store, restored and
//     rejoined after gavel's restart.
//   - moderation.go: Moderation: the rooms, routing events to them,
//     connect and disconnect.
//
// Features (each registers its handlers and owns its state):
//   - knock.go, admission.go: the knock protocol and its admission (rate
//     limits, floods, outcomes).
//   - bridge.go: requests from mod_gavel_bridge at pre-join.
//   - watch.go: rooms of a bridged MUC governed from outside, from the
//     module's occupant reports.
//   - discover.go, identity.go: Jitsi mode without the bridge (polling,
//     trusted <identity/>).
//   - adhoc.go: XEP-0050 commands for admins.
//   - commands.go, roles.go, settings.go: the command layer's Rooms (bans,
//     outcasts, kick, destroy, roles, policy switches).
//   - domains.go: JaaS room names (tenant subdomains).
//   - servercheck.go: the connect-time check that gavel is owner where it
//     must be.
//   - snapshot_view.go: the console's read-only view of rooms.
//   - reload.go: applying a reloaded config.
package component
