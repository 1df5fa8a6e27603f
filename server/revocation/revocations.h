#pragma once

// Revocations: revoke, hold and release certificates fleetca issued, and read their
// revocation state. Validates what the API layer cannot (reason codes, times, comments),
// and tells this replica's authenticator of each revocation at once (a revoked identity or
// device certificate is refused from the next call on).

#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/auth/authenticator.h"
#include "storage/revocation_store.h"

namespace fleetca::revocation {

class Revocations {
 public:
  // Borrowed; authenticator may be null.
  Revocations(storage::RevocationStore& store, auth::Authenticator* authenticator)
      : store_(store), authenticator_(authenticator) {}

  // Revoke: reason is an RFC 5280 code other than certificateHold (6, see Hold),
  // removeFromCRL (8), cACompromise (2) and aACompromise (10): INVALID_ARGUMENT (reason).
  // invalidity_time must not be in the future (INVALID_ARGUMENT invalidity_time); comment
  // is up to 256 bytes of UTF-8 (INVALID_ARGUMENT comment).
  absl::StatusOr<storage::RevocationOutcome> Revoke(const std::string& serial,
                                                    const std::string& issuer_id, int reason,
                                                    std::optional<absl::Time> invalidity_time,
                                                    const std::string& comment,
                                                    const RequestContext& ctx);
  absl::StatusOr<storage::RevocationOutcome> Hold(const std::string& serial,
                                                  const std::string& issuer_id,
                                                  const std::string& comment,
                                                  const RequestContext& ctx);
  absl::StatusOr<storage::RevocationOutcome> Release(const std::string& serial,
                                                     const std::string& issuer_id,
                                                     const std::string& comment,
                                                     const RequestContext& ctx);
  // RevokeDevice: every live certificate of a device (same reason rules as Revoke), and
  // with suspend the device (if active). NOT_FOUND for an unknown comm_id.
  absl::StatusOr<storage::DeviceRevocationOutcome> RevokeDevice(
      const std::string& comm_id, int reason, std::optional<absl::Time> invalidity_time,
      const std::string& comment, bool suspend, const RequestContext& ctx);
  absl::StatusOr<storage::RevocationState> Get(const std::string& serial,
                                               const std::string& issuer_id);

 private:
  storage::RevocationStore& store_;
  auth::Authenticator* authenticator_;
};

}  // namespace fleetca::revocation
