#pragma once

// Certificate and CSR builders: every extension fleetca puts in a certificate is decided
// here, from a template filled by the CA (never copied from a CSR).

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "pki/key_store.h"
#include "pki/openssl_util.h"

namespace fleetca::pki {

struct SubjectName {
  std::string common_name;
  std::string organization;         // omitted when empty
  std::string organizational_unit;  // omitted when empty
  std::string country;              // omitted when empty (two letters)
};

enum class CertificateProfile {
  kRootCa,          // CA:TRUE critical; keyUsage keyCertSign, cRLSign critical
  kIntermediateCa,  // CA:TRUE pathlen:0 critical; keyUsage keyCertSign, cRLSign critical
  kClient,          // CA:FALSE critical; keyUsage digitalSignature critical; EKU clientAuth
  kServer,          // CA:FALSE critical; keyUsage digitalSignature critical; EKU serverAuth
};

struct CertificateTemplate {
  CertificateProfile profile = CertificateProfile::kClient;
  std::string serial;  // big-endian bytes, positive (see RandomSerial)
  SubjectName subject;
  absl::Time not_before;
  absl::Time not_after;
  // The subject's key: either a key (borrowed; its algorithm is checked against the key
  // policy) or public_key_der, a DER SubjectPublicKeyInfo copied into the certificate as it
  // is (from CSR intake, which has checked the key: ParseCsr).
  const EVP_PKEY* public_key = nullptr;
  std::string public_key_der;
  std::vector<std::string> dns_names;    // subjectAltName dNSName entries
  std::vector<std::string> ip_addresses; // subjectAltName iPAddress entries (textual)
  std::vector<std::string> uris;         // subjectAltName uniformResourceIdentifier entries
  std::string crl_url;         // CRL distribution point URI; omitted when empty
  std::string ca_issuers_url;  // AIA caIssuers URI; omitted when empty
};

// BuildCertificateDer makes a v3 certificate from the template, assembling its DER directly
// (no OpenSSL object model: it is the hot path of issuance): issuer name and authority key
// identifier from issuer_cert (for a self-signed root pass nullptr: issuer = subject and
// AKI = its own SKI), subject key identifier from the public key, and signs it with
// signer_issuer_id's key in key_store. INVALID_ARGUMENT for a bad template (serial not
// positive or longer than 20 bytes, not_after <= not_before, bad IP text); the KeyStore's
// error otherwise.
absl::StatusOr<std::string> BuildCertificateDer(const CertificateTemplate& tmpl,
                                                const X509* issuer_cert, KeyStore& key_store,
                                                const std::string& signer_issuer_id);
// BuildCertificate is BuildCertificateDer, decoded.
absl::StatusOr<X509Ptr> BuildCertificate(const CertificateTemplate& tmpl, const X509* issuer_cert,
                                         KeyStore& key_store, const std::string& signer_issuer_id);

// BuildCsr makes a CSR for subject with public_key, signed by signer_issuer_id's key (the
// matching private key) in key_store: the offline-root flow, where an intermediate's key
// stays here and its certificate is signed elsewhere.
absl::StatusOr<X509ReqPtr> BuildCsr(const SubjectName& subject, const EVP_PKEY* public_key,
                                    KeyStore& key_store, const std::string& signer_issuer_id);

// Parts shared with the CRL builder (crl_builder.h):
// IssuerKeyIdOf is the key identifier of issuer for an authorityKeyIdentifier: its
// subjectKeyIdentifier, or the SHA-1 of its key (RFC 5280 section 4.2.1.2 method 1).
absl::StatusOr<std::string> IssuerKeyIdOf(const X509* issuer);
// SubjectNameDerOf: cert's subject Name, DER.
absl::StatusOr<std::string> SubjectNameDerOf(const X509* cert);
// AppendExtension writes one Extension (RFC 5280 section 4.1) with value's DER.
void AppendExtension(std::string* out, const char* oid, bool critical, absl::string_view value);

// DistributionPointsDer: CRLDistributionPoints (RFC 5280 4.2.1.13) naming one URI, the value
// of cRLDistributionPoints in certificates and of freshestCRL (5.2.6) in complete CRLs.
// INVALID_ARGUMENT for a URL that is not printable ASCII without spaces.
absl::StatusOr<std::string> DistributionPointsDer(absl::string_view url);

// RandomSerial returns 20 random bytes (RFC 5280 maximum) forming a positive integer with at
// least 152 bits of randomness: the first byte is in 0x01..0x7f.
std::string RandomSerial();

// SerialToHex: lowercase hex, no separators ("0a1b..."). SerialFromHex accepts upper or
// lower case, with or without ':' separators; INVALID_ARGUMENT otherwise.
std::string SerialToHex(absl::string_view serial);
absl::StatusOr<std::string> SerialFromHex(absl::string_view hex);

// VerifyChain checks that leaf chains to one of roots through intermediates at time `at`
// with X509_verify_cert (purpose any). Returns OK, or INVALID_ARGUMENT with OpenSSL's
// verification error text ("certificate signature failure", "certificate has expired", ...).
// With anchors_may_be_intermediates (X509_V_FLAG_PARTIAL_CHAIN), every certificate of roots
// is a trust anchor, self-signed or not (an external CA registered as an intermediate).
absl::Status VerifyChain(const X509* leaf, const std::vector<const X509*>& intermediates,
                         const std::vector<const X509*>& roots, absl::Time at,
                         bool anchors_may_be_intermediates = false);

// CertificateInfo: what fleetca reads back from a certificate.
struct CertificateInfo {
  std::string serial;  // bytes
  std::string subject;
  std::string issuer;
  std::string common_name;  // the first CN, or ""
  absl::Time not_before;
  absl::Time not_after;
  bool is_ca = false;
  bool can_sign_certificates = false;  // keyUsage keyCertSign (or no keyUsage at all)
  std::vector<std::string> dns_names;
  std::vector<std::string> ip_addresses;
  std::vector<std::string> uris;
  std::string subject_key_id;  // bytes, may be empty
};
absl::StatusOr<CertificateInfo> InspectCertificate(const X509* cert);

}  // namespace fleetca::pki
