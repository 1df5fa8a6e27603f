#pragma once

// The server side of API security: fleetca's own TLS server certificate (issued from the
// brokers CA by the server itself, recorded in the inventory like every certificate it
// signs) and the trust anchors callers' certificates are checked against.

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/auth/authenticator.h"
#include "server/ca/certificate_authority.h"
#include "storage/certificate_store.h"

namespace fleetca::app {

struct ServerCertificateFiles {
  std::string certificate_path;  // certificate then its chain (PEM)
  std::string key_path;          // PKCS#8 PEM, mode 0600
};

// IssueServerCertificate makes a new key and a server certificate for `names` (DNS names
// or IP addresses) from the active brokers CA, stores it (kind server) and then writes the
// files (atomically: key first, then certificate). Returns the certificate's notAfter.
// FAILED_PRECONDITION when there is no active brokers CA ("run fleetca-server init").
absl::StatusOr<absl::Time> IssueServerCertificate(ca::CertificateAuthority& ca,
                                                  storage::CertificateStore& certificates,
                                                  const std::vector<std::string>& names,
                                                  absl::Duration validity,
                                                  const ServerCertificateFiles& files);

// DefaultServerNames: localhost, 127.0.0.1, ::1 and the host name.
std::vector<std::string> DefaultServerNames();

// LoadTrustAnchors: the root, operators and devices CAs (active, and retired ones still
// valid) that callers' certificates may chain to.
absl::StatusOr<std::vector<auth::TrustAnchor>> LoadTrustAnchors(ca::CertificateAuthority& ca);

}  // namespace fleetca::app
