-- Group commit for issuance: certificates signed by concurrent requests are stored by one
-- call in one transaction (one WAL flush for all), each with its own checks and outcome.

-- fleetca_lock_issuance_subjects locks the devices and brokers a batch of issuance items
-- names (JSON objects with kind, comm_id, broker_name), FOR SHARE until commit, in key
-- order so that concurrent batches cannot deadlock; one index probe per subject (LATERAL:
-- a join could be planned as a hash join over the whole table).
CREATE FUNCTION fleetca_lock_issuance_subjects(p_items jsonb) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM 1
     FROM (SELECT DISTINCT x.comm_id FROM jsonb_to_recordset(p_items) AS x (kind text, comm_id text)
            WHERE x.kind = 'device' ORDER BY 1) AS w,
          LATERAL (SELECT 1 FROM devices d WHERE d.comm_id = w.comm_id FOR SHARE) AS l;
  PERFORM 1
     FROM (SELECT DISTINCT x.broker_name FROM jsonb_to_recordset(p_items) AS x (kind text, broker_name text)
            WHERE x.kind = 'broker' ORDER BY 1) AS w,
          LATERAL (SELECT 1 FROM brokers b WHERE b.name = w.broker_name FOR SHARE) AS l;
END $$;

-- fleetca_check_certificate_requests is the first statement of an issuance batch, before
-- anything is signed. p_items: a JSON array of {idx, kind, request_id, comm_id,
-- broker_name}. It locks the subjects' rows (FOR SHARE, in key order: concurrent batches
-- lock in one order) until commit, then returns per item an outcome:
--   'replayed' (serial_hex = that certificate): the request id was used before;
--   'no_device', 'device_<status>' (not active), 'no_broker': no certificate for it;
--   'ok': sign it.
CREATE FUNCTION fleetca_check_certificate_requests(p_items jsonb)
RETURNS TABLE (idx int, outcome text, serial_hex text)
SET plan_cache_mode = force_generic_plan
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM fleetca_lock_issuance_subjects(p_items);
  -- Correlated scalar subqueries: one index probe per item, never a join that could be
  -- planned as a hash join over a whole table.
  RETURN QUERY
  SELECT i.idx,
         CASE WHEN i.prior IS NOT NULL THEN 'replayed'
              WHEN i.kind = 'device' THEN
                coalesce((SELECT CASE d.status WHEN 'active' THEN 'ok' ELSE 'device_' || d.status END
                            FROM devices d WHERE d.comm_id = i.comm_id), 'no_device')
              WHEN i.kind = 'broker' THEN
                CASE WHEN EXISTS (SELECT 1 FROM brokers b WHERE b.name = i.broker_name)
                     THEN 'ok' ELSE 'no_broker' END
              ELSE 'ok' END,
         encode(i.prior, 'hex')
    FROM (SELECT x.*, (SELECT c.serial FROM certificates c WHERE c.request_id = x.request_id) AS prior
            FROM jsonb_to_recordset(p_items) AS x (idx int, kind text, request_id text,
                                                   comm_id text, broker_name text)
          OFFSET 0) AS i;
END $$;

-- fleetca_store_certificates stores a batch of signed certificates, set-based (one INSERT
-- for the batch: PostgreSQL prepares constraints and triggers once per statement, not per
-- row). p_items is a JSON array of objects (keys below; der and hashes in hex). Outcome per
-- item:
--   'replayed' (serial_hex = that certificate): the request id was used before; nothing
--      else is done (the caller checks the requests are the same);
--   'no_device', 'device_<status>' (not active), 'no_broker': the subject is gone;
--   'issued' (fingerprint_hex, created_micros): inserted with its audit entry;
--   'conflict': another transaction stored the same request id meanwhile (or the batch has
--      it twice): the caller reads that certificate back by request id once this commits.
-- Subject rows are locked (FOR SHARE, in key order) before they are checked, so a device
-- cannot be suspended between the check and the commit.
CREATE FUNCTION fleetca_store_certificates(p_items jsonb)
RETURNS TABLE (idx int, outcome text, serial_hex text, fingerprint_hex text, created_micros bigint)
-- One plan for every call: the batch's JSON does not change what the best plan is.
SET plan_cache_mode = force_generic_plan
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM fleetca_lock_issuance_subjects(p_items);
  RETURN QUERY
  WITH items AS MATERIALIZED (
    SELECT * FROM jsonb_to_recordset(p_items) AS x (
      idx int, serial text, issuer_id text, kind text, comm_id text, broker_name text,
      identity_name text, subject text, key_algorithm text, dns_names text[],
      ip_addresses text[], profile text, not_before bigint, not_after bigint, der text,
      request_id text, csr_sha256 text, requester text, renewed_from text, actor text,
      call_request_id text, details jsonb)),
  checked AS MATERIALIZED (
    SELECT i.*,
           (SELECT c.serial FROM certificates c WHERE c.request_id = i.request_id) AS prior,
           CASE i.kind
             WHEN 'device' THEN coalesce((SELECT CASE d.status WHEN 'active' THEN 'ok'
                                                 ELSE 'device_' || d.status END
                                            FROM devices d WHERE d.comm_id = i.comm_id),
                                         'no_device')
             WHEN 'broker' THEN CASE WHEN EXISTS (SELECT 1 FROM brokers b
                                                   WHERE b.name = i.broker_name)
                                     THEN 'ok' ELSE 'no_broker' END
             ELSE 'ok' END AS subject_state
      FROM items i),
  ins AS (
    INSERT INTO certificates AS c (serial, issuer_id, kind, comm_id, broker_name,
        identity_name, subject, key_algorithm, dns_names, ip_addresses, status, profile,
        not_before, not_after, der, fingerprint_sha256, request_id, csr_sha256, requester,
        renewed_from)
    SELECT decode(k.serial, 'hex'), k.issuer_id, k.kind, nullif(k.comm_id, ''),
           nullif(k.broker_name, ''), nullif(k.identity_name, ''), k.subject, k.key_algorithm,
           k.dns_names, k.ip_addresses, 'issued', k.profile,
           timestamptz 'epoch' + k.not_before * interval '1 microsecond',
           timestamptz 'epoch' + k.not_after * interval '1 microsecond',
           decode(k.der, 'hex'), sha256(decode(k.der, 'hex')), k.request_id,
           nullif(decode(k.csr_sha256, 'hex'), ''), k.requester,
           nullif(decode(k.renewed_from, 'hex'), '')
      FROM checked k
     WHERE k.prior IS NULL AND k.subject_state = 'ok'
     ORDER BY k.request_id COLLATE "C"
    ON CONFLICT (request_id) DO NOTHING
    RETURNING c.serial, c.fingerprint_sha256, c.created_at),
  audited AS (
    INSERT INTO audit_log (actor, action, target, request_id, details)
    SELECT k.actor, 'IssueCertificate', k.serial, k.call_request_id, k.details
      FROM ins JOIN checked k ON decode(k.serial, 'hex') = ins.serial)
  SELECT k.idx,
         CASE WHEN ins.serial IS NOT NULL THEN 'issued'
              WHEN k.prior IS NOT NULL THEN 'replayed'
              WHEN k.subject_state <> 'ok' THEN k.subject_state
              ELSE 'conflict' END,
         CASE WHEN ins.serial IS NOT NULL THEN k.serial ELSE encode(k.prior, 'hex') END,
         encode(ins.fingerprint_sha256, 'hex'),
         (extract(epoch FROM ins.created_at) * 1000000)::bigint
    FROM checked k LEFT JOIN ins ON ins.serial = decode(k.serial, 'hex');
END $$;
