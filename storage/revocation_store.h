#pragma once

// RevocationStore: revocations and holds of the certificates fleetca tracks, each change
// committed with its audit entry and a change-log revision (entity "revocation", key the
// serial in hex) in one transaction.

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/request_context.h"
#include "storage/certificate_store.h"

namespace fleetca::storage {

// RFC 5280 reason code certificateHold: the reason a hold is stored with.
inline constexpr int kReasonCertificateHold = 6;

struct RevocationEntry {
  int reason = 0;  // RFC 5280 code
  absl::Time revoke_time;
  std::optional<absl::Time> invalidity_time;
  std::string comment;
  int64_t revision = 0;  // the change-log revision that recorded it
  bool from_imported_crl = false;  // learnt from a customer CRL (ImportCrl)
};

// A certificate's revocation state.
struct RevocationState {
  std::string serial;  // bytes
  std::string issuer_id;
  std::string comm_id;  // the device, for device certificates
  CertificateStatus status = CertificateStatus::kIssued;
  absl::Time not_after;
  std::optional<RevocationEntry> revocation;  // set when revoked or on hold
  // The first stored CRL of the issuer that reflects this status; 0 while none does. Set
  // by Get only.
  int64_t published_crl_number = 0;
};

struct DeviceRevocationOutcome {
  std::vector<std::string> revoked_serials;  // bytes, the certificates this call revoked
  std::vector<std::string> revoked_issuers;  // their issuers, in the same order
  bool suspended = false;                    // whether this call suspended the device
};

// A page of revocations recorded after a revision (holds left out).
struct RevokedPage {
  std::vector<std::string> serials_hex;  // of certificates not yet expired
  int64_t last_revision = 0;             // the newest revision read (the next call's start)
  int rows = 0;                          // rows read (a full page: there may be more)
};

struct RevocationOutcome {
  bool changed = false;  // false: the call found the state it asked for (idempotent)
  RevocationState state;
};

class RevocationStore {
 public:
  virtual ~RevocationStore() = default;

  // Every call names the certificate by serial (bytes), optionally with its issuer_id (""
  // for any); NOT_FOUND when no issued certificate matches.

  // Revoke: a revocation is final. Revoking a revoked certificate changes nothing; one on
  // hold is revoked with the new reason.
  virtual absl::StatusOr<RevocationOutcome> Revoke(const std::string& serial,
                                                   const std::string& issuer_id, int reason,
                                                   std::optional<absl::Time> invalidity_time,
                                                   const std::string& comment,
                                                   const RequestContext& ctx) = 0;
  // Hold: FAILED_PRECONDITION when revoked; holding a held certificate changes nothing.
  virtual absl::StatusOr<RevocationOutcome> Hold(const std::string& serial,
                                                 const std::string& issuer_id,
                                                 const std::string& comment,
                                                 const RequestContext& ctx) = 0;
  // Release: FAILED_PRECONDITION when revoked; releasing a certificate not on hold changes
  // nothing.
  virtual absl::StatusOr<RevocationOutcome> Release(const std::string& serial,
                                                    const std::string& issuer_id,
                                                    const std::string& comment,
                                                    const RequestContext& ctx) = 0;
  // RevokeDevice revokes every live (issued or on hold) certificate of a device and, with
  // suspend, sets an active device suspended (status_reason = comment), in one
  // transaction. NOT_FOUND for an unknown device.
  virtual absl::StatusOr<DeviceRevocationOutcome> RevokeDevice(
      const std::string& comm_id, int reason, std::optional<absl::Time> invalidity_time,
      const std::string& comment, bool suspend, const RequestContext& ctx) = 0;
  // RevokedSince: final revocations recorded after `after_revision`, oldest first, at most
  // `limit`: how replicas learn of each other's revocations (the authenticator's revoked set).
  virtual absl::StatusOr<RevokedPage> RevokedSince(int64_t after_revision, int limit) = 0;
  virtual absl::StatusOr<RevocationState> Get(const std::string& serial,
                                              const std::string& issuer_id) = 0;
};

}  // namespace fleetca::storage
