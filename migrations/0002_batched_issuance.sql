-- Group commit for issuance: certificates signed by concurrent requests are stored by one
-- call in one transaction (one WAL flush for all), each with its own checks and outcome.

-- fleetca_store_certificates stores a batch of signed certificates. p_items is a JSON array
-- of objects (keys below; der and hashes in hex). Items are taken in request-id order, so
-- concurrent batches lock in one order. For each item, in order:
--   1. a request id already used: outcome 'replayed' with that certificate's serial, and
--      nothing else (the caller checks the requests are the same);
--   2. the subject must still be there (a device: still active), its row locked against
--      changes until commit: otherwise outcome 'no_device', 'device_<status>' or 'no_broker';
--   3. the certificate is inserted with its audit entry: outcome 'issued' with its
--      fingerprint and creation time. A concurrent batch that commits the same request id
--      first makes this one 'replayed' instead (ON CONFLICT waits for it).
CREATE FUNCTION fleetca_store_certificates(p_items jsonb)
RETURNS TABLE (idx int, outcome text, serial_hex text, fingerprint_hex text, created_micros bigint)
LANGUAGE plpgsql AS $$
DECLARE
  it record;
  subject_status text;
  prior bytea;
BEGIN
  FOR it IN
    SELECT * FROM jsonb_to_recordset(p_items) AS x (
      idx int, serial text, issuer_id text, kind text, comm_id text, broker_name text,
      identity_name text, subject text, key_algorithm text, dns_names text[],
      ip_addresses text[], profile text, not_before bigint, not_after bigint, der text,
      request_id text, csr_sha256 text, requester text, renewed_from text, actor text,
      call_request_id text, details jsonb)
    ORDER BY x.request_id COLLATE "C"
  LOOP
    idx := it.idx;
    serial_hex := NULL;
    fingerprint_hex := NULL;
    created_micros := NULL;
    SELECT c.serial INTO prior FROM certificates c WHERE c.request_id = it.request_id;
    IF FOUND THEN
      outcome := 'replayed';
      serial_hex := encode(prior, 'hex');
      RETURN NEXT;
      CONTINUE;
    END IF;
    IF it.kind = 'device' THEN
      SELECT d.status INTO subject_status FROM devices d WHERE d.comm_id = it.comm_id FOR SHARE;
      IF NOT FOUND THEN
        outcome := 'no_device';
        RETURN NEXT;
        CONTINUE;
      ELSIF subject_status <> 'active' THEN
        outcome := 'device_' || subject_status;
        RETURN NEXT;
        CONTINUE;
      END IF;
    ELSIF it.kind = 'broker' THEN
      PERFORM 1 FROM brokers b WHERE b.name = it.broker_name FOR SHARE;
      IF NOT FOUND THEN
        outcome := 'no_broker';
        RETURN NEXT;
        CONTINUE;
      END IF;
    END IF;
    INSERT INTO certificates AS c (serial, issuer_id, kind, comm_id, broker_name, identity_name,
        subject, key_algorithm, dns_names, ip_addresses, status, profile, not_before, not_after,
        der, fingerprint_sha256, request_id, csr_sha256, requester, renewed_from)
    VALUES (decode(it.serial, 'hex'), it.issuer_id, it.kind, nullif(it.comm_id, ''),
        nullif(it.broker_name, ''), nullif(it.identity_name, ''), it.subject, it.key_algorithm,
        it.dns_names, it.ip_addresses, 'issued', it.profile,
        timestamptz 'epoch' + it.not_before * interval '1 microsecond',
        timestamptz 'epoch' + it.not_after * interval '1 microsecond',
        decode(it.der, 'hex'), sha256(decode(it.der, 'hex')), it.request_id,
        nullif(decode(it.csr_sha256, 'hex'), ''), it.requester,
        nullif(decode(it.renewed_from, 'hex'), ''))
    ON CONFLICT (request_id) DO NOTHING
    RETURNING encode(c.fingerprint_sha256, 'hex'),
              (extract(epoch FROM c.created_at) * 1000000)::bigint
      INTO fingerprint_hex, created_micros;
    IF NOT FOUND THEN
      SELECT c.serial INTO prior FROM certificates c WHERE c.request_id = it.request_id;
      outcome := 'replayed';
      serial_hex := encode(prior, 'hex');
      RETURN NEXT;
      CONTINUE;
    END IF;
    PERFORM fleetca_append_audit(it.actor, 'IssueCertificate', it.serial, it.call_request_id,
                                 it.details);
    outcome := 'issued';
    serial_hex := it.serial;
    RETURN NEXT;
  END LOOP;
END $$;
