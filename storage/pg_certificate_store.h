#pragma once

#include "storage/certificate_store.h"
#include "storage/connection_pool.h"

namespace fleetca::storage {

class PgCertificateStore final : public CertificateStore {
 public:
  explicit PgCertificateStore(ConnectionPool& pool) : pool_(pool) {}

  absl::StatusOr<IssueOutcome> Issue(const CertificateRecord& reserved,
                                     const std::function<absl::StatusOr<std::string>()>& sign,
                                     const RequestContext& ctx) override;
  absl::StatusOr<CertificateRecord> GetBySerial(const std::string& serial) override;
  absl::StatusOr<CertificateRecord> GetByFingerprint(const std::string& fingerprint) override;
  absl::StatusOr<CertificateRecord> GetByRequestId(const std::string& request_id) override;
  absl::StatusOr<std::vector<CertificateRecord>> List(const CertificateFilter& filter,
                                                      const CertificateCursor& after,
                                                      int limit) override;

 private:
  ConnectionPool& pool_;
};

}  // namespace fleetca::storage
