-- Schema 6: certificate numbers, one counter per series, taken atomically: a number is
-- never given twice, also across restarts and concurrent requests.
CREATE TABLE certificate_counters (
    series TEXT PRIMARY KEY,
    last   BIGINT NOT NULL CHECK (last > 0)
);
