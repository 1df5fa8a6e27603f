#pragma once

#include "storage/connection_pool.h"
#include "storage/identity_store.h"

namespace fleetca::storage {

class PgIdentityStore final : public IdentityStore {
 public:
  explicit PgIdentityStore(ConnectionPool& pool) : pool_(pool) {}

  absl::StatusOr<IdentityRecord> Create(const IdentityRecord& identity,
                                        const CertificateRecord& certificate,
                                        const std::function<absl::StatusOr<std::string>()>& sign,
                                        const RequestContext& ctx,
                                        CertificateRecord* stored) override;
  absl::StatusOr<CertificateRecord> AddCertificate(
      const std::string& name, const CertificateRecord& certificate,
      const std::function<absl::StatusOr<std::string>()>& sign, bool revoke_previous,
      const RequestContext& ctx,
      std::vector<std::string>* revoked_serials_hex) override;
  absl::StatusOr<IdentityRecord> Get(const std::string& name) override;
  absl::StatusOr<std::vector<IdentityRecord>> List(const IdentityFilter& filter,
                                                   const std::string& after, int limit) override;
  absl::StatusOr<RevokeIdentityResult> Revoke(const std::string& name, int reason,
                                              const std::string& comment,
                                              const RequestContext& ctx) override;
  absl::StatusOr<int64_t> CountActive(const std::string& role) override;
  absl::StatusOr<std::vector<std::string>> LoadRevokedNames() override;

 private:
  ConnectionPool& pool_;
};

}  // namespace fleetca::storage
