-- Schema 3: readings without a calibration job are no longer entered in the job index (a
-- query by job always names one, so a partial index serves it).
DROP INDEX measurements_job;
CREATE INDEX measurements_job ON measurements (job) WHERE job IS NOT NULL;
