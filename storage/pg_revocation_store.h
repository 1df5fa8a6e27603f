#pragma once

#include "storage/connection_pool.h"
#include "storage/revocation_store.h"

namespace pqxx {
class transaction_base;
}  // namespace pqxx

namespace fleetca::storage {

// RevokeLocked revokes certificates (by CertificateChangeKey: the serial in hex for
// fleetca's, "<issuer>/<hex>" for external ones; already locked by the caller's
// transaction) under one change-log revision: each gets its revocation row (a hold's row
// becomes this revocation) and status 'revoked' ('on_hold' for reason certificateHold, 6).
// Every path that revokes or holds goes through it.
void RevokeLocked(pqxx::transaction_base& tx, const std::vector<std::string>& keys, int reason,
                  std::optional<absl::Time> invalidity_time, const std::string& comment,
                  int64_t revision, bool from_imported_crl = false);

class PgRevocationStore final : public RevocationStore {
 public:
  explicit PgRevocationStore(ConnectionPool& pool) : pool_(pool) {}

  absl::StatusOr<RevocationOutcome> Revoke(const std::string& serial, const std::string& issuer_id,
                                           int reason, std::optional<absl::Time> invalidity_time,
                                           const std::string& comment,
                                           const RequestContext& ctx) override;
  absl::StatusOr<RevocationOutcome> Hold(const std::string& serial, const std::string& issuer_id,
                                         const std::string& comment,
                                         const RequestContext& ctx) override;
  absl::StatusOr<RevocationOutcome> Release(const std::string& serial,
                                            const std::string& issuer_id,
                                            const std::string& comment,
                                            const RequestContext& ctx) override;
  absl::StatusOr<DeviceRevocationOutcome> RevokeDevice(const std::string& comm_id, int reason,
                                                       std::optional<absl::Time> invalidity_time,
                                                       const std::string& comment, bool suspend,
                                                       const RequestContext& ctx) override;
  absl::StatusOr<RevokedPage> RevokedSince(int64_t after_revision, int limit) override;
  absl::StatusOr<RevocationState> Get(const std::string& serial,
                                      const std::string& issuer_id) override;

 private:
  // Change runs `change` on the locked certificate in one transaction, then reads the state.
  enum class Op { kRevoke, kHold, kRelease };
  absl::StatusOr<RevocationOutcome> Change(Op op, const std::string& serial,
                                           const std::string& issuer_id, int reason,
                                           std::optional<absl::Time> invalidity_time,
                                           const std::string& comment, const RequestContext& ctx);

  ConnectionPool& pool_;
};

}  // namespace fleetca::storage
