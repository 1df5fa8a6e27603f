#pragma once

#include "storage/connection_pool.h"
#include "storage/crl_store.h"

namespace fleetca::storage {

class PgCrlStore final : public CrlStore {
 public:
  explicit PgCrlStore(ConnectionPool& pool) : pool_(pool) {}

  absl::StatusOr<StoredCrl> Latest(const std::string& issuer_id) override;
  absl::StatusOr<bool> BuildIfNeeded(
      const std::string& issuer_id, const std::function<bool(const CrlWork&)>& decide,
      const std::function<absl::StatusOr<Built>(int64_t crl_number,
                                                const std::vector<CrlEntryRow>& entries)>& build)
      override;

 private:
  ConnectionPool& pool_;
};

}  // namespace fleetca::storage
