#pragma once

// CSR intake: everything fleetca checks about a certificate signing request before it
// decides anything from it. The CSR's subject is only read, never copied into a
// certificate: the CA builds the subject itself.

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "pki/keys.h"
#include "pki/openssl_util.h"

namespace fleetca::pki {

inline constexpr size_t kMaxCsrBytes = 16 * 1024;

struct ParsedCsr {
  KeyAlgorithm key_algorithm = KeyAlgorithm::kEcdsaP256;
  std::string public_key_der;  // the DER SubjectPublicKeyInfo, checked against the key policy
  std::string der;  // the CSR as DER (PEM input is decoded), for idempotency checks
  // Every commonName attribute of the subject, in order, as UTF-8 bytes.
  std::vector<std::string> common_names;
  // From the extensionRequest attribute:
  std::vector<std::string> dns_names;
  std::vector<std::string> ip_addresses;  // textual form, e.g. "192.0.2.1", "2001:db8::1"
  bool has_other_names = false;           // SAN entries other than DNS and IP (URI, email...)
  std::vector<std::string> extension_oids;  // every requested extension, dotted OID
};

// ParseCsr decodes (PEM when is_pem, else DER) and checks a CSR. Every failure is
// INVALID_ARGUMENT with a message starting "<field>: ":
//   empty; larger than kMaxCsrBytes; not PEM ("no CERTIFICATE REQUEST block"), more than
//   one PEM block, not DER, trailing bytes after the DER; the signature does not verify
//   (no proof of possession); the key is not allowed (KeyAlgorithmOf's reason).
absl::StatusOr<ParsedCsr> ParseCsr(absl::string_view field, absl::string_view data, bool is_pem);

}  // namespace fleetca::pki
