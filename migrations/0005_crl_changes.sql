-- Incremental CRL building (issue 5): the builder keeps each issuer's entries in memory and
-- reads only the serials whose revocation changed since its last read, when a NOTIFY on
-- channel fleetca_crl (payload: the issuer) wakes it. Every change to
-- revocations is numbered per issuer by crl_state.changes and logged here with its serial.
-- The numbers are in commit order: the crl_state row stays locked until the changing
-- transaction commits, so a reader that sees changes = N sees every change up to N.
CREATE TABLE crl_changes (
  issuer_id text COLLATE "C" NOT NULL REFERENCES issuers (id),
  change    bigint NOT NULL,
  serial    bytea NOT NULL,
  PRIMARY KEY (issuer_id, change)
);
-- GetRevocationStatus: the first CRL that reflects a certificate's last change.
CREATE INDEX crl_changes_serial ON crl_changes (issuer_id, serial, change);

CREATE OR REPLACE FUNCTION fleetca_count_crl_change() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  row_issuer text := CASE WHEN TG_OP = 'DELETE' THEN OLD.issuer_id ELSE NEW.issuer_id END;
  row_serial bytea := CASE WHEN TG_OP = 'DELETE' THEN OLD.serial ELSE NEW.serial END;
  n bigint;
BEGIN
  INSERT INTO crl_state AS s (issuer_id, changes) VALUES (row_issuer, 1)
  ON CONFLICT (issuer_id) DO UPDATE SET changes = s.changes + 1
  RETURNING s.changes INTO n;
  INSERT INTO crl_changes (issuer_id, change, serial) VALUES (row_issuer, n, row_serial);
  PERFORM pg_notify('fleetca_crl', row_issuer);  -- at commit; one per issuer and transaction
  RETURN NULL;
END $$;

-- A CRL's number and metadata (crls) commit first, its DER (crl_ders) right after: the
-- builder serves the CRL once its number is taken (numbers stay monotonic whatever happens
-- next), and no other replica serves it before its DER is stored. crl_ders is UNLOGGED: a
-- CRL is derived data, rebuilt from revocations at will, and at a million entries each one
-- would put 45 MiB into the WAL (and the standbys and the WAL archive). After a crash or a
-- failover it is empty, and the builder issues a new CRL (a higher number) in about a
-- minute. Not compressed: random serials do not compress much, and pglz took longer than
-- the write.
ALTER TABLE crls ALTER COLUMN der DROP NOT NULL;  -- no longer written: crl_ders
CREATE UNLOGGED TABLE crl_ders (
  issuer_id  text COLLATE "C" NOT NULL,
  crl_number bigint NOT NULL,
  der        bytea NOT NULL,
  PRIMARY KEY (issuer_id, crl_number)
);
ALTER TABLE crl_ders ALTER COLUMN der SET STORAGE EXTERNAL;
