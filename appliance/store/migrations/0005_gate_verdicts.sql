-- 0005: go-live gate verdicts (`parley agent gate vN`). The verdict and the evidence it rests on
-- (pass rates and criteria results with their intervals, against which thresholds) are kept, so
-- a go-live decision can be shown later exactly as it was made.
CREATE TABLE gate_verdicts (
    id                INTEGER PRIMARY KEY,
    agent_version_id  INTEGER NOT NULL REFERENCES agent_versions (id),
    verdict           TEXT NOT NULL CONSTRAINT gate_verdict_is_known CHECK (verdict IN ('pass', 'fail', 'inconclusive')),
    evidence          TEXT NOT NULL CONSTRAINT gate_evidence_is_json CHECK (json_valid(evidence)),
    created_at        TEXT NOT NULL
) STRICT;

CREATE INDEX gate_verdicts_by_version ON gate_verdicts (agent_version_id);
