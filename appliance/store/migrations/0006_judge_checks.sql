-- 0006: judge agreement (`parley judge-check`): how far each judge model agreed with the labelled
-- transcripts. The go-live gate counts criteria judged by a model only once it has a check here
-- with a kappa at or above the bar; until then criteria results are advisory.
CREATE TABLE judge_checks (
    id          INTEGER PRIMARY KEY,
    model       TEXT NOT NULL CONSTRAINT judge_model_is_not_empty CHECK (model <> ''),
    items       INTEGER NOT NULL CONSTRAINT judge_check_has_items CHECK (items > 0),
    agreed      INTEGER NOT NULL CONSTRAINT agreed_within_items CHECK (agreed BETWEEN 0 AND items),
    kappa       REAL NOT NULL,
    set_sha256  TEXT NOT NULL,
    created_at  TEXT NOT NULL
) STRICT;

CREATE INDEX judge_checks_by_model ON judge_checks (model);
