-- fleetca schema, version 1: the whole product's tables.
-- Forward-only: never edit an applied migration, add a new numbered file instead
-- (the migrator refuses to start when an applied file's checksum changed).
-- Constraints live here, not only in C++: the database is the last line of defence.

-- The change log: one increasing revision for every change a broker or replica must see.
-- Revisions are handed out under the advisory lock taken by fleetca_log_lock(), held to
-- commit, so revision order is commit order and a watcher reading "revision > N" never
-- skips a row that commits later with a smaller number.
CREATE TABLE change_log (
  revision    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  entity_type text NOT NULL CHECK (entity_type IN (
                'device', 'issuer', 'certificate', 'revocation', 'crl', 'acl_profile',
                'acl_assignment', 'broker', 'identity', 'external_ca')),
  entity_key  text NOT NULL CHECK (entity_key <> ''),
  op          text NOT NULL CHECK (op IN ('upsert', 'delete')),
  created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX change_log_entity ON change_log (entity_type, entity_key, revision);

-- The audit log: who did what to which object. Writers insert entries without taking any
-- lock; the sequencer (fleetca_chain_audit, run by a background worker on one replica at a
-- time) then chains them: chain_seq 1, 2, 3... in the order it finds them, each entry's hash
-- covering the previous entry's hash and its own canonical content, so editing or removing a
-- chained entry breaks the chain. Entries wait for the sequencer a fraction of a second.
CREATE TABLE audit_log (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  created_at  timestamptz NOT NULL DEFAULT now(),
  actor       text NOT NULL CHECK (actor <> ''),
  action      text NOT NULL CHECK (action <> ''),
  target      text NOT NULL DEFAULT '',
  request_id  text NOT NULL DEFAULT '',
  details     jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(details) = 'object'),
  chain_seq   bigint UNIQUE CHECK (chain_seq IS NULL OR chain_seq >= 1),
  prev_hash   bytea CHECK (prev_hash IS NULL OR octet_length(prev_hash) = 32),
  hash        bytea CHECK (hash IS NULL OR octet_length(hash) = 32),
  CHECK ((chain_seq IS NULL) = (hash IS NULL)),
  CHECK (chain_seq IS NULL OR chain_seq = 1 OR prev_hash IS NOT NULL)
);
CREATE INDEX audit_log_unchained ON audit_log (id) WHERE chain_seq IS NULL;
CREATE INDEX audit_log_target ON audit_log (target, id);
CREATE INDEX audit_log_actor ON audit_log (actor, id);

-- Devices, by communication ID. COLLATE "C": byte order, so keyset pagination and
-- prefix filters use the primary key index and mean the same thing on every server.
CREATE TABLE devices (
  comm_id       text COLLATE "C" PRIMARY KEY
                CONSTRAINT devices_comm_id_format CHECK (comm_id ~ '^[A-Za-z0-9._:-]{1,64}$'),
  status        text NOT NULL DEFAULT 'active'
                CHECK (status IN ('active', 'suspended', 'decommissioned')),
  status_reason text NOT NULL DEFAULT '' CHECK (octet_length(status_reason) <= 256),
  display_name  text NOT NULL DEFAULT '' CHECK (octet_length(display_name) <= 256),
  attributes    jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(attributes) = 'object'),
  groups        text[] NOT NULL DEFAULT '{}' CHECK (cardinality(groups) <= 16),
  version       bigint NOT NULL DEFAULT 1 CHECK (version >= 1),
  created_at    timestamptz NOT NULL DEFAULT now(),
  updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX devices_status ON devices (status, comm_id);
CREATE INDEX devices_groups ON devices USING gin (groups);
CREATE INDEX devices_attributes ON devices USING gin (attributes jsonb_path_ops);

-- Decommissioning is final, whatever the caller: enforced here as well as in C++.
CREATE FUNCTION fleetca_devices_decommission_is_final() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF OLD.status = 'decommissioned' AND NEW.status <> 'decommissioned' THEN
    RAISE EXCEPTION 'device % is decommissioned', OLD.comm_id
      USING ERRCODE = 'check_violation', CONSTRAINT = 'devices_decommission_is_final';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER devices_decommission_is_final BEFORE UPDATE OF status ON devices
  FOR EACH ROW EXECUTE FUNCTION fleetca_devices_decommission_is_final();

-- API client identities (stations, brokers, watchers, controllers, admins).
CREATE TABLE identities (
  name        text COLLATE "C" PRIMARY KEY CHECK (name ~ '^[a-z0-9][a-z0-9._-]{0,62}$'),
  -- Devices authenticate with their device certificates, not as identities.
  role        text NOT NULL CHECK (role IN ('admin', 'provisioner', 'broker', 'viewer', 'mqtt_client')),
  status      text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'revoked')),
  description text NOT NULL DEFAULT '' CHECK (octet_length(description) <= 256),
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Issuers: fleetca's own CAs (root and intermediates by purpose) and external,
-- verify-only customer CAs (no key held).
CREATE TABLE issuers (
  id              text COLLATE "C" PRIMARY KEY CHECK (id ~ '^[a-z0-9][a-z0-9._-]{0,62}$'),
  purpose         text NOT NULL CHECK (purpose IN ('root', 'devices', 'brokers', 'operators', 'external')),
  parent_id       text COLLATE "C" REFERENCES issuers (id),
  state           text NOT NULL CHECK (state IN ('pending', 'active', 'retired', 'disabled')),
  algorithm       text NOT NULL CHECK (algorithm IN (
                    'ecdsa-p256', 'ecdsa-p384', 'rsa-2048', 'rsa-3072', 'rsa-4096', 'ed25519', 'external')),
  subject         text NOT NULL,
  certificate_der bytea,            -- NULL while an offline-root CSR is pending
  csr_der         bytea,
  chain_der       bytea,            -- offline root: the certificates above it, DER, concatenated
  ski             bytea,
  not_before      timestamptz,
  not_after       timestamptz,
  -- The private key, AES-256-GCM-wrapped under the key-encryption key kek_id; never plaintext.
  key_ciphertext  bytea,
  kek_id          text,
  next_crl_number bigint NOT NULL DEFAULT 1 CHECK (next_crl_number >= 1),
  options         jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(options) = 'object'),
  version         bigint NOT NULL DEFAULT 1,
  created_at      timestamptz NOT NULL DEFAULT now(),
  updated_at      timestamptz NOT NULL DEFAULT now(),
  activated_at    timestamptz,
  retired_at      timestamptz,
  CHECK (state = 'pending' OR certificate_der IS NOT NULL),
  CHECK (state = 'pending' OR activated_at IS NOT NULL),
  CHECK ((key_ciphertext IS NULL) = (kek_id IS NULL)),
  CHECK (purpose <> 'external' OR key_ciphertext IS NULL),
  CHECK (purpose = 'root' OR purpose = 'external' OR parent_id IS NOT NULL OR state = 'pending'
         OR certificate_der IS NOT NULL),
  CHECK (not_after IS NULL OR not_before IS NULL OR not_after > not_before)
);
-- One active issuer per purpose of our own (external CAs may be many).
CREATE UNIQUE INDEX issuers_one_active_per_purpose ON issuers (purpose)
  WHERE state = 'active' AND purpose <> 'external';

