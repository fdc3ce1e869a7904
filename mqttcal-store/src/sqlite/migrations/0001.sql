-- Measurements as labd (or any node) publishes them on `meas`.
CREATE TABLE measurements (
    id          INTEGER PRIMARY KEY,
    dedup_key   TEXT NOT NULL UNIQUE,
    origin      TEXT NOT NULL,
    epoch       INTEGER,
    seq         INTEGER,
    sent_at     REAL NOT NULL,
    acquired    REAL,
    standard    TEXT,
    src         TEXT,
    value       REAL NOT NULL,
    unit        TEXT,
    nplc        REAL,
    ndigits     INTEGER,
    range_v     REAL,
    mode        TEXT,
    pol         TEXT,
    job         TEXT,
    raw         TEXT,
    origin_uid  TEXT,
    environment TEXT,
    payload     TEXT NOT NULL,
    stored_at   REAL NOT NULL
);
CREATE INDEX measurements_standard_time ON measurements (standard, acquired);
CREATE INDEX measurements_sent ON measurements (sent_at);
CREATE INDEX measurements_job ON measurements (job);
CREATE INDEX measurements_origin ON measurements (origin, epoch, seq);
