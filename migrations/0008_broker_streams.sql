-- The brokers' sync state as the replicas record it (BrokerSyncState in GetBroker and
-- ListBrokers, issue 6): every few seconds, each replica upserts one row per broker it
-- streams to (or did since its last write) with its open stream count, the highest
-- revision it sent and when the broker was last sent something. A row not refreshed for
-- 60 s belongs to a replica that is gone (crashed, or stopped before its last write):
-- readers leave it out. Deleting a broker deletes its rows.
CREATE TABLE broker_streams (
  broker_name   text COLLATE "C" NOT NULL REFERENCES brokers (name) ON DELETE CASCADE,
  replica_id    text NOT NULL CHECK (replica_id <> '' AND octet_length(replica_id) <= 64),
  streams       integer NOT NULL CHECK (streams >= 0),
  sent_revision bigint NOT NULL CHECK (sent_revision >= 0),
  last_seen_at  timestamptz NOT NULL,
  updated_at    timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (broker_name, replica_id)
);

-- The columns of 0001 this table replaces (never written).
ALTER TABLE brokers DROP COLUMN last_seen_at, DROP COLUMN last_revision;
