#include "pki/certificate_builder.h"

#include <arpa/inet.h>
#include <openssl/asn1.h>
#include <openssl/bn.h>
#include <openssl/objects.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
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
#include "common/status_macros.h"
#include "common/text.h"
#include "pki/der.h"

namespace fleetca::pki {
namespace {

template <typename T, void (*kFree)(T*)>
using Owned = std::unique_ptr<T, OpenSslDeleter<T, kFree>>;

using BasicConstraintsPtr = Owned<BASIC_CONSTRAINTS, BASIC_CONSTRAINTS_free>;
using BitStringPtr = Owned<ASN1_BIT_STRING, ASN1_BIT_STRING_free>;
using OctetStringPtr = Owned<ASN1_OCTET_STRING, ASN1_OCTET_STRING_free>;
using StackOfX509Ptr = std::unique_ptr<STACK_OF(X509), void (*)(STACK_OF(X509)*)>;

constexpr size_t kMaxSerialBytes = 20;  // RFC 5280 section 4.1.2.2

// keyUsage bits, RFC 5280 section 4.2.1.3.
constexpr int kKeyCertSignBit = 5;

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

// SubjectNameDer encodes the subject as C, O, OU, CN (most significant first, as X.500
// names are written), one attribute per RDN: countryName as PrintableString, the others as
// UTF8String (RFC 5280 section 4.1.2.6), within the X.520 upper bounds.
absl::StatusOr<std::string> SubjectNameDer(const SubjectName& subject) {
  if (subject.common_name.empty()) {
    return Invalid("subject common name is empty");
  }
  struct Part {
    const char* oid;
    const std::string* value;
    const char* what;
  };
  const Part parts[] = {
      {"2.5.4.6", &subject.country, "country (two letters)"},
      {"2.5.4.10", &subject.organization, "organization (1 to 64 bytes)"},
      {"2.5.4.11", &subject.organizational_unit, "organizational unit (1 to 64 bytes)"},
      {"2.5.4.3", &subject.common_name, "common name (1 to 64 bytes)"},
  };
  std::string rdns;
  for (const Part& part : parts) {
    const std::string& value = *part.value;
    if (value.empty()) {
      continue;
    }
    const bool country = part.value == &subject.country;
    bool ok = false;
    if (country) {
      ok = value.size() == 2 && absl::ascii_isalpha(static_cast<unsigned char>(value[0])) &&
           absl::ascii_isalpha(static_cast<unsigned char>(value[1]));
    } else if (IsValidUtf8(value)) {
      size_t characters = 0;
      for (const char c : value) characters += (static_cast<unsigned char>(c) & 0xc0) != 0x80;
      ok = characters <= 64;
    }
    if (!ok) {
      return Invalid(absl::StrCat("bad subject ", part.what));
    }
    std::string atv = der::Element(der::kOid, der::OidFromText(part.oid));
    der::AppendElement(&atv, country ? der::kPrintableString : der::kUtf8String, value);
    der::AppendElement(&rdns, der::kSet, der::Element(der::kSequence, atv));
  }
  return der::Element(der::kSequence, rdns);
}

absl::Status ValidateSerial(absl::string_view serial) {
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
  return absl::OkStatus();
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

// SubjectPublicKeyBits returns the subjectPublicKey BIT STRING's key bytes of a DER
// SubjectPublicKeyInfo (RFC 5280 section 4.1.2.7), checking its outer structure.
absl::StatusOr<absl::string_view> SubjectPublicKeyBits(absl::string_view spki) {
  der::Reader outer(spki);
  absl::string_view body, algorithm, bits;
  if (!outer.Expect(der::kSequence, &body) || !outer.empty()) {
    return Invalid("the public key is not a DER SubjectPublicKeyInfo");
  }
  der::Reader fields(body);
  if (!fields.Expect(der::kSequence, &algorithm) || !fields.Expect(der::kBitString, &bits) ||
      !fields.empty() || bits.empty() || bits[0] != 0) {
    return Invalid("the public key is not a DER SubjectPublicKeyInfo");
  }
  return bits.substr(1);
}

std::string Sha1(absl::string_view data) {
  unsigned char md[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(data.data()), data.size(), md);
  return std::string(reinterpret_cast<const char*>(md), sizeof(md));
}

// ExtensionsDer decides every extension of the certificate from the template's profile;
// nothing is copied from a CSR. The order is fixed: basicConstraints, keyUsage, EKU, SKI,
// AKI, subjectAltName, cRLDistributionPoints, authorityInfoAccess.
absl::StatusOr<std::string> ExtensionsDer(const CertificateTemplate& tmpl,
                                          absl::string_view subject_key_id,
                                          absl::string_view authority_key_id) {
  std::string exts;
  // basicConstraints (4.2.1.9), critical: CA:TRUE only for CAs; pathlen 0 under an
  // intermediate so it can issue only end-entity certificates. keyUsage (4.2.1.3), critical.
  // extendedKeyUsage (4.2.1.12) on end-entity certificates only.
  const bool ca = tmpl.profile == CertificateProfile::kRootCa ||
                  tmpl.profile == CertificateProfile::kIntermediateCa;
  std::string bc;
  if (ca) {
    der::AppendElement(&bc, der::kBoolean, "\xff");
    if (tmpl.profile == CertificateProfile::kIntermediateCa) {
      der::AppendElement(&bc, der::kInteger, absl::string_view("\0", 1));
    }
  }
  AppendExtension(&exts, "2.5.29.19", true, der::Element(der::kSequence, bc));
  // BIT STRING, trailing zero bits dropped: keyCertSign (5) + cRLSign (6) = 0x06 with one
  // unused bit; digitalSignature (0) = 0x80 with seven.
  AppendExtension(&exts, "2.5.29.15", true,
                  der::Element(der::kBitString, ca ? absl::string_view("\x01\x06", 2)
                                                   : absl::string_view("\x07\x80", 2)));
  if (!ca) {
    const char* purpose = tmpl.profile == CertificateProfile::kClient ? "1.3.6.1.5.5.7.3.2"
                                                                      : "1.3.6.1.5.5.7.3.1";
    AppendExtension(&exts, "2.5.29.37", false,
                    der::Element(der::kSequence,
                                 der::Element(der::kOid, der::OidFromText(purpose))));
  }
  // Key identifiers (4.2.1.2, 4.2.1.1: keyIdentifier only).
  AppendExtension(&exts, "2.5.29.14", false, der::Element(der::kOctetString, subject_key_id));
  AppendExtension(&exts, "2.5.29.35", false,
                  der::Element(der::kSequence,
                               der::Element(der::ContextPrimitive(0), authority_key_id)));
  // subjectAltName (4.2.1.6), non-critical: the subject always has a CN.
  if (!tmpl.dns_names.empty() || !tmpl.ip_addresses.empty() || !tmpl.uris.empty()) {
    std::string names;
    for (const std::string& dns : tmpl.dns_names) {
      if (!IsPrintableAsciiNoSpace(dns)) {
        return Invalid("bad DNS name in subjectAltName");
      }
      der::AppendElement(&names, der::ContextPrimitive(2), dns);
    }
    for (const std::string& ip : tmpl.ip_addresses) {
      ASSIGN_OR_RETURN(std::string bytes, IpToBytes(ip));
      der::AppendElement(&names, der::ContextPrimitive(7), bytes);
    }
    for (const std::string& uri : tmpl.uris) {
      if (!IsPrintableAsciiNoSpace(uri)) {
        return Invalid("bad URI in subjectAltName");
      }
      der::AppendElement(&names, der::ContextPrimitive(6), uri);
    }
    AppendExtension(&exts, "2.5.29.17", false, der::Element(der::kSequence, names));
  }
  if (!tmpl.crl_url.empty()) {
    auto points = DistributionPointsDer(tmpl.crl_url);  // cRLDistributionPoints (4.2.1.13)
    if (!points.ok()) return Invalid(points.status().message());
    AppendExtension(&exts, "2.5.29.31", false, *points);
  }
  // authorityInfoAccess (4.2.2.1): id-ad-caIssuers with one URI.
  if (!tmpl.ca_issuers_url.empty()) {
    if (!IsPrintableAsciiNoSpace(tmpl.ca_issuers_url)) {
      return Invalid("bad CA issuers URL");
    }
    std::string access = der::Element(der::kOid, der::OidFromText("1.3.6.1.5.5.7.48.2"));
    der::AppendElement(&access, der::ContextPrimitive(6), tmpl.ca_issuers_url);
    AppendExtension(&exts, "1.3.6.1.5.5.7.1.1", false,
                    der::Element(der::kSequence, der::Element(der::kSequence, access)));
  }
  return exts;
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

// IssuerKeyId: the issuer's own subjectKeyIdentifier when it has one (it may have been
// computed by another CA, by another method), else RFC 5280 section 4.2.1.2 method (1)
// over its key.
absl::StatusOr<std::string> IssuerKeyIdOf(const X509* issuer) {
  // X509_get0_subject_key_id fills OpenSSL's extension cache (under its own lock) and
  // changes nothing else: the const_cast is safe.
  const ASN1_OCTET_STRING* ski = X509_get0_subject_key_id(const_cast<X509*>(issuer));
  if (ski != nullptr && ASN1_STRING_length(ski) > 0) {
    return std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(ski)),
                       static_cast<size_t>(ASN1_STRING_length(ski)));
  }
  ClearOpenSslErrors();
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (X509_pubkey_digest(issuer, EVP_sha1(), md, &len) != 1) {
    return OpenSslError("X509_pubkey_digest");
  }
  return std::string(reinterpret_cast<const char*>(md), len);
}

// AppendExtension writes one Extension (RFC 5280 section 4.1): the OID, critical when it
// is (DEFAULT FALSE is omitted), the value's DER in an OCTET STRING.
void AppendExtension(std::string* out, const char* oid, bool critical, absl::string_view value) {
  std::string ext = der::Element(der::kOid, der::OidFromText(oid));
  if (critical) der::AppendElement(&ext, der::kBoolean, "\xff");
  der::AppendElement(&ext, der::kOctetString, value);
  der::AppendElement(out, der::kSequence, ext);
}

absl::StatusOr<std::string> SubjectNameDerOf(const X509* cert) {
  unsigned char* encoded = nullptr;
  const int length = i2d_X509_NAME(X509_get_subject_name(cert), &encoded);
  if (length <= 0) {
    return OpenSslError("i2d_X509_NAME");
  }
  std::string out(reinterpret_cast<const char*>(encoded), static_cast<size_t>(length));
  OPENSSL_free(encoded);
  return out;
}


absl::StatusOr<std::string> BuildCertificateDer(const CertificateTemplate& tmpl,
                                                const X509* issuer_cert, KeyStore& key_store,
                                                const std::string& signer_issuer_id) {
  // 1. Check the template.
  std::string spki_storage;
  absl::string_view spki = tmpl.public_key_der;
  if (tmpl.public_key != nullptr) {
    if (auto algorithm = KeyAlgorithmOf(tmpl.public_key); !algorithm.ok()) {
      return Invalid(algorithm.status().message());
    }
    ASSIGN_OR_RETURN(spki_storage, PublicKeyToDer(tmpl.public_key));
    spki = spki_storage;
  } else if (spki.empty()) {
    return Invalid("no public key");
  }
  ASSIGN_OR_RETURN(const absl::string_view key_bits, SubjectPublicKeyBits(spki));
  if (tmpl.not_after <= tmpl.not_before) {
    return Invalid("not_after must be after not_before");
  }
  RETURN_IF_ERROR(ToTimeT(tmpl.not_before, "not_before").status());
  RETURN_IF_ERROR(ToTimeT(tmpl.not_after, "not_after").status());
  RETURN_IF_ERROR(ValidateSerial(tmpl.serial));
  ASSIGN_OR_RETURN(const std::string subject, SubjectNameDer(tmpl.subject));

  // 2. Names and key identifiers: a self-signed root is its own issuer (AKI = its SKI).
  std::string issuer = subject;
  const std::string subject_key_id = Sha1(key_bits);
  std::string authority_key_id = subject_key_id;
  if (issuer_cert != nullptr) {
    ASSIGN_OR_RETURN(issuer, SubjectNameDerOf(issuer_cert));
    ASSIGN_OR_RETURN(authority_key_id, IssuerKeyIdOf(issuer_cert));
  }
  ASSIGN_OR_RETURN(const std::string extensions,
                   ExtensionsDer(tmpl, subject_key_id, authority_key_id));
  ASSIGN_OR_RETURN(const std::string algorithm, key_store.SignatureAlgorithm(signer_issuer_id));

  // 3. TBSCertificate (RFC 5280 section 4.1), assembled directly: no object model to build
  //    and re-encode.
  std::string body;
  body.reserve(512 + spki.size() + extensions.size());
  der::AppendElement(&body, der::ContextConstructed(0), absl::string_view("\x02\x01\x02", 3));
  der::AppendUnsignedInteger(&body, tmpl.serial);
  body += algorithm;
  body += issuer;
  std::string validity;
  der::AppendTime(&validity, tmpl.not_before);
  der::AppendTime(&validity, tmpl.not_after);
  der::AppendElement(&body, der::kSequence, validity);
  body += subject;
  body.append(spki.data(), spki.size());
  der::AppendElement(&body, der::ContextConstructed(3), der::Element(der::kSequence, extensions));
  std::string certificate = der::Element(der::kSequence, body);

  // 4. Signed with the issuer's key, which never leaves the key store.
  ASSIGN_OR_RETURN(const std::string signature,
                   key_store.Sign(signer_issuer_id, algorithm, certificate));
  certificate += algorithm;
  der::AppendBitString(&certificate, signature);
  return der::Element(der::kSequence, certificate);
}

absl::StatusOr<X509Ptr> BuildCertificate(const CertificateTemplate& tmpl, const X509* issuer_cert,
                                         KeyStore& key_store, const std::string& signer_issuer_id) {
  ASSIGN_OR_RETURN(const std::string der,
                   BuildCertificateDer(tmpl, issuer_cert, key_store, signer_issuer_id));
  return CertificateFromDer(der);
}

absl::StatusOr<X509ReqPtr> BuildCsr(const SubjectName& subject, const EVP_PKEY* public_key,
                                    KeyStore& key_store, const std::string& signer_issuer_id) {
  if (public_key == nullptr) {
    return absl::InvalidArgumentError("CSR: no public key");
  }
  ASSIGN_OR_RETURN(const std::string name_der, SubjectNameDer(subject));
  const unsigned char* p = reinterpret_cast<const unsigned char*>(name_der.data());
  X509NamePtr name(d2i_X509_NAME(nullptr, &p, static_cast<long>(name_der.size())));
  if (name == nullptr) {
    return OpenSslError("d2i_X509_NAME");
  }
  X509ReqPtr req(X509_REQ_new());
  if (req == nullptr) {
    return OpenSslError("X509_REQ_new");
  }
  if (X509_REQ_set_version(req.get(), X509_REQ_VERSION_1) != 1) {
    return OpenSslError("X509_REQ_set_version");
  }
  if (X509_REQ_set_subject_name(req.get(), name.get()) != 1) {
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
                         const std::vector<const X509*>& roots, absl::Time at,
                         bool anchors_may_be_intermediates) {
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
  if (anchors_may_be_intermediates) {
    X509_STORE_CTX_set_flags(ctx.get(), X509_V_FLAG_PARTIAL_CHAIN);
  }
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
      } else if (name->type == GEN_URI) {
        info.uris.emplace_back(
            reinterpret_cast<const char*>(ASN1_STRING_get0_data(name->d.uniformResourceIdentifier)),
            static_cast<size_t>(ASN1_STRING_length(name->d.uniformResourceIdentifier)));
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

absl::StatusOr<std::string> DistributionPointsDer(absl::string_view url) {
  if (!IsPrintableAsciiNoSpace(url)) {
    return absl::InvalidArgumentError("bad CRL distribution point URL");
  }
  // One DistributionPoint whose distributionPoint [0] (a CHOICE, so explicitly tagged) is a
  // fullName [0] holding one URI [6].
  const std::string full_name =
      der::Element(der::ContextConstructed(0), der::Element(der::ContextPrimitive(6), url));
  return der::Element(der::kSequence,
                      der::Element(der::kSequence, der::Element(der::ContextConstructed(0), full_name)));
}

}  // namespace fleetca::pki
