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
local timer = require "util.timer";
local time = require "util.time";

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

-- Requests to gavel, sent and waited for without module:send_iq: that
-- creates, for every request, a promise chain (each step a timer task),
-- a timer, and two event hooks added and removed again (util.events
-- rebuilds the handler list of each), and most of Prosody's CPU during
-- joins is Lua garbage collection. Here every request gets an id of this
-- module's own (a random prefix per load and a counter); one permanent
-- hook takes the answers (iq-result and iq-error to the MUC's domain) of
-- the requests waited for; and since every request waits the same
-- gavel_bridge_timeout, the deadlines come in the order the requests were
-- sent: one queue, checked by one timer that runs only while requests
-- wait, expires them.
local id_prefix = "gb" .. id.short() .. ".";
local id_seq = 0;
local now = time.monotonic or time.now;
local waiting = {}; -- id -> wake (util.async's done), until answered or expired
local answers = {}; -- id -> the answer, from its arrival until its join reads it
local queue_id, queue_at = {}, {}; -- deadlines in order, from queue_head to queue_tail
local queue_head, queue_tail = 1, 0;
local timer_running = false;
-- The timer does not wake for each deadline: a timeout ends up to tick late.
local tick = math.min(0.1, timeout / 10);

local function next_id()
	id_seq = id_seq + 1;
	return id_prefix .. id_seq;
end

-- expire wakes the joins whose time ran out (they find no answer), and
-- tells the timer when to run again.
local function expire()
	local t = now();
	while queue_head <= queue_tail do
		local at = queue_at[queue_head];
		if at > t then
			return math.max(at - t, tick);
		end
		local rid = queue_id[queue_head];
		queue_id[queue_head], queue_at[queue_head] = nil, nil;
		queue_head = queue_head + 1;
		-- A join reads its answer as soon as it is woken: one still here
		-- belongs to a join that can no longer go on.
		answers[rid] = nil;
		local wake = waiting[rid];
		if wake then
			waiting[rid] = nil;
			local ok, err = pcall(wake);
			if not ok then
				module:log("error", "waking a join after its timeout: %s", err);
			end
		end
	end
	queue_head, queue_tail = 1, 0;
	timer_running = false;
	return nil;
end

-- ask sends iq (a set with an id from next_id) to gavel and waits
-- (util.async, so only where async.ready()) for the answer: gavel's
-- result or error, the error the server made for gavel (not connected),
-- or nil when gavel_bridge_timeout ran out.
local function ask(iq)
	local rid = iq.attr.id;
	local wait, wake = async.waiter();
	waiting[rid] = wake;
	queue_tail = queue_tail + 1;
	queue_id[queue_tail], queue_at[queue_tail] = rid, now() + timeout;
	if not timer_running then
		timer_running = true;
		timer.add_task(timeout, expire);
	end
	-- The server's error for a gavel that is not connected comes back
	-- before send returns: wake is then called before wait, which
	-- returns at once.
	module:send(iq);
	wait();
	local answer = answers[rid];
	answers[rid] = nil;
	return answer;
end

-- take_answer takes the answer (from gavel, or from the server for gavel)
-- to a request that is waited for. Any other answer with one of this
-- module's ids (after the timeout, to a room event, or from anyone but
-- gavel) ends here too, unused.
local function take_answer(event)
	local stanza = event.stanza;
	local attr = stanza.attr;
	local typ = attr.type;
	if typ ~= "result" and typ ~= "error" then return; end
	local rid = attr.id;
	local wake = waiting[rid];
	if wake and attr.from == gavel then
		waiting[rid] = nil;
		answers[rid] = stanza;
		wake();
		return true;
	end
	if rid and rid:find(id_prefix, 1, true) == 1 then
		if typ == "error" then
			module:log("debug", "error from %s to %s, which nobody waits for: %s", attr.from, rid,
				tostring(select(2, stanza:get_error())));
		end
		return true;
	end
end
-- Ahead of mod_iq, which would fire iq-result/host/<id> for each.
module:hook("iq/host", take_answer, 1);

-- requests_in_flight (for tests and the admin shell): the joins waiting
-- for gavel, the deadlines queued (waiting or already answered), and the
-- answers not yet read by their join.
function requests_in_flight() -- luacheck: ignore 111
	local n, m = 0, 0;
	for _ in pairs(waiting) do n = n + 1; end
	for _ in pairs(answers) do m = m + 1; end
	return n, queue_tail - queue_head + 1, m;
end

-- present tells whether bare has an occupant in room (another session).
-- It reads the room's occupants without room:each_occupant, which copies
-- each one.
local function present(room, bare)
	local occupants = room._occupants;
	if type(occupants) == "table" then
		for _, o in pairs(occupants) do
			if o.bare_jid == bare then return true; end
		end
		return false;
	end
	for _, o in room:each_occupant() do
		if o.bare_jid == bare then return true; end
	end
	return false;
end

-- set_affiliation_quietly sets bare's affiliation in room. For a JID with
-- no occupant in the room it is written without the announcement Prosody
-- sends the occupants for absent JIDs (XEP-0045 example 195): a join
-- presence that follows carries it to everyone. A JID already present
-- (another session) gets it through set_affiliation, which tells the room.
local function set_affiliation_quietly(room, bare, aff, reason)
	if present(room, bare) or type(room._affiliations) ~= "table" then
		return room:set_affiliation(true, bare, aff, reason);
	end
	room._affiliations[bare] = aff ~= "none" and aff or nil;
	if aff == "none" and room._affiliation_data then
		room._affiliation_data[bare] = nil;
	end
	room:save();
	return true;
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
		set_affiliation_quietly(room, bare, "none");
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
			set_affiliation_quietly(event.room, bare, "owner");
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

-- apply sets what gavel granted (set_affiliation_quietly), before the
-- join goes on. An affiliation the JID already has (most joins: none) is
-- not written again.
local function apply(event, answer)
	local room, occupant = event.room, event.occupant;
	local aff = answer.attr.affiliation;
	local role = answer.attr.role;
	if not valid_affiliations[aff] then aff = nil; end
	if not valid_roles[role] then role = nil; end
	local bare = occupant.bare_jid or jid.bare(event.stanza.attr.from);
	local current = room:get_affiliation(bare) or "none";
	if aff and current ~= aff then
		set_affiliation_quietly(room, bare, aff, answer.attr.reason);
		current = aff;
	end
	occupant.role = role or room:get_default_role(current);
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
	local iq = st.iq({ type = "set", from = module.host, to = gavel, id = next_id() })
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
	local reply = ask(iq);
	room._gavel_waiting = room._gavel_waiting - 1;
	if room.destroying then
		-- Destroyed while gavel was asked: the join must not bring it back.
		origin.send(st.error_reply(stanza, "cancel", "item-not-found", "the room was destroyed", room.jid));
		return true;
	end
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
	return unavailable(event, "no answer within " .. timeout .. " s");
end, 0);

