-- mod_gavel_bridge: asks gavel, before each join, what the joiner gets.
--
-- Load it on the MUC component gavel governs. It holds no policy and no
-- keys: at muc-occupant-pre-join it sends gavel (an XMPP component, over
-- the component link) the joiner's real JID, nick, the token its session
-- logged in with (Jitsi's mod_auth_token keeps it as session.auth_token)
-- and the <identity/> the server stamped into the presence, waits for the
-- answer without blocking Prosody (util.async), and applies it before the
-- join goes on: the affiliation and role (so the first presence is right),
-- or gavel's refusal, error for error. It also tells gavel at once when a
-- room is created or destroyed, and reports every occupant presence, so
-- that gavel governs the rooms without being in them. The protocol is
-- docs/protocol.md, section "The bridge" (urn:gavel:bridge:0); setup is
-- docs/jitsi.md.
--
-- Options (on the MUC component):
--   gavel_bridge_component = "mod.example.com"  -- gavel's JID (required)
--   gavel_bridge_timeout = 2                    -- seconds to wait for gavel
--   gavel_bridge_fail = "closed"                -- or "open": on timeout or
--                                                  when gavel is unreachable
--   gavel_bridge_bypass = { "focus@auth.example.com", "recorder.example.com" }
--                                               -- JIDs or domains never asked
--                                                  (Jicofo's focus, Jibri)
--   gavel_bridge_skip_rooms = { "__jicofo-health-check" } -- name prefixes
--   gavel_bridge_occupants = true               -- report occupants to gavel
--                                                  (false: gavel enters the
--                                                  rooms as an occupant)

local async = require "util.async";
local jid = require "util.jid";
local st = require "util.stanza";
local id = require "util.id";

local NS = "urn:gavel:bridge:0";
local NS_KNOCK = "urn:gavel:knock:0";

local gavel = module:get_option_string("gavel_bridge_component");
if not gavel then
	module:log("error", "gavel_bridge_component is not set: every join will be refused");
end
local timeout = module:get_option_number("gavel_bridge_timeout", 2);
local fail_open = module:get_option_string("gavel_bridge_fail", "closed") == "open";
local bypass = module:get_option_set("gavel_bridge_bypass", {});
local skip_rooms = module:get_option_array("gavel_bridge_skip_rooms", { "__jicofo-health-check" });

local valid_affiliations = { owner = true, admin = true, member = true, none = true };
local valid_roles = { moderator = true, participant = true, visitor = true };

-- Counters: Prosody 0.12 has module:measure; 13 keeps it for modules.
local function counter(name)
	local ok, m = pcall(module.measure, module, name, "rate");
	if ok and m then return m; end
	return function() end;
end
local count_asked = counter("asked");
local count_timeout = counter("timeout");
local count_unreachable = counter("unreachable");
local count_refused = counter("refused");
local count_failed_open = counter("failed_open");

local function bypassed(real_jid)
	local bare = jid.bare(real_jid);
	local host = jid.host(real_jid);
	return host == gavel or bypass:contains(bare) or bypass:contains(host);
end

local function skipped_room(room_jid)
	local node = jid.node(room_jid) or "";
	for _, prefix in ipairs(skip_rooms) do
		if node:sub(1, #prefix) == prefix then return true; end
	end
	return false;
end

-- write_affiliation sets bare's affiliation in room. For a JID with no
-- occupant in the room it is written without the announcement Prosody
-- sends for absent JIDs (XEP-0045 example 195): the join presence that
-- follows carries it to everyone. A JID already present (another
-- session) gets it through set_affiliation, which tells the room.
local function write_affiliation(room, bare, aff, reason)
	local present = false;
	for _, o in room:each_occupant() do
		if o.bare_jid == bare then present = true; break; end
	end
	if present or type(room._affiliations) ~= "table" then
		room:set_affiliation(true, bare, aff, reason);
		return;
	end
	room._affiliations[bare] = aff ~= "none" and aff or nil;
	if aff == "none" and room._affiliation_data then
		room._affiliation_data[bare] = nil;
	end
	room:save();
end

-- Prosody makes a new room's creator its owner (muc-room-pre-create,
-- priority -1) before pre-join asks gavel about the creator, and keeps
-- the room meanwhile: gavel, reading the owner list in that window (for
-- another joiner, Jicofo's focus), took that owner for an existing
-- affiliation and let a participant in as owner; a refused creator stayed
-- owner for its next join. The ownership is taken back here, before the
-- room is kept (priority -1000): the creator gets what gavel answers, like
-- any joiner. When the module fails open, the creator gets it back.
module:hook("muc-room-pre-create", function(event)
	local room, from = event.room, event.stanza.attr.from;
	if not gavel or bypassed(from) or skipped_room(room.jid) then return; end
	local bare = jid.bare(from);
	if room:get_affiliation(bare) == "owner" then
		write_affiliation(room, bare, "none");
		room._gavel_creator = bare;
	end
end, -2);

-- unborn destroys the room a refused join would have created: nobody is
-- in it and, unless another join into it waits for gavel, nobody will be
-- (as not persistent: it leaves no tombstone). Left, it would stay in
-- memory, empty. A join that waits goes on into the room as its own
-- answer says.
local function unborn(event)
	local room = event.room;
	if event.is_new_room and not room:has_occupant() and (room._gavel_waiting or 0) == 0 and not room.destroying then
		room:set_persistent(false);
		room:destroy();
	end
end

-- unavailable refuses the join when gavel cannot answer (fail closed), or
-- lets it go on with the server's defaults (fail open).
local function unavailable(event, why)
	if fail_open then
		count_failed_open();
		module:log("warn", "gavel did not answer for %s (%s): join allowed (gavel_bridge_fail = open)", event.stanza.attr.from, why);
		local bare = jid.bare(event.stanza.attr.from);
		if event.is_new_room and event.room._gavel_creator == bare then
			-- The server's default for a creator.
			write_affiliation(event.room, bare, "owner");
			event.occupant.role = event.room:get_default_role("owner");
		end
		return nil;
	end
	module:log("warn", "gavel did not answer for %s (%s): join refused", event.stanza.attr.from, why);
	event.origin.send(st.error_reply(event.stanza, "wait", "service-unavailable",
		"moderation is unavailable: try again in a moment", event.room.jid));
	unborn(event);
	return true;
end

-- refuse passes gavel's refusal on to the joiner: the same type,
-- condition, text and application condition.
local function refuse(event, err_stanza)
	count_refused();
	local typ, cond, text, app = err_stanza:get_error();
	local reply = st.error_reply(event.stanza, typ or "cancel", cond or "not-allowed", text, event.room.jid);
	if app and app.attr.xmlns == NS_KNOCK then
		reply:get_child("error"):add_child(st.stanza(app.name, { xmlns = NS_KNOCK }));
	end
	event.origin.send(reply);
	unborn(event);
	return true;
end

-- apply sets what gavel granted (write_affiliation), before the join
-- goes on.
local function apply(event, answer)
	local room, occupant = event.room, event.occupant;
	local aff = answer.attr.affiliation;
	local role = answer.attr.role;
	if not valid_affiliations[aff] then aff = nil; end
	if not valid_roles[role] then role = nil; end
	local bare = jid.bare(event.stanza.attr.from);
	if aff and room:get_affiliation(bare) ~= aff then
		write_affiliation(room, bare, aff, answer.attr.reason);
	end
	occupant.role = role or room:get_default_role(aff or room:get_affiliation(bare));
end

module:hook("muc-occupant-pre-join", function(event)
	local room, stanza, origin = event.room, event.stanza, event.origin;
	local real_jid = stanza.attr.from;
	if bypassed(real_jid) or skipped_room(room.jid) then return; end
	if not gavel then
		return unavailable(event, "gavel_bridge_component is not set");
	end
	if not async.ready() then
		-- Not in a context that can wait (no async runner): decide as if
		-- gavel were unreachable.
		return unavailable(event, "cannot wait here");
	end
	local iq = st.iq({ type = "set", from = module.host, to = gavel, id = id.short() })
		:tag("join", {
			xmlns = NS, room = room.jid, jid = real_jid,
			nick = jid.resource(event.occupant.nick),
			new = event.is_new_room and "true" or nil,
		});
	local token = origin and origin.type == "c2s" and origin.full_jid == real_jid and origin.auth_token;
	if type(token) == "string" and token ~= "" then
		iq:text_tag("token", token);
	end
	local identity = stanza:get_child("identity");
	if identity then
		iq:add_child(st.clone(identity));
	end
	iq:up();
	count_asked();
	-- Joins waiting for gavel keep a room whose creator was refused (unborn).
	room._gavel_waiting = (room._gavel_waiting or 0) + 1;
	local res, err = async.wait_for(module:send_iq(iq, nil, timeout));
	room._gavel_waiting = room._gavel_waiting - 1;
	if room.destroying then
		-- Destroyed while gavel was asked: the join must not bring it back.
		origin.send(st.error_reply(stanza, "cancel", "item-not-found", "the room was destroyed", room.jid));
		return true;
	end
	-- Prosody resolves (rather than rejects) with an error stanza the
	-- server made at once (gavel not connected): look at the type.
	local reply = res and res.stanza or err and err.context and err.context.stanza;
	if reply and reply.attr.type == "result" then
		local answer = reply:get_child("join", NS);
		if not answer then
			return unavailable(event, "answer without <join/>");
		end
		apply(event, answer);
		return;
	end
	if reply then
		local app = select(4, reply:get_error());
		if reply.attr.from == gavel and app and app.attr.xmlns == NS_KNOCK then
			return refuse(event, reply); -- gavel's own refusal
		end
		-- The server answered for gavel (not connected, or gone).
		count_unreachable();
		return unavailable(event, "gavel is unreachable: " .. tostring(select(2, reply:get_error())));
	end
	count_timeout();
	return unavailable(event, err and err.text or "no answer");
end, 0);

-- notify tells gavel of a room event at once; the answer is not awaited.
local function notify(room, what)
	if not gavel or skipped_room(room.jid) then return; end
	local iq = st.iq({ type = "set", from = module.host, to = gavel, id = id.short() })
		:tag("room", { xmlns = NS, jid = room.jid, event = what }):up();
	module:send_iq(iq, nil, timeout):catch(function(e)
		module:log("debug", "gavel did not take room %s %s: %s", room.jid, what, e and e.text or "?");
	end);
end

module:hook("muc-room-created", function(event) notify(event.room, "created"); end);
module:hook("muc-room-destroyed", function(event) notify(event.room, "destroyed"); end);

-- Occupants (gavel_bridge_occupants, on by default): gavel governs the
-- rooms without being in them. Every occupant presence a room broadcasts
-- is reported to gavel as it is sent (a one-way message; the component
-- stream keeps them in order), gavel may ask for a room's occupants in
-- join order and for the rooms that have occupants, and gavel may set
-- roles (kick, voice) without being a moderator occupant. Nothing here
-- decides anything: it tells and it lets gavel act.
local report_occupants = module:get_option_boolean("gavel_bridge_occupants", true);
local NS_MUC_USER = "http://jabber.org/protocol/muc#user";

local function from_gavel(stanza)
	local from = stanza.attr.from;
	return gavel and from and jid.host(from) == gavel and not jid.node(from);
end

if report_occupants and gavel then
	local mod_muc = module:depends("muc");

	-- Join order, for gavel's request: Prosody keeps occupants unordered.
	-- Microseconds, so that the order survives a reload of this module
	-- (the rooms keep their tables, a counter would start again).
	local time_now = require "util.time".now;
	local last_order = 0;
	module:hook("muc-occupant-joined", function(event)
		local room = event.room;
		local order = room._gavel_order;
		if not order then
			order = {};
			room._gavel_order = order;
		end
		local t = math.floor(time_now() * 1e6);
		if t <= last_order then t = last_order + 1; end
		last_order = t;
		order[event.nick] = t;
	end);
	module:hook("muc-occupant-left", function(event)
		local order = event.room._gavel_order;
		if order then order[event.nick] = nil; end
	end);

	-- occupant_el builds one occupant's presence as gavel would see it as
	-- a moderator occupant: the real JID, affiliation, role, the status
	-- codes of this broadcast and the identity the server stamped.
	local function occupant_el(room, occupant, presence, x, new_nick)
		local el = st.stanza("occupant", { xmlns = NS, from = occupant.nick,
			type = presence and presence.attr.type == "unavailable" and "unavailable" or nil });
		el:tag("x", { xmlns = NS_MUC_USER })
			:tag("item", { jid = occupant.jid, role = occupant.role or "none",
				affiliation = room:get_affiliation(occupant.bare_jid) or "none", nick = new_nick }):up();
		if x then
			for status in x:childtags("status") do el:add_child(status); end
			local destroy = x:get_child("destroy");
			if destroy then el:add_child(destroy); end
		end
		el:up();
		local identity = presence and presence:get_child("identity");
		if identity then el:add_child(identity); end
		return el;
	end

	module:hook("muc-broadcast-presence", function(event)
		local room = event.room;
		if skipped_room(room.jid) then return; end
		local new_nick = event.nick;
		if new_nick and new_nick ~= event.occupant.nick then
			new_nick = jid.resource(new_nick) or new_nick;
		else
			new_nick = nil;
		end
		module:send(st.message({ from = module.host, to = gavel })
			:add_child(occupant_el(room, event.occupant, event.stanza, event.x, new_nick)));
	end, -100);

	module:hook("iq-get/host/" .. NS .. ":occupants", function(event)
		local origin, stanza = event.origin, event.stanza;
		if not from_gavel(stanza) then
			origin.send(st.error_reply(stanza, "auth", "forbidden"));
			return true;
		end
		local room_jid = jid.prep(stanza.tags[1].attr.room or "");
		if not room_jid or jid.host(room_jid) ~= module.host or not jid.node(room_jid) or jid.resource(room_jid) then
			origin.send(st.error_reply(stanza, "modify", "bad-request", "room must be a room of " .. module.host));
			return true;
		end
		local room = mod_muc.get_room_from_jid(room_jid);
		local reply = st.reply(stanza):tag("occupants", { xmlns = NS, room = room_jid, exists = room and "true" or "false" });
		if room then
			local list = {};
			for _, occupant in room:each_occupant() do list[#list + 1] = occupant; end
			local order = room._gavel_order or {};
			table.sort(list, function(a, b)
				return (order[a.nick] or math.huge) < (order[b.nick] or math.huge);
			end);
			for _, occupant in ipairs(list) do
				reply:add_child(occupant_el(room, occupant, occupant:get_presence()));
			end
		end
		origin.send(reply);
		return true;
	end);

	module:hook("iq-get/host/" .. NS .. ":rooms", function(event)
		local origin, stanza = event.origin, event.stanza;
		if not from_gavel(stanza) then
			origin.send(st.error_reply(stanza, "auth", "forbidden"));
			return true;
		end
		local reply = st.reply(stanza):tag("rooms", { xmlns = NS });
		for room in mod_muc.live_rooms() do
			if not skipped_room(room.jid) and room:has_occupant() then
				reply:tag("room", { jid = room.jid }):up();
			end
		end
		origin.send(reply);
		return true;
	end);

	-- gavel sets roles and kicks from outside the room: Prosody asks a
	-- role change's actor to be a moderator occupant.
	module:hook("muc-pre-set-role", function(event)
		local actor = event.actor;
		if type(actor) == "string" and jid.host(actor) == gavel and not jid.node(actor) then
			event.allowed = true;
		end
	end);
end
