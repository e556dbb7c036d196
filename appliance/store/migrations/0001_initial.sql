-- 0001: the first schema: agents and their versions, calls with their turns, latency spans and
-- tool calls, and the hash-chained audit log.
--
-- Conventions (appliance/store/records.py mirrors the enumerations):
--   *_at   wall-clock time: UTC ISO-8601 text, 'YYYY-MM-DDTHH:MM:SS.ffffffZ', so text order is
--          time order. For people and regulators.
--   *_ns   host monotonic clock (CLOCK_MONOTONIC) in integer nanoseconds, shared by every process
--          on the appliance. For latency arithmetic within one boot; never a date.
--   JSON   TEXT checked with json_valid().
--   Tables are STRICT, so a wrong type is refused instead of silently stored.
-- The runner wraps this file and its schema_migrations row in one transaction: no BEGIN/COMMIT here.

CREATE TABLE agents (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE CONSTRAINT agent_name_is_not_empty CHECK (name <> ''),
    created_at  TEXT NOT NULL
) STRICT;

CREATE TABLE agent_versions (
    id                  INTEGER PRIMARY KEY,
    agent_id            INTEGER NOT NULL REFERENCES agents (id),
    number              INTEGER NOT NULL CONSTRAINT version_numbers_start_at_1 CHECK (number >= 1),
    content_hash        TEXT NOT NULL CONSTRAINT content_hash_is_sha256 CHECK (length(content_hash) = 64),
    author              TEXT NOT NULL,
    message             TEXT NOT NULL,
    lowered_bar_reason  TEXT,
    content             TEXT NOT NULL CONSTRAINT content_is_json CHECK (json_valid(content)),
    created_at          TEXT NOT NULL,
    UNIQUE (agent_id, number),
    UNIQUE (agent_id, content_hash)
) STRICT;

CREATE TABLE calls (
    id                TEXT PRIMARY KEY CONSTRAINT call_id_is_a_uuid CHECK (length(id) = 36),
    agent_version_id  INTEGER NOT NULL REFERENCES agent_versions (id),
    channel           TEXT NOT NULL CONSTRAINT call_channel_is_known
                          CHECK (channel IN ('sip', 'file', 'local', 'test')),
    caller            TEXT,
    started_at        TEXT NOT NULL,
    ended_at          TEXT CONSTRAINT call_ends_after_it_starts CHECK (ended_at >= started_at),
    outcome           TEXT CONSTRAINT call_outcome_is_known
                          CHECK (outcome IN ('completed', 'escalated', 'abandoned', 'failed')),
    rollout_branch    TEXT,
    metadata          TEXT NOT NULL DEFAULT '{}' CONSTRAINT call_metadata_is_json CHECK (json_valid(metadata)),
    CONSTRAINT an_ended_call_has_an_outcome CHECK ((ended_at IS NULL) = (outcome IS NULL))
) STRICT;

CREATE INDEX calls_by_agent_version ON calls (agent_version_id);
CREATE INDEX calls_by_start ON calls (started_at);

CREATE TABLE turns (
    id            INTEGER PRIMARY KEY,
    call_id       TEXT NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
    position      INTEGER NOT NULL CONSTRAINT turn_positions_start_at_0 CHECK (position >= 0),
    role          TEXT NOT NULL CONSTRAINT turn_role_is_known CHECK (role IN ('caller', 'agent', 'tool')),
    text          TEXT NOT NULL,
    started_ns    INTEGER,
    ended_ns      INTEGER CONSTRAINT turn_ends_after_it_starts
                      CHECK (ended_ns IS NULL OR (started_ns IS NOT NULL AND ended_ns >= started_ns)),
    interrupted   INTEGER NOT NULL DEFAULT 0 CHECK (interrupted IN (0, 1)),
    heard_text    TEXT,
    kb_chunk_ids  TEXT NOT NULL DEFAULT '[]'
                      CONSTRAINT kb_chunk_ids_is_a_json_array CHECK (json_valid(kb_chunk_ids) AND json_type(kb_chunk_ids) = 'array'),
    CONSTRAINT only_agent_turns_are_interrupted CHECK (interrupted = 0 OR role = 'agent'),
    CONSTRAINT an_interrupted_turn_records_what_was_heard CHECK ((interrupted = 1) = (heard_text IS NOT NULL)),
    UNIQUE (call_id, position),
    -- The parent key for spans' and tool calls' (call_id, turn_id): a turn's children share its call.
    UNIQUE (call_id, id)
) STRICT;

