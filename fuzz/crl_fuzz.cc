// Customer CRL intake (pki::ReadCrl, the entry point of RevocationService.ImportCrl) on
// hostile bytes. A CRL the fuzzer makes up never carries a valid signature, so each input
// that OpenSSL decodes as a CRL is also re-issued under the fuzz CA (its issuer name set to
// the CA's, signed with the CA's key) and read again: that drives the reading of the
// entries, extensions and times past the signature check.
//
// Invariants (pki/crl_reader.h):
// - every failure is INVALID_ARGUMENT;
// - an accepted CRL has 1..20-byte positive serials, reason codes of RFC 5280 (never 7,
//   never removeFromCRL) or -1, a nextUpdate, and as many entries as CrlEntryCount says;
// - CrlPemToDer never crashes, and what it returns is DER that decodes.

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/time/time.h"
#include "fuzz/fuzz_util.h"
#include "pki/certificate_builder.h"
#include "pki/crl_reader.h"
#include "pki/key_store.h"
#include "pki/keys.h"
#include "pki/openssl_util.h"

namespace fleetca::fuzz {
namespace {

EVP_PKEY* ca_key = nullptr;
X509* ca_cert = nullptr;

void CheckRead(const std::string& der) {
  absl::StatusOr<pki::ReadCrlResult> crl = pki::ReadCrl(der, ca_cert);
  if (!crl.ok()) {
    FUZZ_CHECK(absl::IsInvalidArgument(crl.status()), "failure that is not INVALID_ARGUMENT");
    return;
  }
  FUZZ_CHECK(crl->der == der, "accepted DER is not the input");
  for (const pki::ReadCrlEntry& e : crl->entries) {
    FUZZ_CHECK(!e.serial.empty() && e.serial.size() <= 20 && e.serial[0] != '\0',
               "serial not 1..20 bytes without a leading zero");
    FUZZ_CHECK(e.reason == -1 || (e.reason >= 0 && e.reason <= 10 && e.reason != 7 &&
                                  e.reason != 8),
               "reason code");
  }
  absl::StatusOr<int64_t> count = pki::CrlEntryCount(der);
  FUZZ_CHECK(count.ok() && *count == static_cast<int64_t>(crl->entries.size()), "entry count");
}

// Resigned: the CRL under the fuzz CA's name and key, DER; "" when OpenSSL will not.
std::string Resigned(absl::string_view input) {
  const unsigned char* p = reinterpret_cast<const unsigned char*>(input.data());
  pki::X509CrlPtr crl(d2i_X509_CRL(nullptr, &p, static_cast<long>(input.size())));
  std::string out;
  if (crl != nullptr && X509_CRL_set_issuer_name(crl.get(), X509_get_subject_name(ca_cert)) == 1 &&
      X509_CRL_sign(crl.get(), ca_key, EVP_sha256()) > 0) {
    unsigned char* der = nullptr;
    const int len = i2d_X509_CRL(crl.get(), &der);
    if (len > 0) out.assign(reinterpret_cast<const char*>(der), static_cast<size_t>(len));
    OPENSSL_free(der);
  }
  pki::ClearOpenSslErrors();
  return out;
}

}  // namespace
}  // namespace fleetca::fuzz

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  using namespace fleetca;
  auto key = pki::GenerateKey(pki::KeyAlgorithm::kEcdsaP256);
  if (!key.ok()) std::abort();
  pki::SoftwareKeyStore store;
  fuzz::ca_key = key->get();
  EVP_PKEY_up_ref(fuzz::ca_key);
  pki::CertificateTemplate t;
  t.profile = pki::CertificateProfile::kRootCa;
  t.serial = std::string("\x01", 1);
  t.subject.common_name = "Fuzz Customer CA";
  t.not_before = absl::FromUnixSeconds(1767225600);
  t.not_after = t.not_before + absl::Hours(24 * 3650);
  t.public_key = key->get();
  store.Add("ca", std::move(*key));
  auto cert = pki::BuildCertificate(t, nullptr, store, "ca");
  if (!cert.ok()) std::abort();
  fuzz::ca_cert = cert->release();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace fleetca;
  const absl::string_view input = fuzz::AsView(data, size);
  const std::string bytes(input);
  fuzz::CheckRead(bytes);
  const std::string resigned = fuzz::Resigned(input);
  if (!resigned.empty()) fuzz::CheckRead(resigned);
  absl::StatusOr<std::string> from_pem = pki::CrlPemToDer(bytes);
  if (from_pem.ok()) {
    FUZZ_CHECK(pki::CrlEntryCount(*from_pem).ok(), "PEM gave DER that does not decode");
  } else {
    FUZZ_CHECK(absl::IsInvalidArgument(from_pem.status()), "PEM failure not INVALID_ARGUMENT");
  }
  return 0;
}
