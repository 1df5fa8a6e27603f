#include "server/ca/external_cas.h"

#include <openssl/x509v3.h>

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "common/page_token.h"
#include "common/status_macros.h"
#include "pki/certificate_builder.h"
#include "pki/crl_reader.h"
#include "pki/keys.h"
#include "pki/openssl_util.h"
#include "server/registry/registry.h"
#include "server/registry/validation.h"

namespace fleetca::ca {
namespace {

constexpr char kPageTokenKind[] = "external-cas";
constexpr size_t kMaxIdLength = 63;

absl::Status Invalid(absl::string_view field, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", why));
}

bool AllDigits(absl::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return absl::ascii_isdigit(c); });
}

// The certificate's key algorithm as the database spells it, or "other" for keys fleetca
// would not issue for (an external CA's RSA-8192, say): they are still verified.
std::string KeyAlgorithmOfCertificate(const X509* cert) {
  auto algorithm = pki::KeyAlgorithmOf(X509_get0_pubkey(cert));
  pki::ClearOpenSslErrors();
  return algorithm.ok() ? pki::KeyAlgorithmName(*algorithm) : "other";
}

// The values of the subject's CN attributes.
std::vector<std::string> CommonNames(const X509* cert) {
  std::vector<std::string> out;
  const X509_NAME* subject = X509_get_subject_name(cert);
  for (int i = X509_NAME_get_index_by_NID(subject, NID_commonName, -1); i >= 0;
       i = X509_NAME_get_index_by_NID(subject, NID_commonName, i)) {
    const ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, i));
    unsigned char* utf8 = nullptr;
    const int len = ASN1_STRING_to_UTF8(&utf8, data);
    out.emplace_back(len > 0 ? std::string(reinterpret_cast<char*>(utf8), len) : std::string());
    OPENSSL_free(utf8);
  }
  return out;
}

}  // namespace

absl::Status ExternalCas::ValidateId(absl::string_view field, absl::string_view id) {
  if (id.empty() || id.size() > kMaxIdLength || !absl::ascii_islower(id[0]) ||
      !std::all_of(id.begin(), id.end(), [](char c) {
        return absl::ascii_islower(c) || absl::ascii_isdigit(c) || c == '-';
      })) {
    return Invalid(field, absl::StrCat("must be 1 to 63 characters of [a-z0-9-] starting with a "
                                       "letter, got ",
                                       registry::Quote(id)));
  }
  for (const char* purpose : {"root", "devices", "brokers", "operators"}) {
    absl::string_view rest = id;
    if (absl::ConsumePrefix(&rest, purpose) && absl::ConsumePrefix(&rest, "-") && AllDigits(rest)) {
      return Invalid(field, absl::StrCat("ids of the form \"", purpose,
                                         "-<number>\" are reserved for fleetca's issuers"));
    }
  }
  const size_t chain = id.rfind("-chain-");
  if (chain != absl::string_view::npos && AllDigits(id.substr(chain + 7))) {
    return Invalid(field, "ids ending in \"-chain-<number>\" are reserved for trust-bundle aliases");
  }
  return absl::OkStatus();
}

absl::StatusOr<storage::ExternalCa> ExternalCas::Register(const std::string& id,
                                                          const std::string& display_name,
                                                          const std::string& certificate_pem,
                                                          bool accept_unregistered,
                                                          const RequestContext& ctx) {
  RETURN_IF_ERROR(ValidateId("external_ca_id", id));
  RETURN_IF_ERROR(
      registry::ValidateFreeText("display_name", display_name, registry::kMaxDisplayNameBytes));
  if (certificate_pem.empty()) return Invalid("certificate_pem", "is required");
  auto certs = pki::CertificatesFromPem(certificate_pem);
  if (!certs.ok()) return Invalid("certificate_pem", "not a PEM certificate");
  if (certs->size() != 1) {
    return Invalid("certificate_pem", absl::StrCat("must hold one certificate, holds ", certs->size()));
  }
  const X509* cert = (*certs)[0].get();
  auto info = pki::InspectCertificate(cert);
  if (!info.ok()) return Invalid("certificate_pem", info.status().message());
  if (!info->is_ca) return Invalid("certificate_pem", "not a CA certificate (basicConstraints CA:TRUE)");
  if (!info->can_sign_certificates) {
    return Invalid("certificate_pem", "its keyUsage does not allow keyCertSign");
  }
  const absl::Time now = absl::Now();
  if (now < info->not_before || now >= info->not_after) {
    return Invalid("certificate_pem",
                   absl::StrCat("outside its validity (", absl::FormatTime(info->not_before), " to ",
                                absl::FormatTime(info->not_after), ")"));
  }
  ASSIGN_OR_RETURN(std::string der, pki::CertificateToDer(cert));
  ASSIGN_OR_RETURN(std::vector<storage::Issuer> own, ca_.ListIssuers());
  for (const storage::Issuer& i : own) {
    if (i.certificate_der == der) {
      return Invalid("certificate_pem",
                     absl::StrCat("it is fleetca's own issuer \"", i.id, "\", trusted already"));
    }
  }
  storage::ExternalCa ca;
  ca.id = id;
  ca.display_name = display_name;
  ca.subject = info->subject;
  ca.certificate_der = std::move(der);
  ca.not_before = info->not_before;
  ca.not_after = info->not_after;
  ca.accept_unregistered = accept_unregistered;
  return store_.Create(ca, ctx);
}

