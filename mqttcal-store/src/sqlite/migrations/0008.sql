-- Schema 8: a certificate is replaced by one amendment at most (a later correction amends
-- the amendment), and who replaced it is found by this index.
CREATE UNIQUE INDEX certificates_replaces ON certificates (replaces) WHERE replaces IS NOT NULL;
