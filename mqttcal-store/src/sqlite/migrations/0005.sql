-- Schema 5: a result lists the equipment it relies on (with serials and calibration due
-- dates) and the lab conditions during its measurement.
ALTER TABLE results ADD COLUMN equipment TEXT NOT NULL DEFAULT '[]';
ALTER TABLE results ADD COLUMN environment TEXT;