absl::StatusOr<storage::ExternalCa> ExternalCas::Get(const std::string& id) {
  RETURN_IF_ERROR(ValidateId("external_ca_id", id));
  return store_.Get(id);
}

absl::StatusOr<ExternalCaPage> ExternalCas::List(int page_size, const std::string& page_token) {
  ASSIGN_OR_RETURN(const int size, PageSize(page_size));
  ASSIGN_OR_RETURN(std::string after, DecodePageToken(kPageTokenKind, "", page_token));
  ASSIGN_OR_RETURN(std::vector<storage::ExternalCa> cas, store_.List(after, size + 1));
  ExternalCaPage page;
  if (cas.size() > static_cast<size_t>(size)) {
    cas.resize(size);
    page.next_page_token = EncodePageToken(kPageTokenKind, "", cas.back().id);
  }
  page.cas = std::move(cas);
  return page;
}

absl::StatusOr<storage::ExternalCa> ExternalCas::Update(const std::string& id,
                                                        const std::vector<std::string>& fields,
                                                        const storage::ExternalCaUpdate& update,
                                                        const std::string& etag,
                                                        const RequestContext& ctx) {
  RETURN_IF_ERROR(ValidateId("external_ca.external_ca_id", id));
  if (fields.empty()) {
    return Invalid("update_mask", "is required: name the fields to change (display_name, "
                                  "enabled, accept_unregistered_certificates)");
  }
  storage::ExternalCaUpdate apply;
  for (const std::string& f : fields) {
    if (f == "display_name") {
      apply.display_name = update.display_name.value_or("");
      RETURN_IF_ERROR(registry::ValidateFreeText("external_ca.display_name", *apply.display_name,
                                                 registry::kMaxDisplayNameBytes));
    } else if (f == "enabled") {
      apply.enabled = update.enabled.value_or(false);
    } else if (f == "accept_unregistered_certificates") {
      apply.accept_unregistered = update.accept_unregistered.value_or(false);
    } else {
      return Invalid("update_mask", absl::StrCat("unknown or read-only field ", registry::Quote(f),
                                                 " (display_name, enabled, "
                                                 "accept_unregistered_certificates)"));
    }
  }
  ASSIGN_OR_RETURN(std::optional<int64_t> version, registry::ParseEtag("etag", etag));
  return store_.Update(id, apply, version, ctx);
}

absl::Status ExternalCas::Delete(const std::string& id, const std::string& etag,
                                 const RequestContext& ctx) {
  RETURN_IF_ERROR(ValidateId("external_ca_id", id));
  ASSIGN_OR_RETURN(std::optional<int64_t> version, registry::ParseEtag("etag", etag));
  return store_.Remove(id, version, ctx);
}

