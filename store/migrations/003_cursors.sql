-- Schema 3: where each gavel's command bus stands in gavel_events, so that a
-- gavel that restarts applies the commands it missed (a kick, a destroy, a
-- role for its rooms, a ban to enforce on its present occupants) instead of
-- starting at the end of the log. Written about once a second, after the
-- events were applied: a crash applies the last second's events again.
--
-- The row with the empty scope (no gavel has one) is the pruning horizon:
-- events up to that seq were deleted. A gavel whose cursor is below it
-- missed events it can no longer read.
CREATE TABLE gavel_cursors (
	scope   text PRIMARY KEY,
	seq     bigint NOT NULL,
	updated timestamptz NOT NULL DEFAULT now()
);