-- notify tells gavel of a room event at once; the answer is not awaited
-- (take_answer drops it, and logs an error at debug level).
local function notify(room, what)
	if not gavel or skipped_room(room.jid) then return; end
	module:send(st.iq({ type = "set", from = module.host, to = gavel, id = next_id() })
		:tag("room", { xmlns = NS, jid = room.jid, event = what }):up());
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

	-- gavel's affiliation changes for JIDs not in the room (resets after a
	-- leave, revocations at expiry), written without the announcement.
	module:hook("iq-set/host/" .. NS .. ":affiliation", function(event)
		local origin, stanza = event.origin, event.stanza;
		if not from_gavel(stanza) then
			origin.send(st.error_reply(stanza, "auth", "forbidden"));
			return true;
		end
		local q = stanza.tags[1];
		local room_jid = jid.prep(q.attr.room or "");
		local bare = jid.prep(q.attr.jid or "");
		local aff = q.attr.affiliation;
		if not room_jid or not bare or jid.resource(bare) or not valid_affiliations[aff] then
			origin.send(st.error_reply(stanza, "modify", "bad-request", "want room, a bare jid and an affiliation other than outcast"));
			return true;
		end
		local room = mod_muc.get_room_from_jid(room_jid);
		if not room then
			origin.send(st.error_reply(stanza, "cancel", "item-not-found", "no such room"));
			return true;
		end
		if (room:get_affiliation(bare) or "none") ~= aff then
			local ok, typ, cond = set_affiliation_quietly(room, bare, aff, q.attr.reason);
			if not ok then
				origin.send(st.error_reply(stanza, typ or "cancel", cond or "not-allowed"));
				return true;
			end
		end
		origin.send(st.reply(stanza));
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
