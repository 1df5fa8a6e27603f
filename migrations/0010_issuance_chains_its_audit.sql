-- Issuance at the hardware's pace (issue 11): an issuance batch's store does less.
--
-- Measured with pg_stat_statements during bench/issuance.sh (docs/performance.md): per
-- certificate, PostgreSQL spent about 140 us in fleetca_store_certificates' statement and
-- 126 us in the audit sequencer, whose row-by-row UPDATE of each new audit entry (a new
-- version of the row and of its four index entries, the partial index forbidding a HOT
-- update) cost as much as storing the certificate itself.
--
-- 1. The batch chains its own audit entries. It holds the change log's lock to its commit
--    anyway (its revision), so it also takes the sequencer's lock and inserts its entries
--    already chained: chain_seq, prev_hash and hash computed exactly as fleetca_chain_audit
--    computes them (the same canonical text), each entry written once. Entries of other
--    writers are chained by the sequencer as before; the chain's order is still the order
--    in which entries were chained, and verification does not change.
-- 2. No second look at the subjects: fleetca_check_certificate_requests, earlier in the same
--    transaction, locked them (FOR SHARE, to commit) and told retries apart; only items it
--    passed reach this function. A request id stored meanwhile by another server's
--    transaction is still caught, by ON CONFLICT, as 'conflict'.
--
-- p_items: a JSON array of objects (keys below; der and hashes in hex). Outcome per item:
--   'issued' (fingerprint_hex, created_micros): inserted with its audit entry;
--   'conflict': another transaction stored the same request id first (or the batch has it
--      twice): the caller reads that certificate back by request id once this commits.
-- Callers must run fleetca_check_certificate_requests on the batch first, in the same
-- transaction.
CREATE OR REPLACE FUNCTION fleetca_store_certificates(p_items jsonb)
RETURNS TABLE (idx int, outcome text, serial_hex text, fingerprint_hex text, created_micros bigint)
-- One plan for every call: the batch's JSON does not change what the best plan is.
SET plan_cache_mode = force_generic_plan
LANGUAGE plpgsql AS $$
DECLARE
  a_all   int[];   -- every item's idx
  a_idx   int[];   -- the stored items', in chain order
  a_ser   text[];
  a_fp    text[];
  a_at    bigint[];
  a_id    bigint[];
  a_actor text[];
  a_target text[];
  a_req   text[];
  a_det   jsonb[];
  a_canon text[];  -- each entry's canonical text after "chain_seq|id|"
  a_seq   bigint[];
  a_prev  bytea[];
  a_hash  bytea[];
  seq     bigint;
  prev    bytea;
  n       int;
BEGIN
  -- The change log's lock, for the batch's revision: held to the commit that follows this
  -- statement (the batch's signing is done by then). Then the audit sequencer's
  -- (fleetca_chain_audit's key), also to commit: the entries below are chained here.
  PERFORM fleetca_log_lock();
  PERFORM pg_advisory_xact_lock(7318262781330071554);

  WITH items AS MATERIALIZED (
    SELECT * FROM jsonb_to_recordset(p_items) AS x (
      idx int, serial text, issuer_id text, kind text, comm_id text, broker_name text,
      identity_name text, subject text, key_algorithm text, dns_names text[],
      ip_addresses text[], profile text, not_before bigint, not_after bigint, der text,
      request_id text, csr_sha256 text, requester text, renewed_from text, actor text,
      call_request_id text, details jsonb)),
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
      FROM items k
     ORDER BY k.request_id COLLATE "C"
    ON CONFLICT (request_id) DO NOTHING
    RETURNING c.serial, c.fingerprint_sha256, c.created_at),
  logged AS (
    INSERT INTO change_log (entity_type, entity_key, op, entity_keys)
    SELECT 'certificate', b.keys[1], 'upsert', b.keys
      FROM (SELECT array_agg(encode(ins.serial, 'hex') ORDER BY ins.serial) AS keys FROM ins) b
     WHERE b.keys IS NOT NULL),
  done AS (
    SELECT k.idx, k.serial, encode(ins.fingerprint_sha256, 'hex') AS fp,
           (extract(epoch FROM ins.created_at) * 1000000)::bigint AS at, k.actor,
           k.call_request_id, k.details,
           nextval(pg_get_serial_sequence('audit_log', 'id')) AS audit_id
      FROM ins JOIN items k ON decode(k.serial, 'hex') = ins.serial)
  SELECT array_agg(d.idx ORDER BY d.audit_id), array_agg(d.serial ORDER BY d.audit_id),
         array_agg(d.fp ORDER BY d.audit_id), array_agg(d.at ORDER BY d.audit_id),
         array_agg(d.audit_id ORDER BY d.audit_id), array_agg(d.actor ORDER BY d.audit_id),
         array_agg(d.call_request_id ORDER BY d.audit_id), array_agg(d.details ORDER BY d.audit_id),
         -- fleetca_chain_audit's canonical text from the third field on:
         -- epoch-microseconds|actor|action|target|request_id|details-as-jsonb-text
         -- (created_at is now(), the transaction's start, as the column's default).
         array_agg((extract(epoch FROM now()) * 1000000)::bigint::text || '|' || d.actor
                   || '|IssueCertificate|' || d.serial || '|' || d.call_request_id || '|'
                   || d.details::text ORDER BY d.audit_id),
         (SELECT array_agg(i.idx) FROM items i)
    INTO a_idx, a_ser, a_fp, a_at, a_id, a_actor, a_req, a_det, a_canon, a_all
    FROM done d;

  n := coalesce(array_length(a_id, 1), 0);
  IF n > 0 THEN
    SELECT l.chain_seq, l.hash INTO seq, prev FROM audit_log l
     WHERE l.chain_seq IS NOT NULL ORDER BY l.chain_seq DESC LIMIT 1;
    seq := coalesce(seq, 0);
    FOR i IN 1 .. n LOOP
      seq := seq + 1;
      a_seq[i] := seq;
      a_prev[i] := prev;
      prev := sha256(coalesce(prev, ''::bytea)
                     || convert_to(seq::text || '|' || a_id[i]::text || '|' || a_canon[i], 'UTF8'));
      a_hash[i] := prev;
    END LOOP;
    INSERT INTO audit_log (id, created_at, actor, action, target, request_id, details,
                           chain_seq, prev_hash, hash)
    OVERRIDING SYSTEM VALUE
    SELECT u.id, now(), u.actor, 'IssueCertificate', u.target, u.req, u.det, u.seq, u.prev, u.hash
      FROM unnest(a_id, a_actor, a_ser, a_req, a_det, a_seq, a_prev, a_hash)
           AS u (id, actor, target, req, det, seq, prev, hash);
  END IF;

  RETURN QUERY
  SELECT x.idx, CASE WHEN r.idx IS NOT NULL THEN 'issued' ELSE 'conflict' END, r.ser, r.fp, r.at
    FROM unnest(a_all) AS x (idx)
    LEFT JOIN unnest(a_idx, a_ser, a_fp, a_at) AS r (idx, ser, fp, at) ON r.idx = x.idx;
END $$;
