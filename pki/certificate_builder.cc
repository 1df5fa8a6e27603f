#include "pki/certificate_builder.h"

#include <arpa/inet.h>
#include <openssl/asn1.h>
#include <openssl/bn.h>
#include <openssl/objects.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/time/civil_time.h"

namespace fleetca::pki {
namespace {

template <typename T, void (*kFree)(T*)>
using Owned = std::unique_ptr<T, OpenSslDeleter<T, kFree>>;

using BasicConstraintsPtr = Owned<BASIC_CONSTRAINTS, BASIC_CONSTRAINTS_free>;
using BitStringPtr = Owned<ASN1_BIT_STRING, ASN1_BIT_STRING_free>;
using OctetStringPtr = Owned<ASN1_OCTET_STRING, ASN1_OCTET_STRING_free>;
using ExtendedKeyUsagePtr = Owned<EXTENDED_KEY_USAGE, EXTENDED_KEY_USAGE_free>;
using AuthorityKeyIdPtr = Owned<AUTHORITY_KEYID, AUTHORITY_KEYID_free>;
using GeneralNamePtr = Owned<GENERAL_NAME, GENERAL_NAME_free>;
using Asn1StringPtr = Owned<ASN1_STRING, ASN1_STRING_free>;
using CrlDistPointsPtr = Owned<CRL_DIST_POINTS, CRL_DIST_POINTS_free>;
using DistPointPtr = Owned<DIST_POINT, DIST_POINT_free>;
using DistPointNamePtr = Owned<DIST_POINT_NAME, DIST_POINT_NAME_free>;
using AuthorityInfoAccessPtr = Owned<AUTHORITY_INFO_ACCESS, AUTHORITY_INFO_ACCESS_free>;
using AccessDescriptionPtr = Owned<ACCESS_DESCRIPTION, ACCESS_DESCRIPTION_free>;
using StackOfX509Ptr = std::unique_ptr<STACK_OF(X509), void (*)(STACK_OF(X509)*)>;

constexpr size_t kMaxSerialBytes = 20;  // RFC 5280 section 4.1.2.2

// keyUsage bits, RFC 5280 section 4.2.1.3.
constexpr int kDigitalSignatureBit = 0;
constexpr int kKeyCertSignBit = 5;
constexpr int kCrlSignBit = 6;

absl::Status Invalid(absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat("certificate template: ", why));
}

absl::StatusOr<time_t> ToTimeT(absl::Time t, absl::string_view what) {
  // RFC 5280 section 4.1.2.5 can express years 1950 to 9999.
  static const absl::Time kMin =
      absl::FromCivil(absl::CivilSecond(1950, 1, 1, 0, 0, 0), absl::UTCTimeZone());
  static const absl::Time kMax =
      absl::FromCivil(absl::CivilSecond(9999, 12, 31, 23, 59, 59), absl::UTCTimeZone());
  if (t < kMin || t > kMax) {
    return Invalid(absl::StrCat(what, " is outside the years 1950 to 9999"));
  }
  return absl::ToTimeT(t);
}

absl::StatusOr<absl::Time> FromAsn1Time(const ASN1_TIME* t) {
  struct tm tm;
  std::memset(&tm, 0, sizeof(tm));
  if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1) {
    ClearOpenSslErrors();
    return absl::InvalidArgumentError("certificate has an unreadable validity time");
  }
  return absl::FromCivil(absl::CivilSecond(tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                                           tm.tm_min, tm.tm_sec),
                         absl::UTCTimeZone());
}

absl::Status AddExtension(X509* cert, int nid, void* value, bool critical, absl::string_view what) {
  if (X509_add1_ext_i2d(cert, nid, value, critical ? 1 : 0, X509V3_ADD_DEFAULT) != 1) {
    return OpenSslError(absl::StrCat("X509_add1_ext_i2d(", what, ")"));
  }
  return absl::OkStatus();
}