CREATE TABLE spans (
    id       INTEGER PRIMARY KEY,
    call_id  TEXT NOT NULL,
    turn_id  INTEGER NOT NULL,
    name     TEXT NOT NULL CONSTRAINT span_name_is_known CHECK (name IN (
                 'user_speech_end', 'endpoint', 'stt_final', 'llm_first_token',
                 'first_sentence', 'tts_first_audio', 'playout_start')),
    t_ns     INTEGER NOT NULL,
    FOREIGN KEY (call_id, turn_id) REFERENCES turns (call_id, id) ON DELETE CASCADE,
    UNIQUE (turn_id, name)
) STRICT;

CREATE INDEX spans_by_call ON spans (call_id);

CREATE TABLE tool_calls (
    id          INTEGER PRIMARY KEY,
    call_id     TEXT NOT NULL,
    turn_id     INTEGER NOT NULL,
    tool        TEXT NOT NULL,
    arguments   TEXT NOT NULL CONSTRAINT tool_arguments_are_json CHECK (json_valid(arguments)),
    result      TEXT CONSTRAINT tool_result_is_json CHECK (result IS NULL OR json_valid(result)),
    status      TEXT NOT NULL CONSTRAINT tool_status_is_known CHECK (status IN ('ok', 'error', 'refused')),
    confirmed   INTEGER NOT NULL DEFAULT 0 CHECK (confirmed IN (0, 1)),
    started_ns  INTEGER NOT NULL,
    ended_ns    INTEGER NOT NULL CONSTRAINT tool_call_ends_after_it_starts CHECK (ended_ns >= started_ns),
    FOREIGN KEY (call_id, turn_id) REFERENCES turns (call_id, id) ON DELETE CASCADE
) STRICT;

CREATE INDEX tool_calls_by_call ON tool_calls (call_id);
CREATE INDEX tool_calls_by_turn ON tool_calls (turn_id);

-- Append-only and hash-chained, so it can be checked offline, without trusting this database:
--   hash = sha256_hex(prev_hash || json([seq, at, actor, action, subject, details]))
-- with the JSON compact (no spaces), not ASCII-escaped, details as its stored text, and the
-- first entry's prev_hash 64 zeros (appliance/store/audit.py). No foreign keys: entries outlive
-- what they describe.
CREATE TABLE audit_log (
    seq        INTEGER PRIMARY KEY CONSTRAINT audit_seq_starts_at_1 CHECK (seq >= 1),
    at         TEXT NOT NULL,
    actor      TEXT NOT NULL,
    action     TEXT NOT NULL,
    subject    TEXT NOT NULL,
    details    TEXT NOT NULL DEFAULT '{}' CONSTRAINT audit_details_are_json CHECK (json_valid(details)),
    prev_hash  TEXT NOT NULL UNIQUE CONSTRAINT audit_prev_hash_is_sha256 CHECK (length(prev_hash) = 64),
    hash       TEXT NOT NULL UNIQUE CONSTRAINT audit_hash_is_sha256 CHECK (length(hash) = 64)
) STRICT;

CREATE TRIGGER audit_log_refuses_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only: record a correcting entry instead');
END;

CREATE TRIGGER audit_log_refuses_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only: entries cannot be deleted');
END;

CREATE TRIGGER audit_log_entries_extend_the_chain BEFORE INSERT ON audit_log
WHEN NEW.seq IS NOT (SELECT coalesce(max(seq), 0) + 1 FROM audit_log)
  OR NEW.prev_hash IS NOT coalesce(
         (SELECT hash FROM audit_log ORDER BY seq DESC LIMIT 1),
         '0000000000000000000000000000000000000000000000000000000000000000')
BEGIN
    SELECT RAISE(ABORT, 'audit_log entries must extend the chain: seq is the last seq + 1, prev_hash the last hash');
END;
