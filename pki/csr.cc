#include "pki/csr.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <climits>
#include <cstring>
#include <set>
#include <string>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace fleetca::pki {
namespace {

using ExtensionsPtr =
    std::unique_ptr<STACK_OF(X509_EXTENSION), void (*)(STACK_OF(X509_EXTENSION)*)>;

void FreeExtensions(STACK_OF(X509_EXTENSION) * exts) {
  sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
}

// Each failure names the field and says what is wrong, never echoing the input.
absl::Status Bad(absl::string_view field, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", why));
}

bool IsWhitespace(absl::string_view s) {
  for (const char c : s) {
    if (!absl::ascii_isspace(static_cast<unsigned char>(c))) {
      return false;
    }
  }
  return true;
}

// DecodeDer parses exactly one DER CertificationRequest (RFC 2986 section 4.2) filling all of
// `der` (trailing bytes are refused: they would let two different byte strings carry the
// same request past the idempotency check).
absl::StatusOr<X509ReqPtr> DecodeDer(absl::string_view field, absl::string_view der,
                                     absl::string_view what) {
  const unsigned char* p = reinterpret_cast<const unsigned char*>(der.data());
  const unsigned char* const end = p + der.size();
  X509ReqPtr req(d2i_X509_REQ(nullptr, &p, static_cast<long>(der.size())));
  if (req == nullptr) {
    ClearOpenSslErrors();
    return Bad(field, absl::StrCat(what, " is not a DER-encoded CERTIFICATE REQUEST"));
  }
  if (p != end) {
    return Bad(field, absl::StrCat("trailing bytes after the DER CERTIFICATE REQUEST in ", what));
  }
  return req;
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

std::string ObjectToOid(const ASN1_OBJECT* obj) {
  char buf[128];
  const int len = OBJ_obj2txt(buf, sizeof(buf), obj, /*no_name=*/1);
  if (len <= 0) {
    ClearOpenSslErrors();
    return std::string();
  }
  if (static_cast<size_t>(len) >= sizeof(buf)) {
    std::string big(static_cast<size_t>(len) + 1, '\0');
    OBJ_obj2txt(big.data(), len + 1, obj, 1);
    big.resize(static_cast<size_t>(len));
    return big;
  }
  return std::string(buf, static_cast<size_t>(len));
}

absl::StatusOr<std::string> IpToText(const ASN1_OCTET_STRING* ip) {
  const int len = ASN1_STRING_length(ip);
  const unsigned char* bytes = ASN1_STRING_get0_data(ip);
  char buf[INET6_ADDRSTRLEN] = {0};
  if (len == 4) {
    if (inet_ntop(AF_INET, bytes, buf, sizeof(buf)) == nullptr) {
      return absl::InvalidArgumentError("bad IPv4 address");
    }
  } else if (len == 16) {
    if (inet_ntop(AF_INET6, bytes, buf, sizeof(buf)) == nullptr) {
      return absl::InvalidArgumentError("bad IPv6 address");
    }
  } else {
    return absl::InvalidArgumentError("iPAddress of neither 4 nor 16 bytes");
  }
  return std::string(buf);
}

// ReadSubjectAltName adds the requested SAN entries to csr (RFC 5280 section 4.2.1.6).
absl::Status ReadSubjectAltName(absl::string_view field, X509_EXTENSION* ext, ParsedCsr& csr) {
  GENERAL_NAMES* raw = static_cast<GENERAL_NAMES*>(X509V3_EXT_d2i(ext));
  if (raw == nullptr) {
    ClearOpenSslErrors();
    return Bad(field, "the requested subjectAltName extension is malformed");
  }
  GeneralNamesPtr names(raw);
  const int n = sk_GENERAL_NAME_num(names.get());
  for (int i = 0; i < n; ++i) {
    const GENERAL_NAME* name = sk_GENERAL_NAME_value(names.get(), i);
    switch (name->type) {
      case GEN_DNS: {
        const ASN1_IA5STRING* dns = name->d.dNSName;
        csr.dns_names.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(dns)),
                                   static_cast<size_t>(ASN1_STRING_length(dns)));
        break;
      }
      case GEN_IPADD: {
        auto text = IpToText(name->d.iPAddress);
        if (!text.ok()) {
          return Bad(field,
                     absl::StrCat("requested subjectAltName has a ", text.status().message()));
        }
        csr.ip_addresses.push_back(std::move(*text));
        break;
      }
      default:
        csr.has_other_names = true;
        break;
    }
  }
  return absl::OkStatus();
}

