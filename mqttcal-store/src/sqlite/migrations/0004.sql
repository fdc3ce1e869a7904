-- Schema 4: what each sender announced of its streams (the last `seq` on `meas` from `bye`,
-- heartbeats and datad's census, none yet from `hello`; and whether `bye` closed the
-- stream), so the gap report survives a restart of datad.
CREATE TABLE streams (
    origin     TEXT NOT NULL,
    epoch      INTEGER NOT NULL,
    announced  INTEGER,
    closed     INTEGER NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (origin, epoch)
);
CREATE INDEX streams_updated ON streams (updated_at);
