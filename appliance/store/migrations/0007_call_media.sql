-- 0007: the media side of a SIP call. One row per call, written when it ends: the codec, what
-- was sent and received, loss and jitter as we measured them (RFC 3550) and as the phone
-- reported them in RTCP, how late our packets left, and the keys pressed.
CREATE TABLE call_media (
    call_id            TEXT PRIMARY KEY REFERENCES calls (id) ON DELETE CASCADE,
    sip_call_id        TEXT NOT NULL,
    remote             TEXT NOT NULL,
    codec              TEXT NOT NULL,
    packets_sent       INTEGER NOT NULL CONSTRAINT media_sent_counts CHECK (packets_sent >= 0),
    packets_received   INTEGER NOT NULL CONSTRAINT media_received_counts CHECK (packets_received >= 0),
    packets_lost       INTEGER NOT NULL,
    jitter_ms          REAL NOT NULL,
    remote_lost        INTEGER,
    remote_jitter_ms   REAL,
    late_packets       INTEGER NOT NULL,
    max_late_ms        REAL NOT NULL,
    dtmf_keys          TEXT NOT NULL DEFAULT '',
    ended_by           TEXT NOT NULL
) STRICT;
