-- 0003: agent test runs. One `test_runs` row per `parley test` (the version it ran, its settings),
-- one `test_results` row per run of a test, written as soon as that run ends: a crash mid-suite
-- keeps every result already stored, and the unfinished run shows with ended_at NULL.
CREATE TABLE test_runs (
    id                INTEGER PRIMARY KEY,
    agent_version_id  INTEGER NOT NULL REFERENCES agent_versions (id),
    started_at        TEXT NOT NULL,
    ended_at          TEXT CONSTRAINT test_run_ends_after_it_starts CHECK (ended_at >= started_at),
    verdict           TEXT CONSTRAINT test_run_verdict_is_known CHECK (verdict IN ('passed', 'failed')),
    settings          TEXT NOT NULL DEFAULT '{}' CONSTRAINT test_run_settings_is_json CHECK (json_valid(settings)),
    CONSTRAINT an_ended_test_run_has_a_verdict CHECK ((ended_at IS NULL) = (verdict IS NULL))
) STRICT;

CREATE INDEX test_runs_by_version ON test_runs (agent_version_id);

CREATE TABLE test_results (
    id           INTEGER PRIMARY KEY,
    test_run_id  INTEGER NOT NULL REFERENCES test_runs (id) ON DELETE CASCADE,
    test_id      TEXT NOT NULL CONSTRAINT test_id_is_not_empty CHECK (test_id <> ''),
    kind         TEXT NOT NULL CONSTRAINT test_kind_is_known CHECK (kind IN ('next_turn', 'tool_call', 'simulation')),
    tags         TEXT NOT NULL CONSTRAINT test_tags_is_json CHECK (json_valid(tags)),
    source       TEXT NOT NULL,
    run          INTEGER NOT NULL CONSTRAINT test_runs_count_from_1 CHECK (run >= 1),
    seed         INTEGER NOT NULL,
    status       TEXT NOT NULL CONSTRAINT test_status_is_known CHECK (status IN ('passed', 'failed', 'error')),
    reasons      TEXT NOT NULL CONSTRAINT test_reasons_is_json CHECK (json_valid(reasons)),
    details      TEXT NOT NULL CONSTRAINT test_details_is_json CHECK (json_valid(details)),
    seconds      REAL NOT NULL,
    created_at   TEXT NOT NULL,
    UNIQUE (test_run_id, test_id, run)
) STRICT;

CREATE INDEX test_results_by_test ON test_results (test_id);
