#pragma once

#include "storage/connection_pool.h"
#include "storage/external_ca_store.h"

namespace fleetca::storage {

class PgExternalCaStore final : public ExternalCaStore {
 public:
  explicit PgExternalCaStore(ConnectionPool& pool) : pool_(pool) {}

  absl::StatusOr<ExternalCa> Create(const ExternalCa& ca, const RequestContext& ctx) override;
  absl::StatusOr<ExternalCa> Get(const std::string& id) override;
  absl::StatusOr<std::vector<ExternalCa>> List(const std::string& after, int limit) override;
  absl::StatusOr<ExternalCa> Update(const std::string& id, const ExternalCaUpdate& update,
                                    std::optional<int64_t> expected_version,
                                    const RequestContext& ctx) override;
  absl::Status Remove(const std::string& id, std::optional<int64_t> expected_version,
                      const RequestContext& ctx) override;
  absl::StatusOr<RegisteredCertificate> RegisterCertificate(const CertificateRecord& record,
                                                            const RequestContext& ctx) override;
  absl::StatusOr<ImportCrlOutcome> ImportCrl(const std::string& id, const ImportedCrl& crl,
                                             const RequestContext& ctx) override;
  absl::StatusOr<ImportedCrl> GetImportedCrl(const std::string& id) override;

 private:
  ConnectionPool& pool_;
};

}  // namespace fleetca::storage
