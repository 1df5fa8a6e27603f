#include "pki/crl_builder.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "pki/certificate_builder.h"
#include "pki/der.h"

namespace fleetca::pki {
namespace {

constexpr char kOidReasonCode[] = "2.5.29.21";
constexpr char kOidInvalidityDate[] = "2.5.29.24";
constexpr char kOidAuthorityKeyId[] = "2.5.29.35";
constexpr char kOidCrlNumber[] = "2.5.29.20";
constexpr char kOidDeltaCrlIndicator[] = "2.5.29.27";
constexpr char kOidFreshestCrl[] = "2.5.29.46";

absl::Status Invalid(absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat("CRL template: ", why));
}

// GeneralizedTime, as invalidityDate always is (5.3.2).
void AppendGeneralizedTime(std::string* out, absl::Time t) {
  der::AppendElement(out, der::kGeneralizedTime,
                     absl::FormatTime("%Y%m%d%H%M%SZ", t, absl::UTCTimeZone()));
}

// The reasonCode extension of each CRLReason (an Extension SEQUENCE), encoded once.
const std::string& ReasonExtension(int reason) {
  static const auto* table = [] {
    auto* t = new std::vector<std::string>(11);
    for (int r = 1; r <= 10; ++r) {
      std::string value;
      der::AppendElement(&value, 0x0a /* ENUMERATED */, std::string(1, static_cast<char>(r)));
      AppendExtension(&(*t)[static_cast<size_t>(r)], kOidReasonCode, false, value);
    }
    return t;
  }();
  return (*table)[static_cast<size_t>(reason)];
}

std::string IntegerMagnitude(uint64_t v) {
  std::string bytes;
  do {
    bytes.insert(bytes.begin(), static_cast<char>(v & 0xff));
    v >>= 8;
  } while (v != 0);
  const size_t first = bytes.find_first_not_of('\0');
  return first == std::string::npos ? std::string(1, '\0') : bytes.substr(first);
}

}  // namespace

absl::Status AppendCrlEntry(const CrlEntry& e, std::string* out) {
  if (e.serial.empty() || e.serial.size() > 20 || e.serial[0] == '\0' ||
      (static_cast<unsigned char>(e.serial[0]) & 0x80) != 0) {
    return Invalid("an entry's serial is not a positive integer of 1 to 20 bytes");
  }
  if (e.reason < 0 || e.reason > 10 || e.reason == 7) {
    return Invalid(absl::StrCat("reason ", e.reason, " is not a CRLReason"));
  }
  // Small buffers, reused by each thread: a million entries, no allocation each.
  thread_local std::string entry, extensions, value;
  entry.clear();
  der::AppendUnsignedInteger(&entry, e.serial);
  der::AppendTime(&entry, e.revocation_date);
  extensions.clear();
  if (e.reason != 0) extensions += ReasonExtension(e.reason);
  if (e.invalidity_date) {
    value.clear();
    AppendGeneralizedTime(&value, *e.invalidity_date);
    AppendExtension(&extensions, kOidInvalidityDate, false, value);
  }
  if (!extensions.empty()) der::AppendElement(&entry, der::kSequence, extensions);
  der::AppendElement(out, der::kSequence, entry);
  return absl::OkStatus();
}

absl::StatusOr<std::string> BuildCrlDer(const CrlTemplate& tmpl, const X509* issuer_cert,
                                        KeyStore& key_store, const std::string& signer_issuer_id) {
  // revokedCertificates: one SEQUENCE per entry (5.1.2.6).
  std::string revoked;
  revoked.reserve(tmpl.entries.size() * 64);
  for (const CrlEntry& e : tmpl.entries) {
    if (e.certificate_not_after <= tmpl.this_update) continue;
    RETURN_IF_ERROR(AppendCrlEntry(e, &revoked));
  }
  return BuildCrlDerFromEncoded(
      tmpl, revoked.size(), [&](std::string* out) { *out += revoked; }, issuer_cert, key_store,
      signer_issuer_id);
}