-- Brokers fleetca serves: the names and addresses their server certificates may carry,
-- and how far each has read the change log.
CREATE TABLE brokers (
  name                 text COLLATE "C" PRIMARY KEY CHECK (name ~ '^[a-z0-9][a-z0-9._-]{0,62}$'),
  display_name         text NOT NULL DEFAULT '' CHECK (octet_length(display_name) <= 256),
  allowed_dns_names    text[] NOT NULL DEFAULT '{}' CHECK (cardinality(allowed_dns_names) <= 64),
  allowed_ip_addresses text[] NOT NULL DEFAULT '{}'
                       CHECK (cardinality(allowed_ip_addresses) <= 64),
  version              bigint NOT NULL DEFAULT 1 CHECK (version >= 1),
  last_seen_at         timestamptz,
  last_revision        bigint,
  created_at           timestamptz NOT NULL DEFAULT now(),
  updated_at           timestamptz NOT NULL DEFAULT now()
);

-- Every certificate fleetca issued or tracks. A row is written (status 'reserved') before
-- the signature, so no certificate exists that the database does not know; the DER is
-- filled in the same transaction that returns it.
CREATE TABLE certificates (
  serial             bytea PRIMARY KEY CHECK (octet_length(serial) BETWEEN 1 AND 20),
  issuer_id          text COLLATE "C" NOT NULL REFERENCES issuers (id),
  kind               text NOT NULL CHECK (kind IN ('device', 'broker', 'identity', 'external_device')),
  comm_id            text COLLATE "C" REFERENCES devices (comm_id) ON DELETE RESTRICT,
  broker_name        text COLLATE "C" REFERENCES brokers (name) ON DELETE RESTRICT,
  identity_name      text COLLATE "C" REFERENCES identities (name) ON DELETE RESTRICT,
  subject            text NOT NULL,
  key_algorithm      text NOT NULL,
  dns_names          text[] NOT NULL DEFAULT '{}',
  ip_addresses       text[] NOT NULL DEFAULT '{}',
  status             text NOT NULL CHECK (status IN ('reserved', 'issued', 'revoked', 'on_hold')),
  profile            text NOT NULL DEFAULT '',
  not_before         timestamptz NOT NULL,
  not_after          timestamptz NOT NULL,
  der                bytea,
  fingerprint_sha256 bytea UNIQUE CHECK (fingerprint_sha256 IS NULL OR octet_length(fingerprint_sha256) = 32),
  -- Idempotency: one certificate per request id, whoever sends it; csr_sha256 tells a retry
  -- (same CSR: the same certificate again) from a reuse (another CSR: ALREADY_EXISTS).
  request_id         text UNIQUE CHECK (request_id IS NULL OR octet_length(request_id) BETWEEN 1 AND 128),
  csr_sha256         bytea CHECK (csr_sha256 IS NULL OR octet_length(csr_sha256) = 32),
  requester          text NOT NULL DEFAULT '',
  renewed_from       bytea REFERENCES certificates (serial),
  created_at         timestamptz NOT NULL DEFAULT now(),
  CHECK (not_after > not_before),
  CHECK (status = 'reserved' OR (der IS NOT NULL AND fingerprint_sha256 IS NOT NULL)),
  CHECK (kind NOT IN ('device', 'external_device') OR comm_id IS NOT NULL),
  CHECK (kind <> 'broker' OR broker_name IS NOT NULL),
  CHECK (kind <> 'identity' OR identity_name IS NOT NULL)
);
CREATE INDEX certificates_comm_id ON certificates (comm_id, not_after) WHERE comm_id IS NOT NULL;
CREATE INDEX certificates_issuer_not_after ON certificates (issuer_id, not_after);
CREATE INDEX certificates_not_after ON certificates (not_after);
CREATE INDEX certificates_created ON certificates (created_at, serial);
CREATE INDEX certificates_broker ON certificates (broker_name) WHERE broker_name IS NOT NULL;

