#pragma once

// PostgreSQL implementation of AuditStore (table audit_log, migrations/0001).

#include <string>

#include "storage/audit_store.h"
#include "storage/connection_pool.h"

namespace fleetca::storage {

class PgAuditStore final : public AuditStore {
 public:
  // Rows Verify reads per statement: each page is a short read-only transaction, so a long
  // log is verified without holding one snapshot (and a pooled connection) for minutes.
  static constexpr int kVerifyPageRows = 5000;

  // pool is borrowed and must outlive the store. verify_page_rows is for tests.
  explicit PgAuditStore(ConnectionPool& pool, int verify_page_rows = kVerifyPageRows)
      : pool_(pool), verify_page_rows_(verify_page_rows > 0 ? verify_page_rows : 1) {}

  absl::StatusOr<std::vector<AuditEntry>> List(const AuditFilter& filter, int64_t after,
                                               bool newest_first, int limit) override;
  absl::StatusOr<AuditVerification> Verify(const AuditVerifyRequest& verify,
                                           const RequestContext* request) override;

 private:
  ConnectionPool& pool_;
  const int verify_page_rows_;
};

// AuditEntryHash computes an entry's hash exactly as fleetca_chain_audit does:
// SHA-256(prev_hash || "chain_seq|id|epoch_us|actor|action|target|request_id|details"),
// the numbers in decimal and details in jsonb's text form. prev_hash is raw bytes (empty
// for the first entry); returns raw bytes.
std::string AuditEntryHash(const std::string& prev_hash, const std::string& chain_seq,
                           const std::string& id, const std::string& epoch_us,
                           const std::string& actor, const std::string& action,
                           const std::string& target, const std::string& request_id,
                           const std::string& details_text);

}  // namespace fleetca::storage
