-- Measurements as labd (or any node) publishes them on `meas`.
CREATE TABLE measurements (
    id          BIGSERIAL PRIMARY KEY,
    dedup_key   TEXT NOT NULL UNIQUE,
    origin      TEXT NOT NULL,
    epoch       BIGINT,
    seq         BIGINT,
    sent_at     DOUBLE PRECISION NOT NULL,
    acquired    DOUBLE PRECISION,
    standard    TEXT,
    src         JSONB,
    value       DOUBLE PRECISION NOT NULL,
    unit        TEXT,
    nplc        DOUBLE PRECISION,
    ndigits     INTEGER,
    range_v     DOUBLE PRECISION,
    mode        TEXT,
    pol         TEXT,
    job         TEXT,
    raw         TEXT,
    origin_uid  JSONB,
    environment JSONB,
    payload     TEXT NOT NULL,
    stored_at   DOUBLE PRECISION NOT NULL
);
CREATE INDEX measurements_standard_time ON measurements (standard, acquired);
CREATE INDEX measurements_sent ON measurements (sent_at);
CREATE INDEX measurements_job ON measurements (job);
CREATE INDEX measurements_origin ON measurements (origin, epoch, seq);
