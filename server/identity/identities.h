#pragma once

// Identities: the principals that call the API (admins, provisioning stations, brokers,
// viewers) or connect to brokers as non-device MQTT clients. Each is a name and a role; its
// credentials are certificates from the operators CA with CN = name and the URI
// subjectAltName "fleetca://role/<role>/<name>" that auth::Authenticator reads on every call.

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/request_context.h"
#include "pki/keys.h"
#include "server/auth/authenticator.h"
#include "server/ca/certificate_authority.h"
#include "storage/broker_store.h"
#include "storage/identity_store.h"

namespace fleetca::identity {

// Where a new certificate's key comes from: the caller's CSR, or generated here (the
// private key is returned once and stored nowhere).
struct KeySource {
  std::string csr_pem;
  std::optional<pki::KeyAlgorithm> generate;
};

struct IssuedIdentity {
  storage::IdentityRecord identity;
  storage::CertificateRecord certificate;
  std::string certificate_pem;
  std::string chain_pem;        // the operators CA and above, root included
  std::string private_key_pem;  // PKCS#8, only when generated here
};

struct IdentityPage {
  std::vector<storage::IdentityRecord> identities;
  std::string next_page_token;
};

inline constexpr absl::Duration kDefaultIdentityValidity = absl::Hours(24 * 365);
inline constexpr absl::Duration kMaxIdentityValidity = absl::Hours(24 * 825);

// RoleUri: "fleetca://role/<role>/<name>".
std::string RoleUri(auth::Role role, const std::string& name);
// DbRoleName / RoleFromDb: the identities table's spelling ("mqtt_client").
std::string DbRoleName(auth::Role role);
std::optional<auth::Role> RoleFromDb(const std::string& role);

class Identities {
 public:
  // Borrowed; they must outlive this object. authenticator (may be null) learns of this
  // replica's revocations at once.
  Identities(ca::CertificateAuthority& ca, storage::IdentityStore& store,
             storage::BrokerStore& brokers, auth::Authenticator* authenticator)
      : ca_(ca), store_(store), brokers_(brokers), authenticator_(authenticator) {}

  // Issue: INVALID_ARGUMENT naming the field (name, role, display_name, csr_pem,
  // validity); ALREADY_EXISTS for a taken name; FAILED_PRECONDITION without an operators
  // CA, or for a BROKER identity whose name is not a registered broker.
  absl::StatusOr<IssuedIdentity> Issue(const std::string& name, auth::Role role,
                                       const std::string& display_name, const KeySource& key,
                                       absl::Duration validity, const RequestContext& ctx);
  absl::StatusOr<IssuedIdentity> Renew(const std::string& name, const KeySource& key,
                                       absl::Duration validity, bool revoke_previous,
                                       const RequestContext& ctx);
  absl::StatusOr<storage::IdentityRecord> Get(const std::string& name);
  absl::StatusOr<IdentityPage> List(const storage::IdentityFilter& filter, int page_size,
                                    const std::string& page_token);
  // Revoke: reason is an RFC 5280 code (0 unspecified, 1 keyCompromise, 3 affiliationChanged,
  // 4 superseded, 5 cessationOfOperation, 9 privilegeWithdrawn).
  absl::StatusOr<storage::RevokeIdentityResult> Revoke(const std::string& name, int reason,
                                                       const std::string& comment,
                                                       const RequestContext& ctx);

 private:
  absl::StatusOr<IssuedIdentity> Sign(const std::string& name, auth::Role role,
                                      const KeySource& key, absl::Duration validity,
                                      storage::CertificateRecord* record,
                                      pki::CertificateTemplate* tmpl,
                                      std::shared_ptr<const ca::ActiveIssuer>* issuer);

  ca::CertificateAuthority& ca_;
  storage::IdentityStore& store_;
  storage::BrokerStore& brokers_;
  auth::Authenticator* authenticator_;
};

// ValidateIdentityName: 1 to 63 characters of [a-z0-9._-], starting with a letter or digit.
absl::Status ValidateIdentityName(absl::string_view field, absl::string_view name);

}  // namespace fleetca::identity