absl::StatusOr<X509NamePtr> BuildName(const SubjectName& subject) {
  if (subject.common_name.empty()) {
    return Invalid("subject common name is empty");
  }
  X509NamePtr name(X509_NAME_new());
  if (name == nullptr) {
    return OpenSslError("X509_NAME_new");
  }
  // Most significant first, as X.500 names are written: C, O, OU, CN.
  struct Part {
    int nid;
    const std::string* value;
    const char* what;
  };
  const Part parts[] = {
      {NID_countryName, &subject.country, "country (two letters)"},
      {NID_organizationName, &subject.organization, "organization (1 to 64 bytes)"},
      {NID_organizationalUnitName, &subject.organizational_unit,
       "organizational unit (1 to 64 bytes)"},
      {NID_commonName, &subject.common_name, "common name (1 to 64 bytes)"},
  };
  for (const Part& part : parts) {
    if (part.value->empty()) {
      continue;
    }
    // OpenSSL's string table enforces the X.520 upper bounds (ub-common-name 64, country
    // exactly 2, PrintableString for C) and picks UTF8String for the others.
    if (X509_NAME_add_entry_by_NID(name.get(), part.nid, MBSTRING_UTF8,
                                   reinterpret_cast<const unsigned char*>(part.value->data()),
                                   static_cast<int>(part.value->size()), -1, 0) != 1) {
      ClearOpenSslErrors();
      return Invalid(absl::StrCat("bad subject ", part.what));
    }
  }
  return name;
}

absl::StatusOr<Asn1IntegerPtr> SerialToAsn1(absl::string_view serial) {
  if (serial.empty()) {
    return Invalid("serial is empty");
  }
  if (static_cast<unsigned char>(serial[0]) == 0) {
    return Invalid("serial has a leading zero byte (not the canonical encoding)");
  }
  // DER adds a 0x00 byte when the top bit is set; the encoded INTEGER must fit in 20 octets.
  const size_t encoded = serial.size() + ((static_cast<unsigned char>(serial[0]) & 0x80) ? 1 : 0);
  if (encoded > kMaxSerialBytes) {
    return Invalid("serial is longer than 20 bytes");
  }
  BignumPtr bn(BN_bin2bn(reinterpret_cast<const unsigned char*>(serial.data()),
                         static_cast<int>(serial.size()), nullptr));
  if (bn == nullptr) {
    return OpenSslError("BN_bin2bn");
  }
  Asn1IntegerPtr integer(BN_to_ASN1_INTEGER(bn.get(), nullptr));
  if (integer == nullptr) {
    return OpenSslError("BN_to_ASN1_INTEGER");
  }
  return integer;
}

absl::StatusOr<std::string> IpToBytes(const std::string& text) {
  unsigned char buf[16];
  if (inet_pton(AF_INET, text.c_str(), buf) == 1) {
    return std::string(reinterpret_cast<const char*>(buf), 4);
  }
  if (inet_pton(AF_INET6, text.c_str(), buf) == 1) {
    return std::string(reinterpret_cast<const char*>(buf), 16);
  }
  return Invalid("bad IP address in subjectAltName");
}

// MakeGeneralName builds an IA5String-valued GENERAL_NAME (dNSName, URI) or an iPAddress.
absl::StatusOr<GeneralNamePtr> MakeGeneralName(int type, absl::string_view value) {
  Asn1StringPtr str(
      ASN1_STRING_type_new(type == GEN_IPADD ? V_ASN1_OCTET_STRING : V_ASN1_IA5STRING));
  if (str == nullptr) {
    return OpenSslError("ASN1_STRING_type_new");
  }
  if (ASN1_STRING_set(str.get(), value.data(), static_cast<int>(value.size())) != 1) {
    return OpenSslError("ASN1_STRING_set");
  }
  GeneralNamePtr name(GENERAL_NAME_new());
  if (name == nullptr) {
    return OpenSslError("GENERAL_NAME_new");
  }
  // GENERAL_NAME_set0_value takes ownership and cannot fail.
  GENERAL_NAME_set0_value(name.get(), type, str.release());
  return name;
}

absl::Status PushGeneralName(GENERAL_NAMES* names, GeneralNamePtr name) {
  if (sk_GENERAL_NAME_push(names, name.get()) <= 0) {
    return OpenSslError("sk_GENERAL_NAME_push");
  }
  name.release();  // owned by the stack now
  return absl::OkStatus();
}