// ReadExtensionRequest reads the PKCS#9 extensionRequest attribute (RFC 2986 section 4.1,
// RFC 2985 section 5.4.2). An ambiguous request (the attribute twice, several values, the
// same extension twice: RFC 5280 section 4.2) is refused rather than read one way here and
// another way by someone else.
absl::Status ReadExtensionRequest(absl::string_view field, X509_REQ* req, ParsedCsr& csr) {
  const int first = X509_REQ_get_attr_by_NID(req, NID_ext_req, -1);
  const int ms_first = X509_REQ_get_attr_by_NID(req, NID_ms_ext_req, -1);
  if (first < 0 && ms_first < 0) {
    return absl::OkStatus();
  }
  if ((first >= 0 && ms_first >= 0) || X509_REQ_get_attr_by_NID(req, NID_ext_req, first) >= 0 ||
      (ms_first >= 0 && X509_REQ_get_attr_by_NID(req, NID_ms_ext_req, ms_first) >= 0)) {
    return Bad(field, "more than one extensionRequest attribute");
  }
  X509_ATTRIBUTE* attr = X509_REQ_get_attr(req, first >= 0 ? first : ms_first);
  if (attr == nullptr || X509_ATTRIBUTE_count(attr) != 1) {
    ClearOpenSslErrors();
    return Bad(field, "the extensionRequest attribute must have exactly one value");
  }
  ExtensionsPtr exts(X509_REQ_get_extensions(req), &FreeExtensions);
  if (exts == nullptr) {
    ClearOpenSslErrors();
    return Bad(field, "the extensionRequest attribute is malformed");
  }
  std::set<std::string> seen;
  const int n = sk_X509_EXTENSION_num(exts.get());
  for (int i = 0; i < n; ++i) {
    X509_EXTENSION* ext = sk_X509_EXTENSION_value(exts.get(), i);
    const ASN1_OBJECT* obj = X509_EXTENSION_get_object(ext);
    std::string oid = ObjectToOid(obj);
    if (oid.empty()) {
      return Bad(field, "a requested extension has an unreadable OID");
    }
    if (!seen.insert(oid).second) {
      return Bad(field, absl::StrCat("extension ", oid, " is requested more than once"));
    }
    if (OBJ_obj2nid(obj) == NID_subject_alt_name) {
      if (absl::Status st = ReadSubjectAltName(field, ext, csr); !st.ok()) {
        return st;
      }
    }
    csr.extension_oids.push_back(std::move(oid));
  }
  return absl::OkStatus();
}

absl::Status ReadCommonNames(absl::string_view field, const X509_NAME* subject, ParsedCsr& csr) {
  int pos = -1;
  while ((pos = X509_NAME_get_index_by_NID(subject, NID_commonName, pos)) >= 0) {
    const X509_NAME_ENTRY* entry = X509_NAME_get_entry(subject, pos);
    const ASN1_STRING* value = X509_NAME_ENTRY_get_data(entry);
    unsigned char* utf8 = nullptr;
    const int len = ASN1_STRING_to_UTF8(&utf8, value);
    if (len < 0 || utf8 == nullptr) {
      ClearOpenSslErrors();
      return Bad(field, "a subject commonName is not a valid string");
    }
    csr.common_names.emplace_back(reinterpret_cast<const char*>(utf8), static_cast<size_t>(len));
    OPENSSL_free(utf8);
  }
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
  auto req = DecodeDer(field, csr.der, is_pem ? "the PEM block" : "the input");
  if (!req.ok()) {
    return req.status();
  }
  csr.req = std::move(*req);

  // 3. RFC 2986 defines version 0 only.
  if (X509_REQ_get_version(csr.req.get()) != X509_REQ_VERSION_1) {
    return Bad(field, "unsupported CERTIFICATE REQUEST version (only v1 is defined)");
  }

  // 4. The key must be one fleetca allows (checked before the signature: it is cheaper and
  //    its reason is more useful to the caller).
  csr.public_key.reset(X509_REQ_get_pubkey(csr.req.get()));
  if (csr.public_key == nullptr) {
    ClearOpenSslErrors();
    return Bad(field, "the public key cannot be decoded (unsupported or malformed)");
  }
  auto algorithm = KeyAlgorithmOf(csr.public_key.get());
  if (!algorithm.ok()) {
    return Bad(field, algorithm.status().message());
  }
  csr.key_algorithm = *algorithm;

  // 5. Proof of possession: the request is signed by the private half of its key.
  if (X509_REQ_verify(csr.req.get(), csr.public_key.get()) != 1) {
    ClearOpenSslErrors();
    return Bad(field, "the signature does not verify (no proof of possession of the key)");
  }

  // 6. What the subject and the extension request say, for the policy checks of the caller.
  const X509_NAME* subject = X509_REQ_get_subject_name(csr.req.get());
  if (absl::Status st = ReadCommonNames(field, subject, csr); !st.ok()) {
    return st;
  }
  csr.subject = NameToString(subject);
  if (absl::Status st = ReadExtensionRequest(field, csr.req.get(), csr); !st.ok()) {
    return st;
  }
  return csr;
}

}  // namespace fleetca::pki