-- Revocations (RFC 5280 section 5.3.1 reason codes; 7 is unused, 6 is certificateHold).
CREATE TABLE revocations (
  serial          bytea PRIMARY KEY REFERENCES certificates (serial),
  issuer_id       text COLLATE "C" NOT NULL REFERENCES issuers (id),
  reason          smallint NOT NULL CHECK (reason BETWEEN 0 AND 10 AND reason <> 7),
  revoked_at      timestamptz NOT NULL DEFAULT now(),
  invalidity_date timestamptz,
  revision        bigint NOT NULL
);
CREATE INDEX revocations_issuer ON revocations (issuer_id, serial);

-- Serials revoked by a customer's own CRL (imported), for certificates fleetca may not track.
CREATE TABLE imported_crls (
  issuer_id   text COLLATE "C" PRIMARY KEY REFERENCES issuers (id),
  crl_number  numeric,
  this_update timestamptz NOT NULL,
  next_update timestamptz,
  der         bytea NOT NULL,
  imported_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE imported_revocations (
  issuer_id  text COLLATE "C" NOT NULL REFERENCES imported_crls (issuer_id) ON DELETE CASCADE,
  serial     bytea NOT NULL CHECK (octet_length(serial) BETWEEN 1 AND 20),
  reason     smallint CHECK (reason BETWEEN 0 AND 10 AND reason <> 7),
  revoked_at timestamptz NOT NULL,
  PRIMARY KEY (issuer_id, serial)
);

-- CRLs built by the background worker, newest served. crl_number is monotonic per issuer.
CREATE TABLE crls (
  issuer_id        text COLLATE "C" NOT NULL REFERENCES issuers (id),
  crl_number       bigint NOT NULL CHECK (crl_number >= 1),
  base_crl_number  bigint CHECK (base_crl_number IS NULL OR base_crl_number < crl_number),
  this_update      timestamptz NOT NULL,
  next_update      timestamptz NOT NULL CHECK (next_update > this_update),
  revoked_count    integer NOT NULL CHECK (revoked_count >= 0),
  der              bytea NOT NULL,
  created_at       timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (issuer_id, crl_number)
);

-- ACL profiles: named rule sets. rules is a JSON array of
-- {"pattern": "devices/%c/#", "access": "readwrite"}; validated in C++ as MQTT topic filters.
CREATE TABLE acl_profiles (
  name        text COLLATE "C" PRIMARY KEY CHECK (name ~ '^[a-z0-9][a-z0-9._-]{0,62}$'),
  description text NOT NULL DEFAULT '' CHECK (octet_length(description) <= 1024),
  rules       jsonb NOT NULL CHECK (jsonb_typeof(rules) = 'array'),
  builtin     boolean NOT NULL DEFAULT false,
  version     bigint NOT NULL DEFAULT 1,
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE acl_assignments (
  profile_name text COLLATE "C" NOT NULL REFERENCES acl_profiles (name) ON DELETE RESTRICT,
  subject_type text NOT NULL CHECK (subject_type IN ('device', 'group', 'identity', 'all_devices')),
  subject      text COLLATE "C" NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (profile_name, subject_type, subject),
  CHECK ((subject_type = 'all_devices') = (subject = ''))
);
CREATE INDEX acl_assignments_subject ON acl_assignments (subject_type, subject);

-- fleetca_log_lock serializes every append to change_log until commit.
-- Writers call it as late as they can in their transaction to keep the section short.
CREATE FUNCTION fleetca_log_lock() RETURNS void LANGUAGE sql AS $$
  SELECT pg_advisory_xact_lock(7318262781330071552);  -- 'fleetca' log lock
$$;

-- fleetca_append_changes records one change-log revision per key; returns the last one.
CREATE FUNCTION fleetca_append_changes(p_entity_type text, p_keys text[], p_op text)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE last_revision bigint;
BEGIN
  PERFORM fleetca_log_lock();
  WITH ins AS (
    INSERT INTO change_log (entity_type, entity_key, op)
    SELECT p_entity_type, k, p_op FROM unnest(p_keys) WITH ORDINALITY AS t (k, n) ORDER BY n
    RETURNING revision)
  SELECT max(revision) INTO last_revision FROM ins;
  RETURN last_revision;
END $$;

-- fleetca_append_audit records one audit entry (one per API call: a batch is one entry
-- whose details list its objects). No lock: the sequencer chains it later. Returns its id.
CREATE FUNCTION fleetca_append_audit(p_actor text, p_action text, p_target text,
                                     p_request_id text, p_details jsonb)
RETURNS bigint LANGUAGE sql AS $$
  INSERT INTO audit_log (actor, action, target, request_id, details)
  VALUES (p_actor, p_action, p_target, p_request_id, p_details) RETURNING id;
$$;

-- fleetca_chain_audit chains up to p_limit unchained entries, oldest id first, and returns
-- how many it chained (0 when another session is chaining). For each entry:
--   chain_seq = previous chain_seq + 1
--   hash = sha256(prev_hash || canonical), canonical being
--   chain_seq|id|epoch-microseconds|actor|action|target|request_id|details-as-jsonb-text
-- (jsonb's text form is canonical: sorted keys, fixed spacing).
CREATE FUNCTION fleetca_chain_audit(p_limit integer) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
  seq  bigint;
  prev bytea;
  h    bytea;
  n    integer := 0;
  r    record;
BEGIN
  IF NOT pg_try_advisory_xact_lock(7318262781330071554) THEN  -- 'fleetca' audit sequencer
    RETURN 0;
  END IF;
  SELECT chain_seq, hash INTO seq, prev FROM audit_log
    WHERE chain_seq IS NOT NULL ORDER BY chain_seq DESC LIMIT 1;
  seq := coalesce(seq, 0);
  FOR r IN SELECT id, created_at, actor, action, target, request_id, details FROM audit_log
           WHERE chain_seq IS NULL ORDER BY id LIMIT p_limit LOOP
    seq := seq + 1;
    h := sha256(coalesce(prev, ''::bytea) || convert_to(
           seq::text || '|' || r.id::text || '|'
           || (extract(epoch FROM r.created_at) * 1000000)::bigint::text || '|' || r.actor || '|'
           || r.action || '|' || r.target || '|' || r.request_id || '|' || r.details::text,
           'UTF8'));
    UPDATE audit_log SET chain_seq = seq, prev_hash = prev, hash = h WHERE id = r.id;
    prev := h;
    n := n + 1;
  END LOOP;
  RETURN n;
END $$;

-- fleetca_issuance_check is the first step of an issuance transaction: it serializes
-- requests carrying the same request id (a concurrent retry waits here until the first
-- commits or aborts), then reports the certificate already issued for that request id (if
-- any), and the subject's state, locking the subject's row until commit so it cannot be
-- suspended or removed under the issuance.
CREATE FUNCTION fleetca_issuance_check(p_request_id text, p_comm_id text, p_broker text,
                                       OUT prior_serial bytea, OUT device_status text,
                                       OUT broker_found boolean)
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_advisory_xact_lock(hashtextextended(p_request_id, 7318262781330071555));
  SELECT serial INTO prior_serial FROM certificates WHERE request_id = p_request_id;
  IF p_comm_id <> '' THEN
    SELECT status INTO device_status FROM devices WHERE comm_id = p_comm_id FOR SHARE;
  END IF;
  broker_found := false;
  IF p_broker <> '' THEN
    SELECT true INTO broker_found FROM brokers WHERE name = p_broker FOR SHARE;
    broker_found := coalesce(broker_found, false);
  END IF;
END $$;

-- Wake watchers (sync streams, CRL builder) when a change commits.
CREATE FUNCTION fleetca_notify_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('fleetca_changes', '');
  RETURN NULL;
END $$;
CREATE TRIGGER change_log_notify AFTER INSERT ON change_log
  FOR EACH STATEMENT EXECUTE FUNCTION fleetca_notify_change();