// IsPrintableAsciiNoSpace: what a DNS name or URI (IA5String, RFC 5280 section 4.2.1.6) may hold.
bool IsPrintableAsciiNoSpace(absl::string_view s) {
  if (s.empty()) {
    return false;
  }
  for (const char c : s) {
    if (c <= 0x20 || c >= 0x7f) {
      return false;
    }
  }
  return true;
}

absl::StatusOr<GeneralNamesPtr> UriNames(const std::string& uri) {
  GeneralNamesPtr names(GENERAL_NAMES_new());
  if (names == nullptr) {
    return OpenSslError("GENERAL_NAMES_new");
  }
  auto name = MakeGeneralName(GEN_URI, uri);
  if (!name.ok()) {
    return name.status();
  }
  if (absl::Status st = PushGeneralName(names.get(), std::move(*name)); !st.ok()) {
    return st;
  }
  return names;
}

// SubjectKeyId is RFC 5280 section 4.2.1.2 method (1): SHA-1 of the subjectPublicKey BIT
// STRING.
absl::StatusOr<std::string> SubjectKeyIdOf(const X509* cert) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (X509_pubkey_digest(cert, EVP_sha1(), md, &len) != 1) {
    return OpenSslError("X509_pubkey_digest");
  }
  return std::string(reinterpret_cast<const char*>(md), len);
}

// IssuerKeyId: the issuer's own subjectKeyIdentifier when it has one (it may have been
// computed by another CA, by another method), else method (1) over its key.
absl::StatusOr<std::string> IssuerKeyIdOf(const X509* issuer) {
  int critical = 0;
  OctetStringPtr ski(static_cast<ASN1_OCTET_STRING*>(
      X509_get_ext_d2i(issuer, NID_subject_key_identifier, &critical, nullptr)));
  if (ski != nullptr && ASN1_STRING_length(ski.get()) > 0) {
    return std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(ski.get())),
                       static_cast<size_t>(ASN1_STRING_length(ski.get())));
  }
  ClearOpenSslErrors();
  return SubjectKeyIdOf(issuer);
}

absl::Status AddBasicConstraintsAndKeyUsage(X509* cert, CertificateProfile profile) {
  // RFC 5280 section 4.2.1.9: CA:TRUE only for CAs; pathlen 0 under an intermediate, so it
  // can issue only end-entity certificates.
  BasicConstraintsPtr bc(BASIC_CONSTRAINTS_new());
  BitStringPtr ku(ASN1_BIT_STRING_new());
  if (bc == nullptr || ku == nullptr) {
    return OpenSslError("BASIC_CONSTRAINTS_new");
  }
  bool ok = true;
  switch (profile) {
    case CertificateProfile::kRootCa:
      bc->ca = 0xff;
      ok = ASN1_BIT_STRING_set_bit(ku.get(), kKeyCertSignBit, 1) == 1 &&
           ASN1_BIT_STRING_set_bit(ku.get(), kCrlSignBit, 1) == 1;
      break;
    case CertificateProfile::kIntermediateCa: {
      bc->ca = 0xff;
      Asn1IntegerPtr pathlen(ASN1_INTEGER_new());
      if (pathlen == nullptr || ASN1_INTEGER_set(pathlen.get(), 0) != 1) {
        return OpenSslError("ASN1_INTEGER_set");
      }
      bc->pathlen = pathlen.release();
      ok = ASN1_BIT_STRING_set_bit(ku.get(), kKeyCertSignBit, 1) == 1 &&
           ASN1_BIT_STRING_set_bit(ku.get(), kCrlSignBit, 1) == 1;
      break;
    }
    case CertificateProfile::kClient:
    case CertificateProfile::kServer:
      bc->ca = 0;  // DEFAULT FALSE: encoded as an empty SEQUENCE
      ok = ASN1_BIT_STRING_set_bit(ku.get(), kDigitalSignatureBit, 1) == 1;
      break;
  }
  if (!ok) {
    return OpenSslError("ASN1_BIT_STRING_set_bit");
  }
  if (absl::Status st = AddExtension(cert, NID_basic_constraints, bc.get(), /*critical=*/true,
                                     "basicConstraints");
      !st.ok()) {
    return st;
  }
  return AddExtension(cert, NID_key_usage, ku.get(), /*critical=*/true, "keyUsage");
}

