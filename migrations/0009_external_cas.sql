-- Customer PKIs (issue 10): external, verify-only CAs (rows of issuers with purpose
-- 'external', migration 0001) and the device certificates they issued.

-- 1. A certificate is identified by (serial, issuer_id). fleetca's own serials are random
-- and stay unique on their own (certificates_own_serial: an issuance that drew a taken
-- serial fails as before), but a customer CA's serials are its own business: two
-- customer CAs may both have issued serial 01. The primary key's first column is the
-- serial, so lookups by serial alone still use it; a serial alone that matches more than
-- one certificate is ambiguous, and the API then asks for the issuer_id.
ALTER TABLE revocations DROP CONSTRAINT revocations_serial_fkey;
ALTER TABLE certificates DROP CONSTRAINT certificates_renewed_from_fkey;
ALTER TABLE certificates DROP CONSTRAINT certificates_pkey;
ALTER TABLE certificates ADD CONSTRAINT certificates_pkey PRIMARY KEY (serial, issuer_id);
CREATE UNIQUE INDEX certificates_own_serial ON certificates (serial)
  WHERE kind <> 'external_device';
-- renewed_from names one of fleetca's own certificates (renewals are of fleetca-issued
-- certificates only), which certificates_own_serial keeps unique; a foreign key cannot
-- point at a partial unique index, so this trigger keeps the reference honest instead.
CREATE FUNCTION fleetca_check_renewed_from() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.renewed_from IS NOT NULL AND NOT EXISTS (
       SELECT 1 FROM certificates c
        WHERE c.serial = NEW.renewed_from AND c.kind <> 'external_device') THEN
    RAISE EXCEPTION 'renewed_from names no certificate of fleetca''s'
      USING ERRCODE = 'foreign_key_violation', CONSTRAINT = 'certificates_renewed_from_fkey';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER certificates_renewed_from BEFORE INSERT OR UPDATE OF renewed_from ON certificates
  FOR EACH ROW WHEN (NEW.renewed_from IS NOT NULL)
  EXECUTE FUNCTION fleetca_check_renewed_from();

ALTER TABLE revocations DROP CONSTRAINT revocations_pkey;
ALTER TABLE revocations ADD CONSTRAINT revocations_pkey PRIMARY KEY (serial, issuer_id);
ALTER TABLE revocations ADD CONSTRAINT revocations_certificate_fkey
  FOREIGN KEY (serial, issuer_id) REFERENCES certificates (serial, issuer_id);
-- External certificates are registered, never issued here: no request id, no CSR.
ALTER TABLE certificates ADD CONSTRAINT certificates_external_not_requested
  CHECK (kind <> 'external_device' OR (request_id IS NULL AND renewed_from IS NULL));

-- 2. External CAs. state 'active' is enabled, 'disabled' is kept but trusted by no one,
-- 'removed' is deleted through the API: the row stays (certificates registered under it
-- keep their issuer for the record) but no API call shows it, and its id stays taken.
-- options: {"display_name": text, "accept_unregistered_certificates": bool}.
ALTER TABLE issuers DROP CONSTRAINT issuers_state_check;
ALTER TABLE issuers ADD CONSTRAINT issuers_state_check
  CHECK (state IN ('pending', 'active', 'retired', 'disabled', 'removed'));
ALTER TABLE issuers ADD CONSTRAINT issuers_states_of_purpose
  CHECK (CASE WHEN purpose = 'external' THEN state IN ('active', 'disabled', 'removed')
              ELSE state IN ('pending', 'active', 'retired') END);
-- One registration per customer certificate (the same CA under two ids would make "which
-- CA issued this certificate" ambiguous).
CREATE UNIQUE INDEX issuers_external_certificate ON issuers (sha256(certificate_der))
  WHERE purpose = 'external' AND state <> 'removed';

-- 3. Revocations of external certificates change no CRL of fleetca's (it cannot sign the
-- customer's): they reach brokers through the sync stream only. The CRL change counter
-- (migration 0005) skips them.
CREATE OR REPLACE FUNCTION fleetca_count_crl_change() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  row_issuer text := CASE WHEN TG_OP = 'DELETE' THEN OLD.issuer_id ELSE NEW.issuer_id END;
  row_serial bytea := CASE WHEN TG_OP = 'DELETE' THEN OLD.serial ELSE NEW.serial END;
  n bigint;
BEGIN
  IF EXISTS (SELECT 1 FROM issuers WHERE id = row_issuer AND purpose = 'external') THEN
    RETURN NULL;
  END IF;
  INSERT INTO crl_state AS s (issuer_id, changes) VALUES (row_issuer, 1)
  ON CONFLICT (issuer_id) DO UPDATE SET changes = s.changes + 1
  RETURNING s.changes INTO n;
  INSERT INTO crl_changes (issuer_id, change, serial) VALUES (row_issuer, n, row_serial);
  PERFORM pg_notify('fleetca_crl', row_issuer);  -- at commit; one per issuer and transaction
  RETURN NULL;
END $$;

-- 4. Revocations learnt from an imported customer CRL are marked so (RevocationInfo.
-- from_imported_crl); a later import that no longer lists a serial does not un-revoke it
-- (a revocation is final), and a revocation made in fleetca is never marked.
ALTER TABLE revocations ADD COLUMN from_imported_crl boolean NOT NULL DEFAULT false;
