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
    nominal_value   DOUBLE PRECISION,
    unit            TEXT,
    location        TEXT,
    calibration_due DOUBLE PRECISION,
    checked_in      DOUBLE PRECISION,
    checked_out     DOUBLE PRECISION,
    recorded_at     DOUBLE PRECISION NOT NULL
);

-- Calibration history of each item: what its certificates say (drift fits read this).
CREATE TABLE calibrations (
    id              BIGSERIAL PRIMARY KEY,
    equipment       TEXT NOT NULL REFERENCES equipment (id),
    calibrated_at   DOUBLE PRECISION NOT NULL,
    value           DOUBLE PRECISION NOT NULL,
    unit            TEXT NOT NULL,
    uncertainty     DOUBLE PRECISION NOT NULL,
    coverage_factor DOUBLE PRECISION NOT NULL,
    certificate     TEXT,
    laboratory      TEXT,
    recorded_at     DOUBLE PRECISION NOT NULL
);
CREATE INDEX calibrations_equipment ON calibrations (equipment, calibrated_at);

-- Measurement configurations, stored once per content hash (results cite the hash, §7.11).
CREATE TABLE measurement_configs (
    config_hash TEXT PRIMARY KEY,
    body        JSONB NOT NULL,
    recorded_at DOUBLE PRECISION NOT NULL
);

-- Calibration jobs.
CREATE TABLE jobs (
    id          TEXT PRIMARY KEY,
    procedure   TEXT,
    item        TEXT,
    customer    TEXT,
    status      TEXT NOT NULL,
    config_hash TEXT,
    body        JSONB,
    created_at  DOUBLE PRECISION NOT NULL,
    updated_at  DOUBLE PRECISION NOT NULL
);

-- Results with their uncertainty budget. A correction is a new row that cites the one it
-- amends (never an update in place, §7.5); software version and configuration hash are kept
-- with every result (§7.11).
CREATE TABLE results (
    id                   BIGSERIAL PRIMARY KEY,
    job                  TEXT NOT NULL,
    quantity             TEXT NOT NULL,
    standard             TEXT,
    value                DOUBLE PRECISION NOT NULL,
    unit                 TEXT NOT NULL,
    standard_uncertainty DOUBLE PRECISION NOT NULL,
    coverage_factor      DOUBLE PRECISION NOT NULL,
    expanded_uncertainty DOUBLE PRECISION NOT NULL,
    effective_dof        DOUBLE PRECISION,
    budget               JSONB NOT NULL,
    environment_ok       BOOLEAN,
    software_version     TEXT NOT NULL,
    config_hash          TEXT,
    amends               BIGINT REFERENCES results (id),
    reason               TEXT,
    recorded_by          TEXT,
    recorded_at          DOUBLE PRECISION NOT NULL
);
CREATE INDEX results_job ON results (job);
CREATE INDEX results_standard ON results (standard, recorded_at);

-- Certificates: number, issue date, content hash; an amended certificate cites the one it
-- replaces (§7.8.8); the authorising person is recorded.
CREATE TABLE certificates (
    number        TEXT PRIMARY KEY,
    job           TEXT NOT NULL,
    issued_at     DOUBLE PRECISION NOT NULL,
    authorised_by TEXT NOT NULL,
    replaces      TEXT REFERENCES certificates (number),
    content_hash  TEXT NOT NULL,
    data          JSONB NOT NULL,
    recorded_at   DOUBLE PRECISION NOT NULL
);
CREATE INDEX certificates_job ON certificates (job);

-- The rendered documents of a certificate (PDF, DCC XML, ...), with their own hash.
CREATE TABLE certificate_documents (
    certificate TEXT NOT NULL REFERENCES certificates (number),
    kind        TEXT NOT NULL,
    media_type  TEXT NOT NULL,
    content     BYTEA NOT NULL,
    sha256      TEXT NOT NULL,
    PRIMARY KEY (certificate, kind)
);

-- The logbook (logd): append-only; each entry keeps the exact bytes it was hashed over and
-- the hash of the entry before it.
CREATE TABLE logbook (
    seq       BIGINT PRIMARY KEY,
    at        DOUBLE PRECISION NOT NULL,
    kind      TEXT NOT NULL,
    node      TEXT,
    author    TEXT,
    text      TEXT NOT NULL,
    tags      JSONB NOT NULL,
    refs      JSONB NOT NULL,
    entry     TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL
);
CREATE INDEX logbook_at ON logbook (at);

-- Signed checkpoints of the logbook chain (the key is kept outside the database).
CREATE TABLE logbook_checkpoints (
    seq       BIGINT PRIMARY KEY REFERENCES logbook (seq),
    hash      TEXT NOT NULL,
    key_id    TEXT NOT NULL,
    signature TEXT NOT NULL,
    at        DOUBLE PRECISION NOT NULL
);