absl::Status AddExtendedKeyUsage(X509* cert, CertificateProfile profile) {
  int nid = NID_undef;
  if (profile == CertificateProfile::kClient) {
    nid = NID_client_auth;
  } else if (profile == CertificateProfile::kServer) {
    nid = NID_server_auth;
  } else {
    return absl::OkStatus();  // CAs carry no EKU
  }
  ExtendedKeyUsagePtr eku(sk_ASN1_OBJECT_new_null());
  if (eku == nullptr) {
    return OpenSslError("sk_ASN1_OBJECT_new_null");
  }
  ASN1_OBJECT* obj = OBJ_nid2obj(nid);  // a static object: nothing to free
  if (obj == nullptr || sk_ASN1_OBJECT_push(eku.get(), obj) <= 0) {
    return OpenSslError("sk_ASN1_OBJECT_push");
  }
  return AddExtension(cert, NID_ext_key_usage, eku.get(), /*critical=*/false, "extendedKeyUsage");
}

absl::Status AddKeyIdentifiers(X509* cert, const X509* issuer_cert) {
  auto ski_bytes = SubjectKeyIdOf(cert);
  if (!ski_bytes.ok()) {
    return ski_bytes.status();
  }
  std::string aki_bytes = *ski_bytes;  // self-signed: AKI = own SKI
  if (issuer_cert != nullptr) {
    auto issuer_ski = IssuerKeyIdOf(issuer_cert);
    if (!issuer_ski.ok()) {
      return issuer_ski.status();
    }
    aki_bytes = std::move(*issuer_ski);
  }
  OctetStringPtr ski(ASN1_OCTET_STRING_new());
  if (ski == nullptr ||
      ASN1_OCTET_STRING_set(ski.get(), reinterpret_cast<const unsigned char*>(ski_bytes->data()),
                            static_cast<int>(ski_bytes->size())) != 1) {
    return OpenSslError("ASN1_OCTET_STRING_set");
  }
  if (absl::Status st = AddExtension(cert, NID_subject_key_identifier, ski.get(),
                                     /*critical=*/false, "subjectKeyIdentifier");
      !st.ok()) {
    return st;
  }
  // RFC 5280 section 4.2.1.1: keyIdentifier only.
  AuthorityKeyIdPtr aki(AUTHORITY_KEYID_new());
  OctetStringPtr keyid(ASN1_OCTET_STRING_new());
  if (aki == nullptr || keyid == nullptr ||
      ASN1_OCTET_STRING_set(keyid.get(), reinterpret_cast<const unsigned char*>(aki_bytes.data()),
                            static_cast<int>(aki_bytes.size())) != 1) {
    return OpenSslError("ASN1_OCTET_STRING_set");
  }
  aki->keyid = keyid.release();
  return AddExtension(cert, NID_authority_key_identifier, aki.get(), /*critical=*/false,
                      "authorityKeyIdentifier");
}

absl::Status AddSubjectAltName(X509* cert, const CertificateTemplate& tmpl) {
  if (tmpl.dns_names.empty() && tmpl.ip_addresses.empty()) {
    return absl::OkStatus();
  }
  GeneralNamesPtr names(GENERAL_NAMES_new());
  if (names == nullptr) {
    return OpenSslError("GENERAL_NAMES_new");
  }
  for (const std::string& dns : tmpl.dns_names) {
    if (!IsPrintableAsciiNoSpace(dns)) {
      return Invalid("bad DNS name in subjectAltName");
    }
    auto name = MakeGeneralName(GEN_DNS, dns);
    if (!name.ok()) {
      return name.status();
    }
    if (absl::Status st = PushGeneralName(names.get(), std::move(*name)); !st.ok()) {
      return st;
    }
  }
  for (const std::string& ip : tmpl.ip_addresses) {
    auto bytes = IpToBytes(ip);
    if (!bytes.ok()) {
      return bytes.status();
    }
    auto name = MakeGeneralName(GEN_IPADD, *bytes);
    if (!name.ok()) {
      return name.status();
    }
    if (absl::Status st = PushGeneralName(names.get(), std::move(*name)); !st.ok()) {
      return st;
    }
  }
  // Non-critical: the subject always has a CN (RFC 5280 section 4.2.1.6).
  return AddExtension(cert, NID_subject_alt_name, names.get(), /*critical=*/false,
                      "subjectAltName");
}

