-- Certificates enter the change log (issue 6): brokers' sync streams and the policy index
-- that answers AuthorizeConnect learn of a new certificate by its revision, as they learn
-- of revocations (key: the serial in hex, as revocations have it).
--
-- One row per issuance batch, not per certificate: a change-log row per certificate cost
-- about 12% of the issuance rate (45 us of PostgreSQL CPU each: the row, its two index
-- entries). entity_keys, when set, lists every key the row changes (entity_key is the
-- first of them, for the change_log_entity index); readers expand it into one change per
-- key, all at the row's revision (one transaction, one revision).
ALTER TABLE change_log ADD COLUMN entity_keys text[]
  CHECK (entity_keys IS NULL OR (cardinality(entity_keys) >= 1 AND entity_keys[1] = entity_key));

-- fleetca_store_certificates (migration 0002) with the log lock and the "logged" insert:
-- one revision for the batch's certificates.
CREATE OR REPLACE FUNCTION fleetca_store_certificates(p_items jsonb)
RETURNS TABLE (idx int, outcome text, serial_hex text, fingerprint_hex text, created_micros bigint)
-- One plan for every call: the batch's JSON does not change what the best plan is.
SET plan_cache_mode = force_generic_plan
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM fleetca_lock_issuance_subjects(p_items);
  -- The change log's lock, for the batch's revision below: held to the commit that follows
  -- this statement (the batch's signing is done by then).
  PERFORM fleetca_log_lock();
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
      FROM ins JOIN checked k ON decode(k.serial, 'hex') = ins.serial),
  logged AS (
    INSERT INTO change_log (entity_type, entity_key, op, entity_keys)
    SELECT 'certificate', b.keys[1], 'upsert', b.keys
      FROM (SELECT array_agg(encode(ins.serial, 'hex') ORDER BY ins.serial) AS keys FROM ins) b
     WHERE b.keys IS NOT NULL)
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

-- fleetca_log_crl records a new complete CRL of an issuer (its DER stored): brokers' sync
-- streams send each issuer's current complete CRL (delta CRLs are for HTTP and gRPC
-- fetchers only).
CREATE FUNCTION fleetca_log_crl(p_issuer_id text, p_crl_number bigint) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM crls WHERE issuer_id = p_issuer_id AND crl_number = p_crl_number
                                  AND base_crl_number IS NULL) THEN
    PERFORM fleetca_append_changes('crl', ARRAY[p_issuer_id], 'upsert');
  END IF;
END $$;
