-- The records of an ISO/IEC 17025 laboratory beside its measurements. Times are seconds
-- since the Unix epoch (UTC), as on the wire.

-- Equipment register: standards and instruments, with their calibration due date
-- (17025 §6.4-6.5). A standard is checked in when it arrives and out when it leaves.
CREATE TABLE equipment (
    id              TEXT PRIMARY KEY,
    kind            TEXT NOT NULL CHECK (kind IN ('standard', 'instrument')),
    description     TEXT,
    manufacturer    TEXT,
    model           TEXT,
    serial          TEXT,
    owner           TEXT,
    nominal_value   REAL,
    unit            TEXT,
    location        TEXT,
    calibration_due REAL,
    checked_in      REAL,
    checked_out     REAL,
    recorded_at     REAL NOT NULL
);

-- Calibration history of each item: what its certificates say (drift fits read this).
CREATE TABLE calibrations (
    id              INTEGER PRIMARY KEY,
    equipment       TEXT NOT NULL REFERENCES equipment (id),
    calibrated_at   REAL NOT NULL,
    value           REAL NOT NULL,
    unit            TEXT NOT NULL,
    uncertainty     REAL NOT NULL,
    coverage_factor REAL NOT NULL,
    certificate     TEXT,
    laboratory      TEXT,
    recorded_at     REAL NOT NULL
);
CREATE INDEX calibrations_equipment ON calibrations (equipment, calibrated_at);

-- Measurement configurations, stored once per content hash (results cite the hash, §7.11).
CREATE TABLE measurement_configs (
    config_hash TEXT PRIMARY KEY,
    body        TEXT NOT NULL,
    recorded_at REAL NOT NULL
);

-- Calibration jobs.
CREATE TABLE jobs (
    id          TEXT PRIMARY KEY,
    procedure   TEXT,
    item        TEXT,
    customer    TEXT,
    status      TEXT NOT NULL,
    config_hash TEXT,
    body        TEXT,
    created_at  REAL NOT NULL,
    updated_at  REAL NOT NULL
);

-- Results with their uncertainty budget. A correction is a new row that cites the one it
-- amends (never an update in place, §7.5); software version and configuration hash are kept
-- with every result (§7.11).
CREATE TABLE results (
    id                   INTEGER PRIMARY KEY,
    job                  TEXT NOT NULL,
    quantity             TEXT NOT NULL,
    standard             TEXT,
    value                REAL NOT NULL,
    unit                 TEXT NOT NULL,
    standard_uncertainty REAL NOT NULL,
    coverage_factor      REAL NOT NULL,
    expanded_uncertainty REAL NOT NULL,
    effective_dof        REAL,
    budget               TEXT NOT NULL,
    environment_ok       INTEGER,
    software_version     TEXT NOT NULL,
    config_hash          TEXT,
    amends               INTEGER REFERENCES results (id),
    reason               TEXT,
    recorded_by          TEXT,
    recorded_at          REAL NOT NULL
);
CREATE INDEX results_job ON results (job);
CREATE INDEX results_standard ON results (standard, recorded_at);

-- Certificates: number, issue date, content hash; an amended certificate cites the one it
-- replaces (§7.8.8); the authorising person is recorded.
CREATE TABLE certificates (
    number        TEXT PRIMARY KEY,
    job           TEXT NOT NULL,
    issued_at     REAL NOT NULL,
    authorised_by TEXT NOT NULL,
    replaces      TEXT REFERENCES certificates (number),
    content_hash  TEXT NOT NULL,
    data          TEXT NOT NULL,
    recorded_at   REAL NOT NULL
);
CREATE INDEX certificates_job ON certificates (job);

-- The rendered documents of a certificate (PDF, DCC XML, ...), with their own hash.
CREATE TABLE certificate_documents (
    certificate TEXT NOT NULL REFERENCES certificates (number),
    kind        TEXT NOT NULL,
    media_type  TEXT NOT NULL,
    content     BLOB NOT NULL,
    sha256      TEXT NOT NULL,
    PRIMARY KEY (certificate, kind)
);

-- The logbook (logd): append-only; each entry keeps the exact bytes it was hashed over and
-- the hash of the entry before it.
CREATE TABLE logbook (
    seq       INTEGER PRIMARY KEY,
    at        REAL NOT NULL,
    kind      TEXT NOT NULL,
    node      TEXT,
    author    TEXT,
    text      TEXT NOT NULL,
    tags      TEXT NOT NULL,
    refs      TEXT NOT NULL,
    entry     TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL
);
CREATE INDEX logbook_at ON logbook (at);

-- Signed checkpoints of the logbook chain (the key is kept outside the database).
CREATE TABLE logbook_checkpoints (
    seq       INTEGER PRIMARY KEY REFERENCES logbook (seq),
    hash      TEXT NOT NULL,
    key_id    TEXT NOT NULL,
    signature TEXT NOT NULL,
    at        REAL NOT NULL
);