absl::StatusOr<storage::RegisteredCertificate> ExternalCas::RegisterCertificate(
    const ExternalCertificateInput& in, const RequestContext& ctx) {
  RETURN_IF_ERROR(registry::ValidateCommId("comm_id", in.comm_id));
  // 1. The certificate.
  const bool pem = in.certificate_pem.has_value();
  const char* field = pem ? "certificate_pem" : "certificate_der";
  if (!pem && !in.certificate_der) {
    return Invalid("certificate", "one of certificate_pem or certificate_der is required");
  }
  auto cert = pem ? pki::CertificateFromPem(*in.certificate_pem)
                  : pki::CertificateFromDer(*in.certificate_der);
  if (!cert.ok()) return Invalid(field, "not an X.509 certificate");
  auto info = pki::InspectCertificate(cert->get());
  if (!info.ok()) return Invalid(field, info.status().message());
  if (info->is_ca) return Invalid(field, "a CA certificate, not a device certificate");
  std::vector<pki::X509Ptr> chain;
  if (!in.chain_pem.empty()) {
    auto parsed = pki::CertificatesFromPem(in.chain_pem);
    if (!parsed.ok()) return Invalid("chain_pem", "not a PEM bundle of certificates");
    chain = *std::move(parsed);
  }
  std::vector<const X509*> intermediates;
  for (const pki::X509Ptr& c : chain) intermediates.push_back(c.get());
  // Verified at a time inside its validity, so that an expired certificate is told apart.
  const absl::Time now = absl::Now();
  const absl::Time at = now >= info->not_after ? info->not_after - absl::Seconds(1)
                        : now < info->not_before ? info->not_before
                                                 : now;
  // 2. Not one of fleetca's own.
  ASSIGN_OR_RETURN(std::vector<storage::Issuer> own, ca_.ListIssuers());
  for (const storage::Issuer& i : own) {
    if (i.certificate_der.empty()) continue;
    auto anchor = pki::CertificateFromDer(i.certificate_der);
    if (!anchor.ok()) continue;
    if (pki::VerifyChain(cert->get(), intermediates, {anchor->get()}, at, true).ok()) {
      return Invalid(field, absl::StrCat("issued by fleetca's issuer \"", i.id,
                                         "\": only certificates of external CAs are registered"));
    }
  }
  // 3. Its external CA: the chain verifies to one.
  ASSIGN_OR_RETURN(std::vector<storage::ExternalCa> cas, storage::AllExternalCas(store_));
  const storage::ExternalCa* signer = nullptr;
  std::string why = "no external CA is registered";
  for (const storage::ExternalCa& ca : cas) {
    auto anchor = pki::CertificateFromDer(ca.certificate_der);
    if (!anchor.ok()) continue;
    absl::Status verified = pki::VerifyChain(cert->get(), intermediates, {anchor->get()}, at, true);
    if (verified.ok()) {
      signer = &ca;
      break;
    }
    why = std::string(verified.message());
  }
  pki::ClearOpenSslErrors();
  if (signer == nullptr) {
    return Invalid(field, absl::StrCat("does not chain to a registered external CA",
                                       in.chain_pem.empty() ? " (give its intermediates in chain_pem)" : "",
                                       ": ", why));
  }
  if (!signer->enabled) {
    return absl::FailedPreconditionError(absl::StrCat(
        field, ": it chains to external CA \"", signer->id, "\", which is disabled"));
  }
  // 4. Valid now, for TLS clients, named after the device.
  if (now >= info->not_after) {
    return Invalid(field, absl::StrCat("expired at ", absl::FormatTime(info->not_after)));
  }
  if (now < info->not_before) {
    return Invalid(field, absl::StrCat("not valid before ", absl::FormatTime(info->not_before)));
  }
  const uint32_t flags = X509_get_extension_flags(cert->get());
  if ((flags & EXFLAG_XKUSAGE) != 0 &&
      (X509_get_extended_key_usage(cert->get()) & XKU_SSL_CLIENT) == 0) {
    return Invalid(field, "its extendedKeyUsage does not include clientAuth");
  }
  const std::vector<std::string> cns = CommonNames(cert->get());
  if (cns.size() != 1) {
    return Invalid(field, absl::StrCat("must have exactly one Common Name, has ", cns.size()));
  }
  if (cns[0] != in.comm_id) {
    return Invalid(field, absl::StrCat("its Common Name ", registry::Quote(cns[0]),
                                       " is not the comm_id ", registry::Quote(in.comm_id)));
  }
  // 5. Stored (the device's state is checked there, under lock).
  storage::CertificateRecord r;
  r.serial = info->serial;
  r.issuer_id = signer->id;
  r.kind = storage::CertificateKind::kExternalDevice;
  r.comm_id = in.comm_id;
  r.subject = info->subject;
  r.key_algorithm = KeyAlgorithmOfCertificate(cert->get());
  r.status = storage::CertificateStatus::kIssued;
  r.not_before = info->not_before;
  r.not_after = info->not_after;
  ASSIGN_OR_RETURN(r.der, pki::CertificateToDer(cert->get()));
  r.fingerprint = pki::Sha256(r.der);
  r.requester = ctx.actor;
  return store_.RegisterCertificate(r, ctx);
}

absl::StatusOr<CrlImport> ExternalCas::ImportCrl(const std::string& id, const CrlInput& in,
                                                 const RequestContext& ctx) {
  RETURN_IF_ERROR(ValidateId("external_ca_id", id));
  const bool pem = in.crl_pem.has_value();
  const char* field = pem ? "crl_pem" : "crl_der";
  if (!pem && !in.crl_der) return Invalid("crl", "one of crl_pem or crl_der is required");
  std::string der;
  if (pem) {
    auto parsed = pki::CrlPemToDer(*in.crl_pem);
    if (!parsed.ok()) return Invalid(field, parsed.status().message());
    der = *std::move(parsed);
  } else {
    der = *in.crl_der;
  }
  ASSIGN_OR_RETURN(storage::ExternalCa ca, store_.Get(id));
  ASSIGN_OR_RETURN(pki::X509Ptr issuer, pki::CertificateFromDer(ca.certificate_der));
  auto read = pki::ReadCrl(der, issuer.get());
  if (!read.ok()) return Invalid(field, read.status().message());
  if (read->next_update <= absl::Now()) {
    return Invalid(field, absl::StrCat("its nextUpdate (", absl::FormatTime(read->next_update),
                                       ") has passed: import a current CRL"));
  }
  CrlImport out;
  out.crl.der = std::move(der);
  out.crl.crl_number = read->crl_number;
  out.crl.this_update = read->this_update;
  out.crl.next_update = read->next_update;
  for (const pki::ReadCrlEntry& e : read->entries) {
    out.crl.entries.push_back({e.serial, e.reason, e.revocation_time});
  }
  ASSIGN_OR_RETURN(out.outcome, store_.ImportCrl(id, out.crl, ctx));
  return out;
}

}  // namespace fleetca::ca