absl::StatusOr<std::string> BuildCrlDerFromEncoded(
    const CrlTemplate& tmpl, size_t entries_bytes,
    const std::function<void(std::string*)>& append_entries, const X509* issuer_cert,
    KeyStore& key_store, const std::string& signer_issuer_id) {
  if (issuer_cert == nullptr) return Invalid("no issuer certificate");
  if (tmpl.next_update <= tmpl.this_update) return Invalid("next_update must be after this_update");
  ASSIGN_OR_RETURN(const std::string issuer, SubjectNameDerOf(issuer_cert));
  ASSIGN_OR_RETURN(const std::string key_id, IssuerKeyIdOf(issuer_cert));
  ASSIGN_OR_RETURN(const std::string algorithm, key_store.SignatureAlgorithm(signer_issuer_id));

  if (tmpl.delta_base_crl_number) {
    if (*tmpl.delta_base_crl_number >= tmpl.crl_number) {
      return Invalid("a delta CRL's base must have a lower CRL number");
    }
    if (!tmpl.freshest_crl_url.empty()) return Invalid("a delta CRL has no freshestCRL");
  }

  // crlExtensions (5.2): authorityKeyIdentifier, cRLNumber, and deltaCRLIndicator or
  // freshestCRL.
  std::string crl_extensions;
  AppendExtension(&crl_extensions, kOidAuthorityKeyId, false,
                  der::Element(der::kSequence, der::Element(der::ContextPrimitive(0), key_id)));
  std::string number;
  der::AppendUnsignedInteger(&number, IntegerMagnitude(tmpl.crl_number));
  AppendExtension(&crl_extensions, kOidCrlNumber, false, number);
  if (tmpl.delta_base_crl_number) {
    std::string base;
    der::AppendUnsignedInteger(&base, IntegerMagnitude(*tmpl.delta_base_crl_number));
    AppendExtension(&crl_extensions, kOidDeltaCrlIndicator, true, base);
  }
  if (!tmpl.freshest_crl_url.empty()) {
    auto points = DistributionPointsDer(tmpl.freshest_crl_url);
    if (!points.ok()) return Invalid(absl::StrCat("freshestCRL: ", points.status().message()));
    AppendExtension(&crl_extensions, kOidFreshestCrl, false, *points);
  }

  // TBSCertList (5.1.2): the fields around revokedCertificates, whose contents are written
  // straight into the one buffer that becomes the CRL (at a million entries, every copy and
  // every fresh allocation of tens of MiB shows).
  std::string head;  // version .. nextUpdate, and the revokedCertificates header
  der::AppendElement(&head, der::kInteger, absl::string_view("\x01", 1));  // v2
  head += algorithm;
  head += issuer;
  der::AppendTime(&head, tmpl.this_update);
  der::AppendTime(&head, tmpl.next_update);
  // revokedCertificates is omitted when there is none.
  if (entries_bytes > 0) der::AppendHeader(&head, der::kSequence, entries_bytes);
  const std::string tail = der::Element(der::ContextConstructed(0),
                                        der::Element(der::kSequence, crl_extensions));
  std::string tbs_header;
  der::AppendHeader(&tbs_header, der::kSequence, head.size() + entries_bytes + tail.size());
  const size_t tbs_size = tbs_header.size() + head.size() + entries_bytes + tail.size();

  // CertificateList = SEQUENCE { tbs, algorithm, BIT STRING signature }. Its header is
  // written in front once the signature's length is known: room for the longest is kept.
  constexpr size_t kRoom = 1 + 1 + sizeof(uint32_t);
  std::string crl;
  crl.reserve(kRoom + tbs_size + algorithm.size() + 1024);
  crl.append(kRoom, '\0');
  crl += tbs_header;
  crl += head;
  const size_t entries_at = crl.size();
  append_entries(&crl);
  if (crl.size() - entries_at != entries_bytes) {
    return absl::InternalError("CRL entries differ from their announced length");
  }
  crl += tail;
  ASSIGN_OR_RETURN(const std::string signature,
                   key_store.Sign(signer_issuer_id, algorithm,
                                  absl::string_view(crl).substr(kRoom, tbs_size)));
  crl += algorithm;
  der::AppendBitString(&crl, signature);
  std::string outer;
  der::AppendHeader(&outer, der::kSequence, crl.size() - kRoom);
  if (outer.size() > kRoom) return absl::InternalError("CRL too large");
  crl.replace(kRoom - outer.size(), outer.size(), outer);
  crl.erase(0, kRoom - outer.size());  // nothing to move for a CRL of 16 MiB or more
  return crl;
}

}  // namespace fleetca::pki
