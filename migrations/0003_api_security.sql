-- API security (issue 4): fleetca's own TLS server certificates are kept in the inventory
-- like every certificate it signs.
ALTER TABLE certificates DROP CONSTRAINT certificates_kind_check;
ALTER TABLE certificates ADD CONSTRAINT certificates_kind_check
  CHECK (kind IN ('device', 'broker', 'identity', 'external_device', 'server'));
