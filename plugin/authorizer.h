#pragma once

// The plugin's decisions over a Policy snapshot: may a client connect (its certificate, its
// client id), with which rules; and, for a client already connected, does that still hold.
// No I/O, no locks: called on the broker's thread.

#include <openssl/x509.h>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "acl/policy.h"
#include "fleetca/v1/broker_sync.pb.h"
#include "plugin/policy.h"

namespace fleetca::plugin {

// ClientCertificate: what the plugin keeps of a connected client's certificate, read once
// at CONNECT: enough to re-decide without the certificate.
struct ClientCertificate {
  std::string issuer_id;  // the policy issuer that signed it
  std::string serial;     // lowercase hex
  std::array<uint8_t, 32> fingerprint{};
  std::string common_name;
  int64_t not_after = 0;  // Unix seconds

  std::string key() const { return CertificateKey(issuer_id, serial); }
};

enum class Verdict {
  kAllowed,
  kNoCertificate,        // the client sent none
  kUntrustedIssuer,      // no client issuer of the policy signed it (or it is disabled)
  kCertificateUnknown,   // not in the inventory, and its CA does not accept such
  kCertificateMismatch,  // the serial is known with another fingerprint
  kCertificateRevoked,
  kCertificateOnHold,
  kCertificateExpired,
  kClientIdMismatch,     // CN != MQTT client id
  kPrincipalUnknown,     // no such device or identity
  kPrincipalInactive,    // suspended, decommissioned, disabled ...
  kNoPolicy,             // no policy snapshot yet
  kUnavailable,          // query mode: fleetca did not answer in time
};

struct Decision {
  Verdict verdict = Verdict::kNoPolicy;
  std::string message;  // for the broker's log, e.g. "device 356938035643809 is SUSPENDED"
  v1::PrincipalType principal_type = v1::PRINCIPAL_TYPE_UNSPECIFIED;
  std::string principal_id;
  std::vector<acl::ResolvedRule> rules;  // when allowed

  bool allowed() const { return verdict == Verdict::kAllowed; }
};

// ReadClientCertificate finds the policy issuer (purpose DEVICES or OPERATORS, or an
// external CA) that issued `cert` (name and key identifier match, then: the inventory
// holds this very certificate, or its signature verifies with the issuer's key) and reads
// its serial, fingerprint, CN and expiry. kNoCertificate, kCertificateUnknown (unreadable)
// or kUntrustedIssuer (in *refusal) when it cannot.
bool ReadClientCertificate(const Policy& policy, X509* cert, ClientCertificate* out,
                           Decision* refusal);

// Decide: may the holder of `cert` connect as `client_id` (or keep its connection) now:
// the issuer is still trusted and enabled, the certificate is in the inventory (or its
// external CA accepts unregistered ones), ACTIVE, unexpired, its CN is the client id and
// names the certificate's principal, and that device or identity is ACTIVE. When allowed,
// the principal's rules.
Decision Decide(const Policy& policy, const ClientCertificate& cert, absl::string_view client_id,
                absl::Time now);

// LosesRights: whether going from `before` to `after` takes anything away: a rule of
// `before` that `after` lacks, or a DENY rule `after` adds. Both sorted by acl::RuleOrder
// (as ResolveRules sorts them).
bool LosesRights(const std::vector<acl::ResolvedRule>& before,
                 const std::vector<acl::ResolvedRule>& after);

// VerdictName: a short constant name ("certificate_revoked"), for logs and tests.
absl::string_view VerdictName(Verdict verdict);

}  // namespace fleetca::plugin
