#include "sync_agent/validate.h"

#include <openssl/pem.h>
#include <openssl/x509.h>

#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "acl/topic.h"
#include "common/text.h"
#include "pki/openssl_util.h"

namespace fleetca::sync_agent {
namespace {

constexpr absl::string_view kBegin = "-----BEGIN ";
constexpr absl::string_view kEnd = "-----END ";
constexpr absl::string_view kDashes = "-----";

// DecodeBlock decodes one block's text (BEGIN to END lines) with OpenSSL's PEM reader, the
// one mosquitto uses.
absl::StatusOr<PemBlock> DecodeBlock(absl::string_view text, size_t index) {
  pki::BioPtr bio(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
  if (bio == nullptr) return pki::OpenSslError("BIO_new_mem_buf");
  char* name = nullptr;
  char* header = nullptr;
  unsigned char* data = nullptr;
  long len = 0;
  if (PEM_read_bio(bio.get(), &name, &header, &data, &len) != 1) {
    pki::ClearOpenSslErrors();
    return absl::InvalidArgumentError(
        absl::StrCat("PEM block ", index, " does not decode (OpenSSL PEM_read_bio)"));
  }
  PemBlock block{name, std::string(reinterpret_cast<const char*>(data), static_cast<size_t>(len))};
  const bool has_header = header != nullptr && header[0] != '\0';
  OPENSSL_free(name);
  OPENSSL_free(header);
  OPENSSL_free(data);
  if (has_header) {
    return absl::InvalidArgumentError(absl::StrCat("PEM block ", index, " has headers"));
  }
  return block;
}

// CountX509Info counts the certificates and CRLs OpenSSL's bundle reader (what
// SSL_CTX_load_verify_locations and X509_load_crl_file use) finds in text.
void CountX509Info(absl::string_view text, int* certs, int* crls) {
  *certs = 0;
  *crls = 0;
  pki::BioPtr bio(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
  if (bio == nullptr) return;
  STACK_OF(X509_INFO)* infos = PEM_X509_INFO_read_bio(bio.get(), nullptr, nullptr, nullptr);
  pki::ClearOpenSslErrors();
  if (infos == nullptr) return;
  for (int i = 0; i < sk_X509_INFO_num(infos); ++i) {
    const X509_INFO* info = sk_X509_INFO_value(infos, i);
    if (info->x509 != nullptr) ++*certs;
    if (info->crl != nullptr) ++*crls;
  }
  sk_X509_INFO_pop_free(infos, X509_INFO_free);
}

std::string CrlIssuerName(const X509_CRL* crl) {
  return pki::NameToString(X509_CRL_get_issuer(crl));
}

}  // namespace

absl::StatusOr<std::vector<PemBlock>> SplitPem(absl::string_view text) {
  std::vector<PemBlock> blocks;
  std::string label;            // of the open block; empty outside
  const char* start = nullptr;  // where the open block's BEGIN line starts
  size_t offset = 0;
  while (offset < text.size()) {
    size_t eol = text.find('\n', offset);
    if (eol == absl::string_view::npos) eol = text.size();
    const absl::string_view raw = text.substr(offset, eol - offset);
    const absl::string_view line = absl::StripAsciiWhitespace(raw);
    const size_t next = eol == text.size() ? eol : eol + 1;
    const size_t index = blocks.size() + 1;
    if (label.empty()) {
      if (line.empty()) {
        offset = next;
        continue;
      }
      if (!absl::StartsWith(line, kBegin) || !absl::EndsWith(line, kDashes) ||
          line.size() <= kBegin.size() + kDashes.size()) {
        return absl::InvalidArgumentError(
            absl::StrCat("text outside a PEM block before block ", index));
      }
      label = std::string(line.substr(kBegin.size(), line.size() - kBegin.size() - kDashes.size()));
      start = raw.data();
    } else if (absl::StartsWith(line, kDashes)) {
      if (line != absl::StrCat(kEnd, label, kDashes)) {
        return absl::InvalidArgumentError(
            absl::StrCat("PEM block ", index, " (", label, ") ends with \"", line, "\""));
      }
      const absl::string_view block_text(start,
                                         static_cast<size_t>(raw.data() + raw.size() - start));
      absl::StatusOr<PemBlock> block = DecodeBlock(block_text, index);
      if (!block.ok()) return block.status();
      blocks.push_back(*std::move(block));
      label.clear();
    }
    offset = next;
  }
  if (!label.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("PEM block ", blocks.size() + 1, " (", label,
                                                   ") has no END line (truncated)"));
  }
  return blocks;
}

absl::StatusOr<std::vector<pki::X509Ptr>> ValidateCaFile(absl::string_view pem) {
  absl::StatusOr<std::vector<PemBlock>> blocks = SplitPem(pem);
  if (!blocks.ok()) return blocks.status();
  if (blocks->empty()) return absl::InvalidArgumentError("no certificate");
  std::vector<pki::X509Ptr> certs;
  for (size_t i = 0; i < blocks->size(); ++i) {
    const PemBlock& block = (*blocks)[i];
    if (block.label != "CERTIFICATE") {
      return absl::InvalidArgumentError(
          absl::StrCat("PEM block ", i + 1, " is a ", block.label, ", not a CERTIFICATE"));
    }
    const unsigned char* p = reinterpret_cast<const unsigned char*>(block.der.data());
    pki::X509Ptr cert(d2i_X509(nullptr, &p, static_cast<long>(block.der.size())));
    if (cert == nullptr ||
        p != reinterpret_cast<const unsigned char*>(block.der.data()) + block.der.size()) {
      pki::ClearOpenSslErrors();
      return absl::InvalidArgumentError(
          absl::StrCat("certificate ", i + 1, " does not parse as X.509 DER"));
    }
    if (X509_check_ca(cert.get()) < 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("certificate ", i + 1, " (",
                       pki::NameToString(X509_get_subject_name(cert.get())), ") is not a CA"));
    }
    certs.push_back(std::move(cert));
  }
  int n_certs = 0;
  int n_crls = 0;
  CountX509Info(pem, &n_certs, &n_crls);
  if (static_cast<size_t>(n_certs) != certs.size() || n_crls != 0) {
    return absl::InvalidArgumentError(absl::StrCat("OpenSSL's bundle reader finds ", n_certs,
                                                   " certificates and ", n_crls, " CRLs, not ",
                                                   certs.size(), " certificates"));
  }
  return certs;
}

absl::Status ValidateCrlFile(absl::string_view pem, const std::vector<const X509*>& issuers,
                             absl::Time now, std::vector<std::string>* warnings) {
  absl::StatusOr<std::vector<PemBlock>> blocks = SplitPem(pem);
  if (!blocks.ok()) return blocks.status();
  if (blocks->empty()) {
    return absl::InvalidArgumentError("no CRL (mosquitto refuses a crlfile without one)");
  }
  const time_t now_t = absl::ToTimeT(now);
  for (size_t i = 0; i < blocks->size(); ++i) {
    const PemBlock& block = (*blocks)[i];
    if (block.label != "X509 CRL") {
      return absl::InvalidArgumentError(
          absl::StrCat("PEM block ", i + 1, " is a ", block.label, ", not an X509 CRL"));
    }
    const unsigned char* p = reinterpret_cast<const unsigned char*>(block.der.data());
    pki::X509CrlPtr crl(d2i_X509_CRL(nullptr, &p, static_cast<long>(block.der.size())));
    if (crl == nullptr ||
        p != reinterpret_cast<const unsigned char*>(block.der.data()) + block.der.size()) {
      pki::ClearOpenSslErrors();
      return absl::InvalidArgumentError(absl::StrCat("CRL ", i + 1, " does not parse as DER"));
    }
    // The signature, with the key of an issuer of that name (two certificates of one name:
    // a re-keyed CA; either key may have signed).
    bool verified = false;
    bool named = false;
    for (const X509* issuer : issuers) {
      if (X509_NAME_cmp(X509_CRL_get_issuer(crl.get()), X509_get_subject_name(issuer)) != 0) {
        continue;
      }
      named = true;
      EVP_PKEY* key = X509_get0_pubkey(issuer);
      if (key != nullptr && X509_CRL_verify(crl.get(), key) == 1) {
        verified = true;
        break;
      }
    }
    pki::ClearOpenSslErrors();
    if (!verified) {
      return absl::InvalidArgumentError(
          absl::StrCat("CRL ", i + 1, " (issuer ", CrlIssuerName(crl.get()), ") ",
                       named ? "is not signed by its issuer's key" : "names no known issuer"));
    }
    const ASN1_TIME* next_update = X509_CRL_get0_nextUpdate(crl.get());
    const ASN1_TIME* this_update = X509_CRL_get0_lastUpdate(crl.get());
    if (warnings != nullptr && next_update != nullptr &&
        X509_cmp_time(next_update, const_cast<time_t*>(&now_t)) < 0) {
      warnings->push_back(absl::StrCat(
          "the CRL of ", CrlIssuerName(crl.get()),
          " is past its nextUpdate: mosquitto refuses every client certificate of that issuer "
          "until fleetca sends a fresh CRL"));
    }
    if (warnings != nullptr && this_update != nullptr &&
        X509_cmp_time(this_update, const_cast<time_t*>(&now_t)) > 0) {
      warnings->push_back(absl::StrCat("the CRL of ", CrlIssuerName(crl.get()),
                                       " is not valid yet (thisUpdate in the future: clock "
                                       "skew?): mosquitto refuses that issuer's clients"));
    }
  }
  int n_certs = 0;
  int n_crls = 0;
  CountX509Info(pem, &n_certs, &n_crls);
  if (static_cast<size_t>(n_crls) != blocks->size() || n_certs != 0) {
    return absl::InvalidArgumentError(absl::StrCat("OpenSSL's bundle reader finds ", n_crls,
                                                   " CRLs and ", n_certs, " certificates, not ",
                                                   blocks->size(), " CRLs"));
  }
  return absl::OkStatus();
}

absl::Status CheckAclFile(absl::string_view text) {
  if (!text.empty() && text.back() != '\n') {
    return absl::InvalidArgumentError("the last line does not end in a newline");
  }
  bool seen_user = false;
  int number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++number;
    if (line.empty()) continue;  // also the split's empty piece after the last '\n'
    auto bad = [&](absl::string_view why) {
      return absl::InvalidArgumentError(absl::StrCat("acl_file line ", number, ": ", why));
    };
    if (HasControlCharacters(line)) return bad("holds a control character");
    if (line.front() == '#') continue;
    if (absl::StartsWith(line, "user ")) {
      const absl::string_view name = line.substr(5);
      if (name.empty() || absl::ascii_isspace(static_cast<unsigned char>(name.front())) ||
          absl::ascii_isspace(static_cast<unsigned char>(name.back()))) {
        return bad("a user line needs a name without surrounding white space");
      }
      seen_user = true;
      continue;
    }
    if (absl::StartsWith(line, "topic ")) {
      if (!seen_user) return bad("a topic line before the first user line");
      const absl::string_view rest = line.substr(6);
      const size_t space = rest.find(' ');
      if (space == absl::string_view::npos) return bad("a topic line needs an access and a filter");
      const absl::string_view access = rest.substr(0, space);
      const absl::string_view filter = rest.substr(space + 1);
      if (access != "read" && access != "write" && access != "readwrite" && access != "deny") {
        return bad(absl::StrCat("unknown access \"", access, "\""));
      }
      if (filter.empty() || absl::ascii_isspace(static_cast<unsigned char>(filter.front())) ||
          absl::ascii_isspace(static_cast<unsigned char>(filter.back()))) {
        return bad("a filter with surrounding white space (mosquitto would trim it)");
      }
      if (absl::Status status = acl::ValidateTopicFilter(filter); !status.ok()) {
        return bad(status.message());
      }
      continue;
    }
    return bad("neither a comment, a user line nor a topic line");
  }
  return absl::OkStatus();
}

}  // namespace fleetca::sync_agent
