-- gavel's shared store, schema 1. Every statement runs in one transaction
-- with the version row, so a migration is applied whole or not at all.
-- JSON is kept in text columns: jsonb refuses \u0000, which outside input
-- (a kick reason) may hold.

-- Bans: the truth. Every change is also written to gavel_events in the same
-- transaction, which is how the other gavels' caches follow.
CREATE TABLE gavel_bans (
	tenant  text NOT NULL,
	kind    text NOT NULL,
	value   text NOT NULL,
	reason  text NOT NULL DEFAULT '',
	by_who  text NOT NULL DEFAULT '',
	created timestamptz NOT NULL,
	expires timestamptz,
	PRIMARY KEY (tenant, kind, value)
);
CREATE INDEX gavel_bans_expires ON gavel_bans (expires) WHERE expires IS NOT NULL;

-- Outcasts and governed-room state belong to one gavel (scope: its component
-- JID): each shard restores its own rooms.
CREATE TABLE gavel_outcasts (
	scope  text NOT NULL,
	tenant text NOT NULL,
	kind   text NOT NULL,
	value  text NOT NULL,
	room   text NOT NULL,
	jid    text NOT NULL,
	PRIMARY KEY (scope, tenant, kind, value, room, jid)
);

CREATE TABLE gavel_rooms (
	scope   text NOT NULL,
	room    text NOT NULL,
	state   text NOT NULL,
	updated timestamptz NOT NULL,
	PRIMARY KEY (scope, room)
);

-- The log of changes and commands, the command bus. seq is taken from
-- gavel_events_seq under a transaction-scoped advisory lock, so sequence
-- numbers become visible in order: a reader that has seen seq N has seen
-- every seq below it. NOTIFY gavel_events carries the seq; a gavel that
-- missed notifications reads the table from its last seq.
CREATE SEQUENCE gavel_events_seq;
CREATE TABLE gavel_events (
	seq     bigint PRIMARY KEY,
	kind    text NOT NULL,
	origin  text NOT NULL,
	body    text NOT NULL,
	created timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX gavel_events_created ON gavel_events (created);

-- Which gavel governs which MUC service. A row is written by the gavel that
-- holds the MUC's session advisory lock, to name it to a second one.
CREATE TABLE gavel_governors (
	muc     text PRIMARY KEY,
	scope   text NOT NULL,
	claimed timestamptz NOT NULL
);

-- Roles set by admins and meetings come in a later migration (002, 003),
-- as tables keyed like the bans (tenant, room, ...), with their changes
-- written to gavel_events as kinds "role.set", "meeting.put" and so on.
