-- Revocation RPCs (issue 5): the comment given with a revocation or hold is kept with it
-- (never published in CRLs), and CRL builders read revocations by revision.
ALTER TABLE revocations ADD COLUMN comment text NOT NULL DEFAULT ''
  CHECK (octet_length(comment) <= 256);
CREATE INDEX revocations_revision ON revocations (revision);

-- CRLs (table crls, migration 0001): each remembers the crl_state.changes it reflects, so
-- the builder knows which are stale.
ALTER TABLE crls ADD COLUMN changes bigint NOT NULL DEFAULT 0;

-- crl_state counts the changes to each issuer's revocations (a trigger: revocations,
-- holds, releases, whoever makes them), so the builder knows which CRLs are stale.
CREATE TABLE crl_state (
  issuer_id text COLLATE "C" PRIMARY KEY REFERENCES issuers (id),
  changes   bigint NOT NULL DEFAULT 0
);

CREATE FUNCTION fleetca_count_crl_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO crl_state AS s (issuer_id, changes)
  VALUES (CASE WHEN TG_OP = 'DELETE' THEN OLD.issuer_id ELSE NEW.issuer_id END, 1)
  ON CONFLICT (issuer_id) DO UPDATE SET changes = s.changes + 1;
  RETURN NULL;
END $$;

CREATE TRIGGER revocations_count_crl_change AFTER INSERT OR UPDATE OR DELETE ON revocations
  FOR EACH ROW EXECUTE FUNCTION fleetca_count_crl_change();
