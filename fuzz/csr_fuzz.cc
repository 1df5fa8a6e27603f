// CSR intake (pki::ParseCsr, the entry point of SignDeviceCsr, SignBrokerCsr and renewal)
// on hostile bytes, as DER and as PEM; then, for a CSR that passes, the certificate
// builder on what intake hands it (pki::BuildCertificateDer, the issuance path).
//
// Invariants (pki/csr.h):
// - every failure is INVALID_ARGUMENT "csr: ...";
// - accepted DER is the input itself (strict DER, no trailing bytes) and parses again to
//   the same result (intake is idempotent on its own output, which retries compare);
// - a certificate built from an accepted CSR parses with OpenSSL and carries the CSR's
//   SubjectPublicKeyInfo unchanged.

#include <openssl/x509.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/strings/match.h"
#include "absl/time/time.h"
#include "fuzz/fuzz_util.h"
#include "pki/certificate_builder.h"
#include "pki/csr.h"
#include "pki/key_store.h"
#include "pki/keys.h"
#include "pki/openssl_util.h"

namespace fleetca::fuzz {
namespace {

pki::SoftwareKeyStore* key_store = nullptr;
constexpr char kSigner[] = "fuzz-devices-ca";

bool SameResult(const pki::ParsedCsr& a, const pki::ParsedCsr& b) {
  return a.key_algorithm == b.key_algorithm && a.public_key_der == b.public_key_der &&
         a.der == b.der && a.common_names == b.common_names && a.dns_names == b.dns_names &&
         a.ip_addresses == b.ip_addresses && a.has_other_names == b.has_other_names &&
         a.extension_oids == b.extension_oids;
}

void CheckAccepted(const pki::ParsedCsr& csr, absl::string_view input, bool is_pem) {
  FUZZ_CHECK(!csr.der.empty() && csr.der.size() <= pki::kMaxCsrBytes, "DER size");
  FUZZ_CHECK(!csr.public_key_der.empty(), "public key");
  if (!is_pem) FUZZ_CHECK(csr.der == input, "accepted DER is not the input");
  absl::StatusOr<pki::ParsedCsr> again = pki::ParseCsr("csr", csr.der, /*is_pem=*/false);
  FUZZ_CHECK(again.ok(), "intake refuses its own DER");
  FUZZ_CHECK(SameResult(csr, *again), "intake is not idempotent");

  // The certificate the issuance path would build from it.
  pki::CertificateTemplate tmpl;
  tmpl.profile = pki::CertificateProfile::kClient;
  tmpl.serial = std::string("\x01\x23\x45\x67\x89\xab\xcd\xef\x01\x23\x45\x67\x89\xab\xcd\xef", 16);
  tmpl.subject.common_name = csr.common_names.empty() ? "device-1" : csr.common_names.front();
  tmpl.not_before = absl::FromUnixSeconds(1767225600);
  tmpl.not_after = tmpl.not_before + absl::Hours(24 * 365);
  tmpl.public_key_der = csr.public_key_der;
  tmpl.dns_names = csr.dns_names;
  tmpl.ip_addresses = csr.ip_addresses;
  tmpl.crl_url = "http://127.0.0.1:8080/crl/devices.crl";
  absl::StatusOr<std::string> der =
      pki::BuildCertificateDer(tmpl, /*issuer_cert=*/nullptr, *key_store, kSigner);
  if (!der.ok()) return;  // e.g. a CN the builder refuses: issuance checks CN == comm-ID first
  absl::StatusOr<pki::X509Ptr> cert = pki::CertificateFromDer(*der);
  FUZZ_CHECK(cert.ok(), "the builder made a certificate OpenSSL cannot read");
  unsigned char* spki = nullptr;
  const int len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert->get()), &spki);
  FUZZ_CHECK(len > 0, "certificate without a public key");
  const std::string got(reinterpret_cast<const char*>(spki), static_cast<size_t>(len));
  OPENSSL_free(spki);
  FUZZ_CHECK(got == csr.public_key_der, "the certificate's key differs from the CSR's");
}

}  // namespace
}  // namespace fleetca::fuzz

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  using namespace fleetca;
  auto key = pki::GenerateKey(pki::KeyAlgorithm::kEcdsaP256);
  if (!key.ok()) std::abort();
  fuzz::key_store = new pki::SoftwareKeyStore();
  fuzz::key_store->Add(fuzz::kSigner, std::move(*key));
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace fleetca;
  const absl::string_view input = fuzz::AsView(data, size);
  for (const bool is_pem : {false, true}) {
    absl::StatusOr<pki::ParsedCsr> csr = pki::ParseCsr("csr", input, is_pem);
    if (!csr.ok()) {
      FUZZ_CHECK(absl::IsInvalidArgument(csr.status()), "failure that is not INVALID_ARGUMENT");
      FUZZ_CHECK(absl::StartsWith(csr.status().message(), "csr: "), "message without field");
      continue;
    }
    fuzz::CheckAccepted(*csr, input, is_pem);
  }
  return 0;
}
