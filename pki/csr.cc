// The EC_KEY functions of the fast ECDSA path are deprecated in OpenSSL 3 (see FastEcdsa).
#define OPENSSL_SUPPRESS_DEPRECATED
#include "pki/csr.h"

#include <arpa/inet.h>
#include <openssl/ec.h>
#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <climits>
#include <cstring>
#include <memory>
#include <set>
#include <string>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "pki/der.h"

namespace fleetca::pki {
namespace {

// Each failure names the field and says what is wrong, never echoing the input.
absl::Status Bad(absl::string_view field, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", why));
}

// NotDer: `what` ("the input", "the PEM block") is not a well-formed request.
absl::Status NotDer(absl::string_view field, absl::string_view what) {
  return Bad(field, absl::StrCat(what, " is not a DER-encoded CERTIFICATE REQUEST"));
}

bool IsWhitespace(absl::string_view s) {
  for (const char c : s) {
    if (!absl::ascii_isspace(static_cast<unsigned char>(c))) {
      return false;
    }
  }
  return true;
}

// DecodePem accepts exactly one "CERTIFICATE REQUEST" (RFC 7468 section 7) or "NEW
// CERTIFICATE REQUEST" (the older Netscape label) block, with only whitespace around it.
absl::StatusOr<std::string> DecodePem(absl::string_view field, absl::string_view pem) {
  // 1. Nothing but whitespace before the block (PEM_read_bio would skip any text).
  size_t start = 0;
  while (start < pem.size() && absl::ascii_isspace(static_cast<unsigned char>(pem[start]))) {
    ++start;
  }
  const absl::string_view text = pem.substr(start);
  if (!absl::StartsWith(text, "-----BEGIN ")) {
    return Bad(field, "no CERTIFICATE REQUEST block");
  }
  // 2. One block, base64 checked by OpenSSL.
  BioPtr bio(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
  if (bio == nullptr) {
    return OpenSslError("BIO_new_mem_buf");
  }
  char* name = nullptr;
  char* header = nullptr;
  unsigned char* data = nullptr;
  long len = 0;
  if (PEM_read_bio(bio.get(), &name, &header, &data, &len) != 1) {
    ClearOpenSslErrors();
    return Bad(field, "malformed PEM (no complete CERTIFICATE REQUEST block)");
  }
  const bool label_ok = std::strcmp(name, "CERTIFICATE REQUEST") == 0 ||
                        std::strcmp(name, "NEW CERTIFICATE REQUEST") == 0;
  const bool has_headers = header != nullptr && header[0] != '\0';
  std::string der;
  if (data != nullptr && len > 0) {
    der.assign(reinterpret_cast<const char*>(data), static_cast<size_t>(len));
  }
  OPENSSL_free(name);
  OPENSSL_free(header);
  OPENSSL_free(data);
  if (!label_ok) {
    return Bad(field, "no CERTIFICATE REQUEST block (the PEM block has another label)");
  }
  if (has_headers) {
    return Bad(field, "PEM headers are not allowed in a CERTIFICATE REQUEST block");
  }
  // 3. Nothing but whitespace after it.
  char* rest = nullptr;
  const long rest_len = BIO_ctrl(bio.get(), BIO_CTRL_INFO, 0, &rest);  // BIO_get_mem_data
  const absl::string_view after = rest_len > 0 && rest != nullptr
                                      ? absl::string_view(rest, static_cast<size_t>(rest_len))
                                      : absl::string_view();
  if (!IsWhitespace(after)) {
    if (absl::StrContains(after, "-----BEGIN ")) {
      return Bad(field, "more than one PEM block");
    }
    return Bad(field, "unexpected text after the CERTIFICATE REQUEST block");
  }
  if (der.empty()) {
    return Bad(field, "the CERTIFICATE REQUEST block is empty");
  }
  return der;
}

absl::StatusOr<std::string> IpToText(absl::string_view bytes) {
  char buf[INET6_ADDRSTRLEN] = {0};
  if (bytes.size() == 4) {
    if (inet_ntop(AF_INET, bytes.data(), buf, sizeof(buf)) == nullptr) {
      return absl::InvalidArgumentError("bad IPv4 address");
    }
  } else if (bytes.size() == 16) {
    if (inet_ntop(AF_INET6, bytes.data(), buf, sizeof(buf)) == nullptr) {
      return absl::InvalidArgumentError("bad IPv6 address");
    }
  } else {
    return absl::InvalidArgumentError("iPAddress of neither 4 nor 16 bytes");
  }
  return std::string(buf);
}

// The OIDs read here, as DER contents, encoded once.
struct Oids {
  std::string subject_alt_name = der::OidFromText("2.5.29.17");
  std::string extension_request = der::OidFromText("1.2.840.113549.1.9.14");
  std::string ms_extension_request = der::OidFromText("1.3.6.1.4.1.311.2.1.14");
  std::string common_name = der::OidFromText("2.5.4.3");
  std::string ec_public_key = der::OidFromText("1.2.840.10045.2.1");
  std::string p256 = der::OidFromText("1.2.840.10045.3.1.7");
  std::string p384 = der::OidFromText("1.3.132.0.34");
  std::string ecdsa_sha256 = der::OidFromText("1.2.840.10045.4.3.2");
  std::string ecdsa_sha384 = der::OidFromText("1.2.840.10045.4.3.3");
  std::string ecdsa_sha512 = der::OidFromText("1.2.840.10045.4.3.4");
};
const Oids& Oid() {
  static const Oids* const oids = new Oids();
  return *oids;
}

// ReadSubjectAltName adds the requested SAN entries (RFC 5280 section 4.2.1.6) to csr.
absl::Status ReadSubjectAltName(absl::string_view field, absl::string_view value, ParsedCsr& csr) {
  const auto malformed = [&] {
    return Bad(field, "the requested subjectAltName extension is malformed");
  };
  der::Reader outer(value);
  absl::string_view names;
  if (!outer.Expect(der::kSequence, &names) || !outer.empty()) return malformed();
  der::Reader reader(names);
  while (!reader.empty()) {
    uint8_t tag = 0;
    absl::string_view contents;
    if (!reader.Next(&tag, &contents)) return malformed();
    if (tag == der::ContextPrimitive(2)) {  // dNSName IA5String
      csr.dns_names.emplace_back(contents);
    } else if (tag == der::ContextPrimitive(7)) {  // iPAddress
      auto text = IpToText(contents);
      if (!text.ok()) {
        return Bad(field, absl::StrCat("requested subjectAltName has a ", text.status().message()));
      }
      csr.ip_addresses.push_back(std::move(*text));
    } else {
      csr.has_other_names = true;
    }
  }
  return absl::OkStatus();
}

// ReadExtensionRequest reads a PKCS#9 extensionRequest attribute's values (RFC 2986 section
// 4.1, RFC 2985 section 5.4.2). An ambiguous request (several values, the same extension
// twice: RFC 5280 section 4.2) is refused rather than read one way here and another way by
// someone else.
absl::Status ReadExtensionRequest(absl::string_view field, absl::string_view values,
                                  ParsedCsr& csr) {
  const auto malformed = [&] { return Bad(field, "the extensionRequest attribute is malformed"); };
  der::Reader set(values);
  absl::string_view extensions;
  if (!set.Expect(der::kSequence, &extensions)) return malformed();
  if (!set.empty()) {
    return Bad(field, "the extensionRequest attribute must have exactly one value");
  }
  std::set<std::string> seen;
  der::Reader reader(extensions);
  while (!reader.empty()) {
    absl::string_view extension, oid, value;
    if (!reader.Expect(der::kSequence, &extension)) return malformed();
    der::Reader parts(extension);
    if (!parts.Expect(der::kOid, &oid)) return malformed();
    uint8_t tag = 0;
    if (parts.PeekTag(&tag) && tag == der::kBoolean) {
      absl::string_view critical;
      if (!parts.Expect(der::kBoolean, &critical) || critical.size() != 1) return malformed();
    }
    if (!parts.Expect(der::kOctetString, &value) || !parts.empty()) return malformed();
    std::string text = der::OidToText(oid);
    if (text.empty()) {
      return Bad(field, "a requested extension has an unreadable OID");
    }
    if (!seen.insert(text).second) {
      return Bad(field, absl::StrCat("extension ", text, " is requested more than once"));
    }
    if (oid == Oid().subject_alt_name) {
      RETURN_IF_ERROR(ReadSubjectAltName(field, value, csr));
    }
    csr.extension_oids.push_back(std::move(text));
  }
  return absl::OkStatus();
}

// ReadAttributes reads the request's attributes ([0] SET OF Attribute): only the extension
// request matters; there may be one, under the PKCS#9 or the older Microsoft OID.
absl::Status ReadAttributes(absl::string_view field, absl::string_view what,
                            absl::string_view attributes,
                            ParsedCsr& csr) {
  der::Reader reader(attributes);
  bool found = false;
  while (!reader.empty()) {
    absl::string_view attribute, oid, values;
    if (!reader.Expect(der::kSequence, &attribute)) return NotDer(field, what);
    der::Reader parts(attribute);
    if (!parts.Expect(der::kOid, &oid) || !parts.Expect(der::kSet, &values) || !parts.empty()) {
      return NotDer(field, what);
    }
    if (oid != Oid().extension_request && oid != Oid().ms_extension_request) continue;
    if (found) {
      return Bad(field, "more than one extensionRequest attribute");
    }
    found = true;
    RETURN_IF_ERROR(ReadExtensionRequest(field, values, csr));
  }
  return absl::OkStatus();
}

// ReadCommonNames collects every commonName of the subject Name (RFC 5280 section 4.1.2.4).
absl::Status ReadCommonNames(absl::string_view field, absl::string_view what,
                             absl::string_view name, ParsedCsr& csr) {
  der::Reader rdns(name);
  while (!rdns.empty()) {
    absl::string_view rdn;
    if (!rdns.Expect(der::kSet, &rdn)) return NotDer(field, what);
    der::Reader atvs(rdn);
    while (!atvs.empty()) {
      absl::string_view atv, oid, value;
      uint8_t tag = 0;
      if (!atvs.Expect(der::kSequence, &atv)) return NotDer(field, what);
      der::Reader parts(atv);
      if (!parts.Expect(der::kOid, &oid) || !parts.Next(&tag, &value) || !parts.empty()) {
        return NotDer(field, what);
      }
      if (oid != Oid().common_name) continue;
      std::string utf8;
      if (!der::Utf8Value(tag, value, &utf8)) {
        return Bad(field, "a subject commonName is not a valid string");
      }
      csr.common_names.push_back(std::move(utf8));
    }
  }
  return absl::OkStatus();
}

// The fast path of proof of possession: an ECDSA P-256 or P-384 key (uncompressed point,
// named curve) and an ecdsa-with-SHA2 signature, verified with OpenSSL's EC_KEY functions.
// They are deprecated in OpenSSL 3, but its provider path (d2i_PUBKEY, EVP_DigestVerify)
// costs about 260 us to decode a key against 5 us here, the largest single cost of an
// issuance (docs/performance.md). Anything else takes OpenSSL's general path.
struct EcCurve {
  std::string Oids::*oid;
  int nid;
  KeyAlgorithm algorithm;
  size_t point_bytes;
};
constexpr EcCurve kEcCurves[] = {
    {&Oids::p256, NID_X9_62_prime256v1, KeyAlgorithm::kEcdsaP256, 65},
    {&Oids::p384, NID_secp384r1, KeyAlgorithm::kEcdsaP384, 97},
};

const EC_GROUP* Group(int nid) {
  static const EC_GROUP* const p256 = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
  static const EC_GROUP* const p384 = EC_GROUP_new_by_curve_name(NID_secp384r1);
  return nid == NID_X9_62_prime256v1 ? p256 : p384;
}

const EVP_MD* EcdsaDigest(absl::string_view signature_algorithm) {
  der::Reader outer(signature_algorithm);
  absl::string_view body, oid;
  if (!outer.Expect(der::kSequence, &body) || !outer.empty()) return nullptr;
  der::Reader parts(body);
  if (!parts.Expect(der::kOid, &oid) || !parts.empty()) return nullptr;  // no parameters
  if (oid == Oid().ecdsa_sha256) return EVP_sha256();
  if (oid == Oid().ecdsa_sha384) return EVP_sha384();
  if (oid == Oid().ecdsa_sha512) return EVP_sha512();
  return nullptr;
}

// FastEcdsa returns true when it decided: *verdict is then the outcome (OK, or why not).
bool FastEcdsa(absl::string_view field, absl::string_view spki, absl::string_view info,
               absl::string_view signature_algorithm, absl::string_view signature,
               ParsedCsr& csr, absl::Status* verdict) {
  der::Reader outer(spki);
  absl::string_view body, algorithm, key_oid, curve_oid, bits;
  if (!outer.Expect(der::kSequence, &body)) return false;
  der::Reader fields(body);
  if (!fields.Expect(der::kSequence, &algorithm) || !fields.Expect(der::kBitString, &bits) ||
      !fields.empty()) {
    return false;
  }
  der::Reader alg(algorithm);
  if (!alg.Expect(der::kOid, &key_oid) || key_oid != Oid().ec_public_key ||
      !alg.Expect(der::kOid, &curve_oid) || !alg.empty()) {
    return false;
  }
  const EcCurve* curve = nullptr;
  for (const EcCurve& c : kEcCurves) {
    if (curve_oid == Oid().*c.oid) curve = &c;
  }
  // Uncompressed points only here (RFC 5480 section 2.2: the form every verifier has).
  if (curve == nullptr || bits.size() != 1 + curve->point_bytes || bits[0] != 0 || bits[1] != 4) {
    return false;
  }
  const EVP_MD* md = EcdsaDigest(signature_algorithm);
  if (md == nullptr || signature.empty() || signature[0] != 0) return false;
  csr.key_algorithm = curve->algorithm;
  csr.public_key_der = std::string(spki);

  std::unique_ptr<EC_KEY, void (*)(EC_KEY*)> key(EC_KEY_new(), EC_KEY_free);
  const auto* point = reinterpret_cast<const unsigned char*>(bits.data() + 1);
  if (key == nullptr || EC_KEY_set_group(key.get(), Group(curve->nid)) != 1 ||
      EC_KEY_oct2key(key.get(), point, curve->point_bytes, nullptr) != 1) {
    ClearOpenSslErrors();
    *verdict = Bad(field, "the public key cannot be decoded (unsupported or malformed)");
    return true;
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int digest_length = 0;
  if (EVP_Digest(info.data(), info.size(), digest, &digest_length, md, nullptr) != 1) {
    *verdict = OpenSslError("EVP_Digest");
    return true;
  }
  const auto* sig = reinterpret_cast<const unsigned char*>(signature.data() + 1);
  if (ECDSA_verify(0, digest, static_cast<int>(digest_length), sig,
                   static_cast<int>(signature.size() - 1), key.get()) != 1) {
    ClearOpenSslErrors();
    *verdict = Bad(field, "the signature does not verify (no proof of possession of the key)");
    return true;
  }
  *verdict = absl::OkStatus();
  return true;
}

// GeneralProofOfPossession: every other key and signature algorithm, through OpenSSL's
// own request decoder and verifier.
absl::Status GeneralProofOfPossession(absl::string_view field, absl::string_view what,
                                      ParsedCsr& csr) {
  const unsigned char* p = reinterpret_cast<const unsigned char*>(csr.der.data());
  X509ReqPtr req(d2i_X509_REQ(nullptr, &p, static_cast<long>(csr.der.size())));
  if (req == nullptr) {
    ClearOpenSslErrors();
    return NotDer(field, what);
  }
  // The key must be one fleetca allows (checked before the signature: it is cheaper and its
  // reason is more useful to the caller).
  EvpPkeyPtr key(X509_REQ_get_pubkey(req.get()));
  if (key == nullptr) {
    ClearOpenSslErrors();
    return Bad(field, "the public key cannot be decoded (unsupported or malformed)");
  }
  auto algorithm = KeyAlgorithmOf(key.get());
  if (!algorithm.ok()) {
    return Bad(field, algorithm.status().message());
  }
  csr.key_algorithm = *algorithm;
  if (X509_REQ_verify(req.get(), key.get()) != 1) {
    ClearOpenSslErrors();
    return Bad(field, "the signature does not verify (no proof of possession of the key)");
  }
  auto spki = PublicKeyToDer(key.get());
  if (!spki.ok()) {
    return spki.status();
  }
  csr.public_key_der = std::move(*spki);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<ParsedCsr> ParseCsr(absl::string_view field, absl::string_view data, bool is_pem) {
  // 1. Size limits before any parsing.
  if (data.empty()) {
    return Bad(field, "is empty");
  }
  if (data.size() > kMaxCsrBytes) {
    return Bad(field,
               absl::StrCat("is ", data.size(), " bytes, more than the limit of ", kMaxCsrBytes));
  }
  ClearOpenSslErrors();

  // 2. Decode: exactly one request, and nothing else.
  ParsedCsr csr;
  if (is_pem) {
    auto der = DecodePem(field, data);
    if (!der.ok()) {
      return der.status();
    }
    csr.der = std::move(*der);
  } else {
    csr.der = std::string(data);
  }
  const absl::string_view what = is_pem ? "the PEM block" : "the input";

  // 3. The structure (RFC 2986 section 4): strict DER, exactly one request, nothing after.
  der::Reader outer(csr.der);
  absl::string_view request, info, signature_algorithm, signature, info_element;
  if (!outer.Expect(der::kSequence, &request)) {
    return NotDer(field, what);
  }
  if (!outer.empty()) {
    return Bad(field, absl::StrCat("trailing bytes after the DER CERTIFICATE REQUEST in ", what));
  }
  der::Reader parts(request);
  if (!parts.Expect(der::kSequence, &info, &info_element) ||
      !parts.Expect(der::kSequence, nullptr, &signature_algorithm) ||
      !parts.Expect(der::kBitString, &signature) || !parts.empty()) {
    return NotDer(field, what);
  }
  der::Reader fields(info);
  absl::string_view version, subject, spki, attributes;
  if (!fields.Expect(der::kInteger, &version) || !fields.Expect(der::kSequence, &subject) ||
      !fields.Expect(der::kSequence, nullptr, &spki)) {
    return NotDer(field, what);
  }
  // The attributes are required by RFC 2986 but some tools omit them, as OpenSSL tolerates.
  if (!fields.empty() &&
      (!fields.Expect(der::ContextConstructed(0), &attributes) || !fields.empty())) {
    return NotDer(field, what);
  }
  // RFC 2986 defines version 0 only.
  if (version != absl::string_view("\0", 1)) {
    return Bad(field, "unsupported CERTIFICATE REQUEST version (only v1 is defined)");
  }

  // 4. Proof of possession: the request is signed by the private half of its key, which
  //    must be one fleetca allows.
  absl::Status verdict;
  if (!FastEcdsa(field, spki, info_element, signature_algorithm, signature, csr, &verdict)) {
    verdict = GeneralProofOfPossession(field, what, csr);
  }
  RETURN_IF_ERROR(verdict);

  // 5. What the subject and the extension request say, for the policy checks of the caller.
  RETURN_IF_ERROR(ReadCommonNames(field, what, subject, csr));
  RETURN_IF_ERROR(ReadAttributes(field, what, attributes, csr));
  return csr;
}

}  // namespace fleetca::pki
