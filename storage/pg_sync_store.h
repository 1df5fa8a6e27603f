#pragma once

#include "storage/acl_store.h"
#include "storage/connection_pool.h"
#include "storage/sync_store.h"

namespace fleetca::storage {

// PgSyncStore reads devices, identities, issuers, CRLs and certificates with its own
// statements (only the columns brokers need, many keys per statement); ACL profiles and
// assignments through the AclStore (few, and read as AclService reads them).
class PgSyncStore final : public SyncStore {
 public:
  PgSyncStore(ConnectionPool& pool, AclStore& acls) : pool_(pool), acls_(acls) {}

  absl::StatusOr<std::vector<SyncObject>> Read(SyncKind kind,
                                               const std::vector<std::string>& keys) override;
  absl::StatusOr<SyncPage> List(SyncKind kind, const std::string& cursor, int limit) override;
  absl::StatusOr<int64_t> OldestRevision() override;

 private:
  absl::StatusOr<std::vector<SyncObject>> Query(SyncKind kind, const std::vector<std::string>* keys,
                                                const std::string& after, int limit);
  absl::StatusOr<std::vector<SyncObject>> ReadAcl(SyncKind kind, const std::vector<std::string>& keys);
  absl::StatusOr<std::vector<SyncObject>> ListAcl(SyncKind kind, const std::string& after,
                                                  int limit);
  absl::StatusOr<SyncPage> ScanCertificates(const std::string& cursor, int limit);

  ConnectionPool& pool_;
  AclStore& acls_;
};

}  // namespace fleetca::storage
