-- 0004: what is learned about a call after it ends. Each evaluation criterion of the agent file
-- judged on the transcript (success / failure / unknown, the rationale, the turn it hinges on),
-- and each data-collection field extracted and checked against its type. Written by the
-- post-call evaluator, never on the call's latency path; one row per call and criterion / field.
CREATE TABLE call_evaluations (
    id           INTEGER PRIMARY KEY,
    call_id      TEXT NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
    criterion    TEXT NOT NULL CONSTRAINT criterion_is_not_empty CHECK (criterion <> ''),
    result       TEXT NOT NULL CONSTRAINT evaluation_result_is_known CHECK (result IN ('success', 'failure', 'unknown')),
    rationale    TEXT NOT NULL,
    turn         INTEGER CONSTRAINT evaluation_turn_is_a_position CHECK (turn >= 0),
    judge_model  TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    UNIQUE (call_id, criterion)
) STRICT;

CREATE INDEX call_evaluations_by_criterion ON call_evaluations (criterion, result);

CREATE TABLE call_data (
    id          INTEGER PRIMARY KEY,
    call_id     TEXT NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
    field       TEXT NOT NULL CONSTRAINT data_field_is_not_empty CHECK (field <> ''),
    value       TEXT CONSTRAINT data_value_is_json CHECK (value IS NULL OR json_valid(value)),
    valid       INTEGER NOT NULL CONSTRAINT data_valid_is_boolean CHECK (valid IN (0, 1)),
    problem     TEXT,
    created_at  TEXT NOT NULL,
    UNIQUE (call_id, field)
) STRICT;

CREATE INDEX call_data_by_field ON call_data (field, value);