absl::Status AddCrlDistributionPoint(X509* cert, const std::string& url) {
  if (url.empty()) {
    return absl::OkStatus();
  }
  if (!IsPrintableAsciiNoSpace(url)) {
    return Invalid("bad CRL distribution point URL");
  }
  auto full_name = UriNames(url);
  if (!full_name.ok()) {
    return full_name.status();
  }
  // RFC 5280 section 4.2.1.13: one DistributionPoint with a fullName URI.
  DistPointNamePtr dp_name(DIST_POINT_NAME_new());
  DistPointPtr dp(DIST_POINT_new());
  CrlDistPointsPtr points(sk_DIST_POINT_new_null());
  if (dp_name == nullptr || dp == nullptr || points == nullptr) {
    return OpenSslError("DIST_POINT_new");
  }
  dp_name->type = 0;  // fullName
  dp_name->name.fullname = full_name->release();
  dp->distpoint = dp_name.release();
  if (sk_DIST_POINT_push(points.get(), dp.get()) <= 0) {
    return OpenSslError("sk_DIST_POINT_push");
  }
  dp.release();
  return AddExtension(cert, NID_crl_distribution_points, points.get(), /*critical=*/false,
                      "cRLDistributionPoints");
}

absl::Status AddAuthorityInfoAccess(X509* cert, const std::string& url) {
  if (url.empty()) {
    return absl::OkStatus();
  }
  if (!IsPrintableAsciiNoSpace(url)) {
    return Invalid("bad CA issuers URL");
  }
  auto location = MakeGeneralName(GEN_URI, url);
  if (!location.ok()) {
    return location.status();
  }
  // RFC 5280 section 4.2.2.1: id-ad-caIssuers.
  AccessDescriptionPtr ad(ACCESS_DESCRIPTION_new());
  AuthorityInfoAccessPtr aia(sk_ACCESS_DESCRIPTION_new_null());
  if (ad == nullptr || aia == nullptr) {
    return OpenSslError("ACCESS_DESCRIPTION_new");
  }
  ASN1_OBJECT_free(ad->method);
  ad->method = OBJ_nid2obj(NID_ad_ca_issuers);
  GENERAL_NAME_free(ad->location);
  ad->location = location->release();
  if (sk_ACCESS_DESCRIPTION_push(aia.get(), ad.get()) <= 0) {
    return OpenSslError("sk_ACCESS_DESCRIPTION_push");
  }
  ad.release();
  return AddExtension(cert, NID_info_access, aia.get(), /*critical=*/false, "authorityInfoAccess");
}

void FreeX509Stack(STACK_OF(X509) * stack) { sk_X509_free(stack); }  // borrowed elements

std::string Utf8(const ASN1_STRING* value) {
  unsigned char* utf8 = nullptr;
  const int len = ASN1_STRING_to_UTF8(&utf8, value);
  if (len < 0 || utf8 == nullptr) {
    ClearOpenSslErrors();
    return std::string();
  }
  std::string out(reinterpret_cast<const char*>(utf8), static_cast<size_t>(len));
  OPENSSL_free(utf8);
  return out;
}

}  // namespace

