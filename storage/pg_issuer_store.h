#pragma once

#include "storage/connection_pool.h"
#include "storage/issuer_store.h"

namespace fleetca::storage {

class PgIssuerStore final : public IssuerStore {
 public:
  explicit PgIssuerStore(ConnectionPool& pool) : pool_(pool) {}

  absl::Status CreateAll(const std::vector<Issuer>& issuers, const RequestContext& ctx) override;
  absl::StatusOr<Issuer> Get(const std::string& id) override;
  absl::StatusOr<std::vector<Issuer>> List() override;
  absl::StatusOr<std::string> Replace(const Issuer& issuer, const std::optional<Issuer>& new_root,
                                      const RequestContext& ctx) override;
  absl::StatusOr<std::string> Activate(const std::string& id, int64_t expected_version,
                                       const std::string& certificate_der,
                                       const std::string& chain_der, const std::string& parent_id,
                                       absl::Time not_before, absl::Time not_after,
                                       const std::optional<Issuer>& new_root,
                                       const RequestContext& ctx) override;

 private:
  ConnectionPool& pool_;
};

}  // namespace fleetca::storage
