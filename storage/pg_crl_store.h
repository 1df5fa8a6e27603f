#pragma once

#include "storage/connection_pool.h"
#include "storage/crl_store.h"

namespace fleetca::storage {

class PgCrlStore final : public CrlStore {
 public:
  explicit PgCrlStore(ConnectionPool& pool) : pool_(pool) {}

  absl::StatusOr<StoredCrl> Latest(const std::string& issuer_id, bool delta,
                                   bool with_der) override;
  absl::StatusOr<bool> BuildIfNeeded(
      const std::string& issuer_id, int64_t known_changes,
      const std::function<CrlKind(const CrlWork&)>& decide,
      const std::function<absl::StatusOr<Built>(int64_t crl_number, CrlEntryChanges& changes)>&
          build) override;
  absl::Status StoreDer(const std::string& issuer_id, int64_t crl_number,
                        const std::string& der) override;

 private:
  ConnectionPool& pool_;
};

}  // namespace fleetca::storage