absl::StatusOr<X509Ptr> BuildCertificate(const CertificateTemplate& tmpl, const X509* issuer_cert,
                                         KeyStore& key_store, const std::string& signer_issuer_id) {
  // 1. Check the template.
  if (tmpl.public_key == nullptr) {
    return Invalid("no public key");
  }
  if (auto algorithm = KeyAlgorithmOf(tmpl.public_key); !algorithm.ok()) {
    return Invalid(algorithm.status().message());
  }
  if (tmpl.not_after <= tmpl.not_before) {
    return Invalid("not_after must be after not_before");
  }
  auto not_before = ToTimeT(tmpl.not_before, "not_before");
  if (!not_before.ok()) {
    return not_before.status();
  }
  auto not_after = ToTimeT(tmpl.not_after, "not_after");
  if (!not_after.ok()) {
    return not_after.status();
  }
  auto serial = SerialToAsn1(tmpl.serial);
  if (!serial.ok()) {
    return serial.status();
  }
  auto subject = BuildName(tmpl.subject);
  if (!subject.ok()) {
    return subject.status();
  }

  // 2. The certificate body (RFC 5280 section 4.1).
  X509Ptr cert(X509_new());
  if (cert == nullptr) {
    return OpenSslError("X509_new");
  }
  if (X509_set_version(cert.get(), X509_VERSION_3) != 1) {
    return OpenSslError("X509_set_version");
  }
  if (X509_set_serialNumber(cert.get(), serial->get()) != 1) {
    return OpenSslError("X509_set_serialNumber");
  }
  if (X509_set_subject_name(cert.get(), subject->get()) != 1) {
    return OpenSslError("X509_set_subject_name");
  }
  const X509_NAME* issuer_name =
      issuer_cert != nullptr ? X509_get_subject_name(issuer_cert) : subject->get();
  if (X509_set_issuer_name(cert.get(), issuer_name) != 1) {
    return OpenSslError("X509_set_issuer_name");
  }
  // ASN1_TIME_set picks UTCTime through 2049 and GeneralizedTime after, as section 4.1.2.5
  // requires.
  if (ASN1_TIME_set(X509_getm_notBefore(cert.get()), *not_before) == nullptr ||
      ASN1_TIME_set(X509_getm_notAfter(cert.get()), *not_after) == nullptr) {
    return OpenSslError("ASN1_TIME_set");
  }
  // X509_set_pubkey only reads the key (it takes a reference): the const_cast is safe.
  if (X509_set_pubkey(cert.get(), const_cast<EVP_PKEY*>(tmpl.public_key)) != 1) {
    return OpenSslError("X509_set_pubkey");
  }

  // 3. Extensions: every one decided here from the profile, none copied from a CSR.
  if (absl::Status st = AddBasicConstraintsAndKeyUsage(cert.get(), tmpl.profile); !st.ok()) {
    return st;
  }
  if (absl::Status st = AddExtendedKeyUsage(cert.get(), tmpl.profile); !st.ok()) {
    return st;
  }
  if (absl::Status st = AddKeyIdentifiers(cert.get(), issuer_cert); !st.ok()) {
    return st;
  }
  if (absl::Status st = AddSubjectAltName(cert.get(), tmpl); !st.ok()) {
    return st;
  }
  if (absl::Status st = AddCrlDistributionPoint(cert.get(), tmpl.crl_url); !st.ok()) {
    return st;
  }
  if (absl::Status st = AddAuthorityInfoAccess(cert.get(), tmpl.ca_issuers_url); !st.ok()) {
    return st;
  }

  // 4. Sign with the issuer's key, which never leaves the key store.
  if (absl::Status st = key_store.SignCertificate(signer_issuer_id, cert.get()); !st.ok()) {
    return st;
  }
  return cert;
}

absl::StatusOr<X509ReqPtr> BuildCsr(const SubjectName& subject, const EVP_PKEY* public_key,
                                    KeyStore& key_store, const std::string& signer_issuer_id) {
  if (public_key == nullptr) {
    return absl::InvalidArgumentError("CSR: no public key");
  }
  auto name = BuildName(subject);
  if (!name.ok()) {
    return name.status();
  }
  X509ReqPtr req(X509_REQ_new());
  if (req == nullptr) {
    return OpenSslError("X509_REQ_new");
  }
  if (X509_REQ_set_version(req.get(), X509_REQ_VERSION_1) != 1) {
    return OpenSslError("X509_REQ_set_version");
  }
  if (X509_REQ_set_subject_name(req.get(), name->get()) != 1) {
    return OpenSslError("X509_REQ_set_subject_name");
  }
  if (X509_REQ_set_pubkey(req.get(), const_cast<EVP_PKEY*>(public_key)) != 1) {
    return OpenSslError("X509_REQ_set_pubkey");
  }
  if (absl::Status st = key_store.SignCsr(signer_issuer_id, req.get()); !st.ok()) {
    return st;
  }
  return req;
}

