#include "pki/crl_reader.h"

#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <cstring>
#include <ctime>

#include "absl/strings/str_cat.h"
#include "pki/openssl_util.h"

namespace fleetca::pki {
namespace {

absl::Status Invalid(absl::string_view why) {
  ClearOpenSslErrors();
  return absl::InvalidArgumentError(std::string(why));
}

std::optional<absl::Time> TimeOf(const ASN1_TIME* t) {
  struct tm tm;
  std::memset(&tm, 0, sizeof(tm));
  if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1) return std::nullopt;
  return absl::FromCivil(absl::CivilSecond(tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                                           tm.tm_hour, tm.tm_min, tm.tm_sec),
                         absl::UTCTimeZone());
}

// The bytes of a non-negative INTEGER, big-endian, without leading zeros; "" if negative.
std::string IntegerBytes(const ASN1_INTEGER* n) {
  BIGNUM* bn = ASN1_INTEGER_to_BN(n, nullptr);
  if (bn == nullptr || BN_is_negative(bn)) {
    BN_free(bn);
    return "";
  }
  std::string out(static_cast<size_t>(BN_num_bytes(bn)), '\0');
  BN_bn2bin(bn, reinterpret_cast<unsigned char*>(out.data()));
  BN_free(bn);
  return out;
}

}  // namespace

absl::StatusOr<int64_t> CrlEntryCount(const std::string& der) {
  const unsigned char* p = reinterpret_cast<const unsigned char*>(der.data());
  X509CrlPtr crl(d2i_X509_CRL(nullptr, &p, static_cast<long>(der.size())));
  if (crl == nullptr) return Invalid("not a DER CRL");
  STACK_OF(X509_REVOKED)* revoked = X509_CRL_get_REVOKED(crl.get());
  return revoked == nullptr ? 0 : sk_X509_REVOKED_num(revoked);
}

absl::StatusOr<std::string> CrlPemToDer(const std::string& pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (bio == nullptr) return Invalid("cannot read the PEM");
  X509CrlPtr crl(PEM_read_bio_X509_CRL(bio.get(), nullptr, nullptr, nullptr));
  if (crl == nullptr) return Invalid("not a PEM \"X509 CRL\" block");
  unsigned char* buf = nullptr;
  const int len = i2d_X509_CRL(crl.get(), &buf);
  if (len <= 0) return Invalid("cannot encode the CRL");
  std::string der(reinterpret_cast<const char*>(buf), static_cast<size_t>(len));
  OPENSSL_free(buf);
  return der;
}

absl::StatusOr<ReadCrlResult> ReadCrl(const std::string& der, const X509* issuer) {
  const unsigned char* p = reinterpret_cast<const unsigned char*>(der.data());
  X509CrlPtr crl(d2i_X509_CRL(nullptr, &p, static_cast<long>(der.size())));
  if (crl == nullptr || p != reinterpret_cast<const unsigned char*>(der.data()) + der.size()) {
    return Invalid("not a DER CRL (or bytes after it)");
  }
  if (X509_NAME_cmp(X509_CRL_get_issuer(crl.get()), X509_get_subject_name(issuer)) != 0) {
    return Invalid("its issuer is not the CA's subject");
  }
  EVP_PKEY* key = X509_get0_pubkey(issuer);
  if (key == nullptr || X509_CRL_verify(crl.get(), key) != 1) {
    return Invalid("its signature does not verify with the CA's key");
  }
  int critical = 0;
  void* delta = X509_CRL_get_ext_d2i(crl.get(), NID_delta_crl, &critical, nullptr);
  ASN1_INTEGER_free(static_cast<ASN1_INTEGER*>(delta));
  if (delta != nullptr || critical != -1) {  // -1: absent; else a delta CRL, or malformed
    return Invalid("it is a delta CRL: import full CRLs only");
  }
  ReadCrlResult out;
  out.der = der;
  std::optional<absl::Time> this_update = TimeOf(X509_CRL_get0_lastUpdate(crl.get()));
  if (!this_update) return Invalid("its thisUpdate cannot be read");
  out.this_update = *this_update;
  std::optional<absl::Time> next_update = TimeOf(X509_CRL_get0_nextUpdate(crl.get()));
  if (!next_update) return Invalid("it has no nextUpdate");
  out.next_update = *next_update;
  ASN1_INTEGER* number =
      static_cast<ASN1_INTEGER*>(X509_CRL_get_ext_d2i(crl.get(), NID_crl_number, &critical, nullptr));
  if (number != nullptr) {
    int64_t n = 0;
    if (ASN1_INTEGER_get_int64(&n, number) == 1 && n >= 0) out.crl_number = n;
    ASN1_INTEGER_free(number);
  } else if (critical != -1) {
    return Invalid("its CRL number cannot be read");
  }
  STACK_OF(X509_REVOKED)* revoked = X509_CRL_get_REVOKED(crl.get());
  const int count = revoked == nullptr ? 0 : sk_X509_REVOKED_num(revoked);
  out.entries.reserve(static_cast<size_t>(count));
  for (int i = 0; i < count; ++i) {
    const X509_REVOKED* r = sk_X509_REVOKED_value(revoked, i);
    ReadCrlEntry e;
    e.serial = IntegerBytes(X509_REVOKED_get0_serialNumber(r));
    if (e.serial.empty() || e.serial.size() > 20) {
      return Invalid(absl::StrCat("entry ", i, " has a serial that is not 1 to 20 positive bytes"));
    }
    std::optional<absl::Time> when = TimeOf(X509_REVOKED_get0_revocationDate(r));
    if (!when) return Invalid(absl::StrCat("entry ", i, " has an unreadable revocation date"));
    e.revocation_time = *when;
    ASN1_ENUMERATED* reason = static_cast<ASN1_ENUMERATED*>(
        X509_REVOKED_get_ext_d2i(r, NID_crl_reason, &critical, nullptr));
    if (reason != nullptr) {
      e.reason = static_cast<int>(ASN1_ENUMERATED_get(reason));
      ASN1_ENUMERATED_free(reason);
      if (e.reason < 0 || e.reason > 10 || e.reason == 7) {
        return Invalid(absl::StrCat("entry ", i, " has an unknown reason code ", e.reason));
      }
      if (e.reason == 8) {
        return Invalid(absl::StrCat("entry ", i, " has reason removeFromCRL, which only a delta "
                                    "CRL may carry"));
      }
    } else if (critical != -1) {
      return Invalid(absl::StrCat("entry ", i, " has an unreadable reason code"));
    }
    out.entries.push_back(std::move(e));
  }
  ClearOpenSslErrors();
  return out;
}

}  // namespace fleetca::pki
