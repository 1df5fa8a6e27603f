#pragma once

// ReadCrl: a CRL someone else signed (a customer CA's, imported through the API), parsed
// with OpenSSL's own decoder and checked against its issuer: signature, issuer name, full
// (not delta) CRL, nextUpdate present. Its entries as fleetca stores them.

#include <openssl/x509.h>

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace fleetca::pki {

struct ReadCrlEntry {
  std::string serial;  // bytes, big-endian, no leading zero
  absl::Time revocation_time;
  int reason = -1;  // RFC 5280 CRLReason, -1 when the entry has no reason code
};

struct ReadCrlResult {
  std::string der;
  std::optional<int64_t> crl_number;  // nullopt when absent (or beyond int64)
  absl::Time this_update;
  absl::Time next_update;
  std::vector<ReadCrlEntry> entries;
};

// ReadCrl parses `der` and checks it was issued and signed by `issuer`. INVALID_ARGUMENT
// with the reason otherwise (not a CRL, another issuer's, a bad signature, a delta CRL, no
// nextUpdate, an entry with reason removeFromCRL or an unreadable entry).
absl::StatusOr<ReadCrlResult> ReadCrl(const std::string& der, const X509* issuer);

// CrlEntryCount: the number of entries of a DER CRL (no check of who signed it).
absl::StatusOr<int64_t> CrlEntryCount(const std::string& der);

// CrlPemToDer: the DER of the one "X509 CRL" PEM block; INVALID_ARGUMENT otherwise.
absl::StatusOr<std::string> CrlPemToDer(const std::string& pem);

}  // namespace fleetca::pki
