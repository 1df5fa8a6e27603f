-- Revocation RPCs (issue 5): the comment given with a revocation or hold is kept with it
-- (never published in CRLs), and CRL builders read revocations by revision.
ALTER TABLE revocations ADD COLUMN comment text NOT NULL DEFAULT ''
  CHECK (octet_length(comment) <= 256);
CREATE INDEX revocations_revision ON revocations (revision);
