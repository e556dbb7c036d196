-- 0002: hand-offs to a person. One row per transfer: what the colleague sees when the call
-- reaches them (reason, the agent's summary, the data collected, the transcript as heard).
CREATE TABLE handoffs (
    id          INTEGER PRIMARY KEY,
    call_id     TEXT NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
    created_at  TEXT NOT NULL,
    reason      TEXT NOT NULL CONSTRAINT handoff_reason_is_not_empty CHECK (reason <> ''),
    summary     TEXT NOT NULL,
    collected   TEXT NOT NULL DEFAULT '{}' CONSTRAINT handoff_collected_is_json CHECK (json_valid(collected)),
    transcript  TEXT NOT NULL,
    target      TEXT
) STRICT;

CREATE INDEX handoffs_by_call ON handoffs (call_id);
