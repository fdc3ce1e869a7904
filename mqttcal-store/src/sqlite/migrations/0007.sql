-- Schema 7: certificates listed by issue date (periodic reports: a month's calibrations).
CREATE INDEX certificates_issued_at ON certificates (issued_at);
