-- ACL profiles (issue 6): the built-in profiles and what the database enforces behind
-- storage/pg_acl_store.cc (the API validates first; these are the last line of defence).

-- Byte order for the whole listing key (subject_type, subject, profile_name), like every
-- other key (COLLATE "C"): keyset pages mean the same thing on every server. One index in
-- that order serves the listing and the subject filters (it supersedes
-- acl_assignments_subject); the primary key serves "who has this profile".
ALTER TABLE acl_assignments ALTER COLUMN subject_type TYPE text COLLATE "C";
DROP INDEX acl_assignments_subject;
CREATE INDEX acl_assignments_subject ON acl_assignments (subject_type, subject, profile_name);

-- The API's limits: a description of at most 256 bytes (0001 allowed 1024), at most 64
-- rules, each an object with a non-empty string pattern and a known access.
ALTER TABLE acl_profiles ADD CONSTRAINT acl_profiles_description_size
  CHECK (octet_length(description) <= 256);
ALTER TABLE acl_profiles ADD CONSTRAINT acl_profiles_rules_count
  CHECK (jsonb_typeof(rules) <> 'array' OR jsonb_array_length(rules) <= 64);

CREATE FUNCTION fleetca_acl_rules_well_formed(p_rules jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
  SELECT jsonb_typeof(p_rules) <> 'array' OR NOT EXISTS (
    SELECT 1 FROM jsonb_array_elements(p_rules) AS r (e)
     WHERE jsonb_typeof(r.e) IS DISTINCT FROM 'object'
        OR jsonb_typeof(r.e -> 'pattern') IS DISTINCT FROM 'string'
        OR r.e ->> 'pattern' = ''
        OR jsonb_typeof(r.e -> 'access') IS DISTINCT FROM 'string'
        OR r.e ->> 'access' NOT IN ('read', 'write', 'readwrite', 'subscribe', 'deny'));
$$;
ALTER TABLE acl_profiles ADD CONSTRAINT acl_profiles_rules_well_formed
  CHECK (fleetca_acl_rules_well_formed(rules));

-- A built-in profile stays, whatever the caller: it cannot be deleted, renamed or made an
-- ordinary profile (its rules and description may be edited). The message names the
-- constraint so that pg_errors.cc reports it (libpqxx 6 does not expose the field).
CREATE FUNCTION fleetca_acl_profiles_builtin_is_permanent() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    RAISE EXCEPTION 'ACL profile % is built in (constraint "acl_profiles_builtin_is_permanent")',
      OLD.name
      USING ERRCODE = 'check_violation', CONSTRAINT = 'acl_profiles_builtin_is_permanent';
  END IF;
  IF NEW.name <> OLD.name OR NOT NEW.builtin THEN
    RAISE EXCEPTION 'ACL profile % is built in (constraint "acl_profiles_builtin_is_permanent")',
      OLD.name
      USING ERRCODE = 'check_violation', CONSTRAINT = 'acl_profiles_builtin_is_permanent';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER acl_profiles_builtin_is_permanent BEFORE DELETE OR UPDATE OF name, builtin
  ON acl_profiles FOR EACH ROW WHEN (OLD.builtin)
  EXECUTE FUNCTION fleetca_acl_profiles_builtin_is_permanent();

-- The built-in profiles, and "device" for every device. Plain INSERTs: no API wrote these
-- tables before this migration, so a conflict means a hand-made row, and the migration
-- should stop and say so rather than keep or overwrite it silently.
INSERT INTO acl_profiles (name, description, rules, builtin) VALUES
  ('device', 'a device''s own subtree',
   '[{"pattern": "devices/%c/#", "access": "readwrite"}]', true),
  ('watcher', 'subscribe to everything, publish nothing',
   '[{"pattern": "#", "access": "read"}]', true),
  ('controller', 'every topic',
   '[{"pattern": "#", "access": "readwrite"}]', true);
INSERT INTO acl_assignments (profile_name, subject_type, subject) VALUES
  ('device', 'all_devices', '');

-- Their change-log revisions, so that a broker following the log sees them (keys as
-- storage/pg_acl_store.cc writes them), under the log lock like every append.
SELECT fleetca_log_lock();
INSERT INTO change_log (entity_type, entity_key, op) VALUES
  ('acl_profile', 'device', 'upsert'),
  ('acl_profile', 'watcher', 'upsert'),
  ('acl_profile', 'controller', 'upsert'),
  ('acl_assignment', 'all_devices//device', 'upsert');
