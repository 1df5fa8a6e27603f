#pragma once

// Authenticator: who is calling, from the client certificate of the TLS connection.
//
// The handshake only proves the caller holds the key of the certificate it presents (the
// server asks for a certificate but verifies it here, so that a missing, foreign, expired
// or revoked one is refused with UNAUTHENTICATED and a reason instead of a bare handshake
// failure). Here, on every call:
//   1. the certificate chains to fleetca's root through an operators CA (an identity: role
//      and name from its URI "fleetca://role/<role>/<name>", name == CN) or a devices CA
//      (a device: role device, name = CN = comm-ID), and allows clientAuth;
//   2. it is within its validity period (checked on every call, not only the first);
//   3. neither the identity nor the certificate is revoked.
// Steps 1's result is cached per certificate (the chain check costs a signature
// verification); 2 and 3 are checked against memory on every call: the revoked sets are
// kept current by Refresh (from the database, every second, for the other replicas'
// changes) and by MarkRevoked (this replica's own revocations, at once).

#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "pki/openssl_util.h"
#include "server/auth/roles.h"

namespace fleetca::auth {

// Principal: an authenticated caller.
struct Principal {
  std::string name;  // identity name, or a device's comm-ID
  Role role = Role::kViewer;
  std::string serial_hex;  // the client certificate's serial, lowercase hex
  std::string issuer_id;   // the issuer that signed it
  absl::Time not_after;
};

// A CA certificate callers' certificates may chain through.
struct TrustAnchor {
  std::string issuer_id;
  enum class Kind { kRoot, kOperators, kDevices, kOther } kind = Kind::kOther;
  pki::X509Ptr certificate;
};

// The revoked identities and identity-certificate serials (hex), as last read.
struct RevokedSet {
  absl::flat_hash_set<std::string> identities;
  absl::flat_hash_set<std::string> serials;
};

class Authenticator {
 public:
  Authenticator() = default;

  // SetAnchors replaces the CAs trusted for callers (and forgets cached verifications).
  void SetAnchors(std::vector<TrustAnchor> anchors);
  // AddRevoked adds the revoked sets read from the database; MarkRevoked adds this
  // replica's own revocations at once. Nothing is ever removed: an identity's revocation is
  // final, so a database snapshot read before a revocation committed cannot undo it.
  void AddRevoked(const RevokedSet& revoked);
  void MarkRevoked(const std::string& identity, const std::vector<std::string>& serials_hex);

  // Authenticate: the principal of a PEM client certificate at `now`, or UNAUTHENTICATED
  // with the reason.
  absl::StatusOr<Principal> Authenticate(const std::string& certificate_pem, absl::Time now);

 private:
  absl::StatusOr<Principal> Verify(const std::string& certificate_pem, absl::Time now,
                                   const std::vector<TrustAnchor>* anchors);

  absl::Mutex mu_;
  std::shared_ptr<const std::vector<TrustAnchor>> anchors_ ABSL_GUARDED_BY(mu_);
  RevokedSet revoked_ ABSL_GUARDED_BY(mu_);
  // Verified certificates (PEM -> principal), bounded: cleared when it reaches kMaxCached.
  absl::flat_hash_map<std::string, Principal> verified_ ABSL_GUARDED_BY(mu_);
};

}  // namespace fleetca::auth
