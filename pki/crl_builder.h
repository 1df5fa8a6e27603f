#pragma once

// BuildCrlDer: a v2 CRL (RFC 5280 section 5) assembled directly in DER, like certificates
// (certificate_builder.h): at a million entries OpenSSL's object model (an X509_REVOKED per
// entry, sorted, re-encoded) costs seconds; appending each entry's few dozen bytes does not.

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "pki/key_store.h"
#include "pki/openssl_util.h"

namespace fleetca::pki {

struct CrlEntry {
  std::string serial;  // bytes, big-endian, positive
  absl::Time revocation_date;
  int reason = 0;  // RFC 5280 CRLReason; 0 (unspecified): no reasonCode extension
  std::optional<absl::Time> invalidity_date;
  // The certificate's notAfter: an entry whose certificate expired by thisUpdate is left
  // out (RFC 5280 section 5.2 lets a CRL drop it; brokers refuse the certificate anyway).
  absl::Time certificate_not_after = absl::InfiniteFuture();
};

struct CrlTemplate {
  uint64_t crl_number = 0;  // cRLNumber (5.2.3), monotonic per issuer
  absl::Time this_update;
  absl::Time next_update;
  std::vector<CrlEntry> entries;  // written in the order given
  // A delta CRL (5.2.4): the number of the complete CRL it updates (deltaCRLIndicator,
  // critical). Its entries are the certificates whose status changed since that CRL, a
  // certificate no longer revoked (a hold released) with reason removeFromCRL (8).
  std::optional<uint64_t> delta_base_crl_number;
  // A complete CRL's freshestCRL extension (5.2.6): where its delta CRLs are published.
  // OpenSSL uses delta CRLs (X509_V_FLAG_USE_DELTAS) only for a certificate or complete CRL
  // that has one. Omitted when empty.
  std::string freshest_crl_url;
};


// BuildCrlDer signs the CRL with signer_issuer_id's key in key_store; issuer name and
// authorityKeyIdentifier (5.2.1) come from issuer_cert. INVALID_ARGUMENT for a bad
// template (next_update not after this_update, a serial not 1..20 bytes or not positive,
// a reason outside 0..10 or 7).
absl::StatusOr<std::string> BuildCrlDer(const CrlTemplate& tmpl, const X509* issuer_cert,
                                        KeyStore& key_store, const std::string& signer_issuer_id);

// AppendCrlEntry appends one revokedCertificates entry (a SEQUENCE, RFC 5280 5.1.2.6) to
// out; INVALID_ARGUMENT (nothing appended) for a bad serial or reason. A builder that keeps
// its entries encoded between CRLs (server/revocation/crl_publisher) encodes each once.
absl::Status AppendCrlEntry(const CrlEntry& entry, std::string* out);

// BuildCrlDerFromEncoded is BuildCrlDer with the entries already encoded: tmpl.entries is
// ignored; append_entries appends exactly entries_bytes bytes of AppendCrlEntry output.
absl::StatusOr<std::string> BuildCrlDerFromEncoded(
    const CrlTemplate& tmpl, size_t entries_bytes,
    const std::function<void(std::string*)>& append_entries, const X509* issuer_cert,
    KeyStore& key_store, const std::string& signer_issuer_id);

}  // namespace fleetca::pki