std::string RandomSerial() {
  std::string serial(kMaxSerialBytes, '\0');
  auto* bytes = reinterpret_cast<unsigned char*>(serial.data());
  do {
    if (RAND_bytes(bytes, static_cast<int>(serial.size())) != 1) {
      // Without randomness no certificate can be issued safely: a broken invariant.
      std::abort();
    }
    bytes[0] &= 0x7f;  // positive, and 20 octets once DER-encoded
  } while (bytes[0] == 0);
  return serial;
}

std::string SerialToHex(absl::string_view serial) { return absl::BytesToHexString(serial); }

absl::StatusOr<std::string> SerialFromHex(absl::string_view hex) {
  hex = absl::StripAsciiWhitespace(hex);
  if (hex.empty()) {
    return absl::InvalidArgumentError("serial: empty");
  }
  std::string digits;
  if (hex.find(':') != absl::string_view::npos) {
    // "0a:1B:..." as openssl prints it: every group exactly two hex digits.
    size_t pos = 0;
    while (pos <= hex.size()) {
      const size_t colon = std::min(hex.find(':', pos), hex.size());
      if (colon - pos != 2) {
        return absl::InvalidArgumentError(
            "serial: with ':' separators every byte must be two hex digits");
      }
      absl::StrAppend(&digits, hex.substr(pos, 2));
      pos = colon + 1;
    }
  } else {
    digits = std::string(hex);
  }
  if (digits.size() % 2 != 0) {
    return absl::InvalidArgumentError("serial: odd number of hex digits");
  }
  for (const char c : digits) {
    if (!absl::ascii_isxdigit(static_cast<unsigned char>(c))) {
      return absl::InvalidArgumentError("serial: not hexadecimal");
    }
  }
  // A plain decoder: the bytes are kept as written (no length limit, leading zero bytes kept),
  // so it also reads SHA-256 fingerprints and keeps lookups exact.
  std::string bytes = absl::HexStringToBytes(digits);
  return bytes;
}

absl::Status VerifyChain(const X509* leaf, const std::vector<const X509*>& intermediates,
                         const std::vector<const X509*>& roots, absl::Time at) {
  if (leaf == nullptr) {
    return absl::InvalidArgumentError("no certificate to verify");
  }
  auto when = ToTimeT(at, "verification time");
  if (!when.ok()) {
    return absl::InvalidArgumentError("verification time out of range");
  }
  X509StorePtr store(X509_STORE_new());
  if (store == nullptr) {
    return OpenSslError("X509_STORE_new");
  }
  // OpenSSL's verification API takes non-const pointers but only reads (and takes its own
  // references to) these certificates.
  for (const X509* root : roots) {
    if (root == nullptr || X509_STORE_add_cert(store.get(), const_cast<X509*>(root)) != 1) {
      return OpenSslError("X509_STORE_add_cert");
    }
  }
  StackOfX509Ptr untrusted(sk_X509_new_null(), &FreeX509Stack);
  if (untrusted == nullptr) {
    return OpenSslError("sk_X509_new_null");
  }
  for (const X509* intermediate : intermediates) {
    if (intermediate == nullptr ||
        sk_X509_push(untrusted.get(), const_cast<X509*>(intermediate)) <= 0) {
      return OpenSslError("sk_X509_push");
    }
  }
  X509StoreCtxPtr ctx(X509_STORE_CTX_new());
  if (ctx == nullptr) {
    return OpenSslError("X509_STORE_CTX_new");
  }
  if (X509_STORE_CTX_init(ctx.get(), store.get(), const_cast<X509*>(leaf), untrusted.get()) != 1) {
    return OpenSslError("X509_STORE_CTX_init");
  }
  X509_STORE_CTX_set_time(ctx.get(), 0, *when);
  if (X509_STORE_CTX_set_purpose(ctx.get(), X509_PURPOSE_ANY) != 1) {
    return OpenSslError("X509_STORE_CTX_set_purpose");
  }
  const int rc = X509_verify_cert(ctx.get());
  if (rc == 1) {
    return absl::OkStatus();
  }
  const int err = X509_STORE_CTX_get_error(ctx.get());
  ClearOpenSslErrors();
  return absl::InvalidArgumentError(
      absl::StrCat("certificate does not verify: ", X509_verify_cert_error_string(err), " (depth ",
                   X509_STORE_CTX_get_error_depth(ctx.get()), ")"));
}

