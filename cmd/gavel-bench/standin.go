package main

import (
	"os"
	"path/filepath"
)

// standInModule is a Prosody MUC module of the benchmark's own, written for
// the comparison with moderation inside Prosody: a minimal stand-in for
// what Jitsi's token_affiliation does at pre-join (set the joiner's
// affiliation from a claim before the join is processed) and for what a
// pre-join bridge would do. It is not Jitsi's code and verifies no token:
// the claim travels inside the join's <x xmlns='http://jabber.org/protocol/muc'/>
// (never relayed to the room), so it measures the floor of any design that
// sets the affiliation in Prosody's Lua before the join: the set itself,
// its announcement and Prosody's room save, and the reset when the holder
// leaves (as gavel's clear_on_leave). Token checks in Lua (Jitsi's login
// and token_verification) would come on top.
//
// It acts only in rooms whose name starts with "lua-", so the bare and
// gavel rooms of the same Prosody are untouched.
const standInModule = "bench_prejoin_affiliation"

const standInLua = `-- written by gavel-bench: a stand-in for a pre-join affiliation set
-- (what Jitsi's token_affiliation does from the token's claims), without
-- any token verification. Rooms named lua-* only.
local jid_bare = require "util.jid".bare;
local jid_node = require "util.jid".node;
local NS = "urn:gavel:bench:claim";
local granted = {}; -- room jid -> { bare jid -> true }

module:hook("muc-occupant-pre-join", function(event)
	local room, stanza = event.room, event.stanza;
	local node = jid_node(room.jid);
	if not node or node:sub(1, 4) ~= "lua-" then return; end
	local x = stanza:get_child("x", "http://jabber.org/protocol/muc");
	local claim = x and x:get_child("claim", NS);
	if not claim then return; end
	local bare = jid_bare(stanza.attr.from);
	local want;
	if claim.attr.moderator == "1" then
		want = "owner";
	elseif room:get_members_only() then
		want = "member";
	end
	if not want or room:get_affiliation(bare) == want then return; end
	room:set_affiliation(true, bare, want);
	-- Prosody gave the occupant its role from the affiliation it had
	-- before this hook (new_occupant): give it the one of the new one.
	event.occupant.role = room:get_default_role(want);
	local g = granted[room.jid];
	if not g then g = {}; granted[room.jid] = g; end
	g[bare] = true;
end, 10);

module:hook("muc-occupant-left", function(event)
	local room, occupant = event.room, event.occupant;
	local g = granted[room.jid];
	local bare = occupant and occupant.bare_jid;
	if not g or not bare or not g[bare] then return; end
	g[bare] = nil;
	room:set_affiliation(true, bare, "none");
end);

module:hook("muc-room-destroyed", function(event)
	granted[event.room.jid] = nil;
end);
`

// writeStandIn writes the stand-in module into dir's plugin directory and
// returns that directory.
func writeStandIn(dir string) (string, error) {
	plugins := filepath.Join(dir, "plugins")
	if err := os.MkdirAll(plugins, 0o750); err != nil {
		return "", err
	}
	return plugins, os.WriteFile(filepath.Join(plugins, "mod_"+standInModule+".lua"), []byte(standInLua), 0o644)
}

// claimXML is the claim a stand-in joiner puts inside its join's muc element.
func claimXML(moderator bool) string {
	if moderator {
		return `<claim xmlns='urn:gavel:bench:claim' moderator='1'/>`
	}
	return `<claim xmlns='urn:gavel:bench:claim'/>`
}
