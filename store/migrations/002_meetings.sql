-- Schema 2: meetings made through the API, shared by every gavel (a meeting
-- may be asked for on any shard). The meeting is kept as JSON text, as the
-- rooms' state is.
CREATE TABLE gavel_meetings (
	id      text PRIMARY KEY,
	tenant  text NOT NULL,
	start   timestamptz NOT NULL,
	meeting text NOT NULL
);
CREATE INDEX gavel_meetings_tenant ON gavel_meetings (tenant, start, id);