absl::StatusOr<CertificateInfo> InspectCertificate(const X509* cert) {
  if (cert == nullptr) {
    return absl::InvalidArgumentError("no certificate");
  }
  CertificateInfo info;
  BignumPtr serial(ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), nullptr));
  if (serial == nullptr) {
    return OpenSslError("ASN1_INTEGER_to_BN");
  }
  info.serial.assign(static_cast<size_t>(BN_num_bytes(serial.get())), '\0');
  BN_bn2bin(serial.get(), reinterpret_cast<unsigned char*>(info.serial.data()));

  const X509_NAME* subject = X509_get_subject_name(cert);
  info.subject = NameToString(subject);
  info.issuer = NameToString(X509_get_issuer_name(cert));
  const int cn = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
  if (cn >= 0) {
    info.common_name = Utf8(X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, cn)));
  }

  auto not_before = FromAsn1Time(X509_get0_notBefore(cert));
  if (!not_before.ok()) {
    return not_before.status();
  }
  auto not_after = FromAsn1Time(X509_get0_notAfter(cert));
  if (!not_after.ok()) {
    return not_after.status();
  }
  info.not_before = *not_before;
  info.not_after = *not_after;

  // X509_get_ext_d2i returns null both when the extension is absent and when it is present
  // twice or malformed; either way it is treated as absent here.
  BasicConstraintsPtr bc(static_cast<BASIC_CONSTRAINTS*>(
      X509_get_ext_d2i(cert, NID_basic_constraints, nullptr, nullptr)));
  info.is_ca = bc != nullptr && bc->ca != 0;
  BitStringPtr ku(
      static_cast<ASN1_BIT_STRING*>(X509_get_ext_d2i(cert, NID_key_usage, nullptr, nullptr)));
  info.can_sign_certificates =
      ku == nullptr || ASN1_BIT_STRING_get_bit(ku.get(), kKeyCertSignBit) == 1;

  GeneralNamesPtr names(
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr)));
  if (names != nullptr) {
    const int n = sk_GENERAL_NAME_num(names.get());
    for (int i = 0; i < n; ++i) {
      const GENERAL_NAME* name = sk_GENERAL_NAME_value(names.get(), i);
      if (name->type == GEN_DNS) {
        info.dns_names.emplace_back(
            reinterpret_cast<const char*>(ASN1_STRING_get0_data(name->d.dNSName)),
            static_cast<size_t>(ASN1_STRING_length(name->d.dNSName)));
      } else if (name->type == GEN_IPADD) {
        const int len = ASN1_STRING_length(name->d.iPAddress);
        char buf[INET6_ADDRSTRLEN] = {0};
        const int family = len == 4 ? AF_INET : len == 16 ? AF_INET6 : 0;
        if (family != 0 && inet_ntop(family, ASN1_STRING_get0_data(name->d.iPAddress), buf,
                                     sizeof(buf)) != nullptr) {
          info.ip_addresses.emplace_back(buf);
        }
      }
    }
  }
  OctetStringPtr ski(static_cast<ASN1_OCTET_STRING*>(
      X509_get_ext_d2i(cert, NID_subject_key_identifier, nullptr, nullptr)));
  if (ski != nullptr) {
    info.subject_key_id.assign(reinterpret_cast<const char*>(ASN1_STRING_get0_data(ski.get())),
                               static_cast<size_t>(ASN1_STRING_length(ski.get())));
  }
  ClearOpenSslErrors();
  return info;
}

}  // namespace fleetca::pki
