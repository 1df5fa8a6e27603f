#pragma once

// IdentityStore: API and MQTT client identities (a name and a role) and their certificates
// (kind "identity", from the operators CA).

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/request_context.h"
#include "storage/certificate_store.h"

namespace fleetca::storage {

struct IdentityRecord {
  std::string name;
  std::string role;    // database spelling: admin, provisioner, broker, viewer, mqtt_client
  std::string status;  // active, revoked
  std::string description;
  absl::Time create_time, update_time;
  // Read with the identity: its newest certificate's serial (bytes, "" for none) and how
  // many of its certificates are issued and unexpired.
  std::string latest_serial;
  int active_certificate_count = 0;
};

struct IdentityFilter {
  std::string role;    // "" for any
  std::string status;  // "" for any
};

struct RevokeIdentityResult {
  IdentityRecord identity;
  std::vector<std::string> revoked_serials;  // bytes; empty when it was revoked already
};

class IdentityStore {
 public:
  virtual ~IdentityStore() = default;

  // Create inserts the identity and, in the same transaction, its first certificate:
  // `certificate` is the record to store (status issued), `sign` is called once the name is
  // known to be free and returns the DER. ALREADY_EXISTS when the name is taken (revoked
  // names included); nothing is stored when sign fails. *stored receives the certificate
  // as stored (fingerprint, creation time, requester).
  virtual absl::StatusOr<IdentityRecord> Create(
      const IdentityRecord& identity, const CertificateRecord& certificate,
      const std::function<absl::StatusOr<std::string>()>& sign, const RequestContext& ctx,
      CertificateRecord* stored) = 0;

  // AddCertificate stores a further certificate of an ACTIVE identity (renewal), revoking
  // its other certificates (reason superseded) when revoke_previous; their serials (hex)
  // go to *revoked_serials_hex. NOT_FOUND, or FAILED_PRECONDITION when revoked.
  virtual absl::StatusOr<CertificateRecord> AddCertificate(
      const std::string& name, const CertificateRecord& certificate,
      const std::function<absl::StatusOr<std::string>()>& sign, bool revoke_previous,
      const RequestContext& ctx, std::vector<std::string>* revoked_serials_hex) = 0;

  virtual absl::StatusOr<IdentityRecord> Get(const std::string& name) = 0;
  // List returns up to limit identities with names after `after`, by name.
  virtual absl::StatusOr<std::vector<IdentityRecord>> List(const IdentityFilter& filter,
                                                           const std::string& after, int limit) = 0;
  // Revoke marks the identity revoked and revokes its issued certificates (RFC 5280 reason
  // code), in one transaction. Idempotent. NOT_FOUND; FAILED_PRECONDITION when it is the
  // last active admin.
  virtual absl::StatusOr<RevokeIdentityResult> Revoke(const std::string& name, int reason,
                                                      const std::string& comment,
                                                      const RequestContext& ctx) = 0;
  // CountActive: active identities with a role ("" for any).
  virtual absl::StatusOr<int64_t> CountActive(const std::string& role) = 0;
  // LoadRevokedNames: the revoked identities, whose every certificate authentication
  // refuses. (Revoked certificates themselves are read by revision from the
  // RevocationStore, identity certificates included.)
  virtual absl::StatusOr<std::vector<std::string>> LoadRevokedNames() = 0;
};

}  // namespace fleetca::storage
