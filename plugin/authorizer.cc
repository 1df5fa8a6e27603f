#include "plugin/authorizer.h"

#include <openssl/x509v3.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "pki/certificate_builder.h"
#include "pki/openssl_util.h"

namespace fleetca::plugin {
namespace {

Decision Refuse(Verdict verdict, std::string message) {
  Decision d;
  d.verdict = verdict;
  d.message = std::move(message);
  return d;
}

bool Contains(const std::vector<acl::ResolvedRule>& rules, const acl::ResolvedRule& rule) {
  return std::binary_search(rules.begin(), rules.end(), rule, acl::RuleOrder);
}

bool IssuesClientCertificates(const Issuer& issuer) {
  return issuer.purpose == v1::ISSUER_PURPOSE_DEVICES ||
         issuer.purpose == v1::ISSUER_PURPOSE_OPERATORS;
}

}  // namespace

bool ReadClientCertificate(const Policy& policy, X509* cert, ClientCertificate* out,
                           Decision* refusal) {
  if (cert == nullptr) {
    *refusal = Refuse(Verdict::kNoCertificate, "the client sent no certificate");
    return false;
  }
  absl::StatusOr<pki::CertificateInfo> info = pki::InspectCertificate(cert);
  absl::StatusOr<std::string> der = pki::CertificateToDer(cert);
  if (!info.ok() || !der.ok()) {
    pki::ClearOpenSslErrors();
    *refusal = Refuse(Verdict::kCertificateUnknown, "the certificate cannot be read");
    return false;
  }
  const std::string digest = pki::Sha256(*der);
  std::memcpy(out->fingerprint.data(), digest.data(), std::min<size_t>(digest.size(), 32));
  out->serial = pki::SerialToHex(info->serial);
  out->common_name = info->common_name;
  out->not_after = absl::ToUnixSeconds(info->not_after);

  // The issuer: a client CA of the policy whose name (and key identifier) the certificate
  // names. A certificate in the inventory with this very fingerprint is one fleetca
  // issued: no signature check needed (mosquitto's TLS layer checked the chain too). Any
  // other is checked against the candidate's key, so that a CA merely sharing the name
  // (a foreign CA in the broker's cafile) gets nobody in.
  const Issuer* signer = nullptr;
  for (const auto& issuer : policy.issuers()) {
    if (issuer->certificate == nullptr || !IssuesClientCertificates(*issuer)) continue;
    if (X509_check_issued(issuer->certificate.get(), cert) != X509_V_OK) continue;
    const Certificate* known = policy.FindCertificate(issuer->id, out->serial);
    if (known != nullptr && known->has_fingerprint && known->fingerprint == out->fingerprint) {
      signer = issuer.get();
      break;
    }
    EVP_PKEY* key = X509_get0_pubkey(issuer->certificate.get());
    if (key != nullptr && X509_verify(cert, key) == 1) {
      signer = issuer.get();
      break;
    }
  }
  pki::ClearOpenSslErrors();
  if (signer == nullptr) {
    *refusal = Refuse(Verdict::kUntrustedIssuer,
                      "the certificate was not signed by a devices, operators or external CA "
                      "fleetca trusts");
    return false;
  }
  out->issuer_id = signer->id;
  return true;
}

Decision Decide(const Policy& policy, const ClientCertificate& cert, absl::string_view client_id,
                absl::Time now) {
  // 1. The issuer: still sent, still enabled.
  const Issuer* issuer = policy.FindIssuer(cert.issuer_id);
  if (issuer == nullptr || !IssuesClientCertificates(*issuer)) {
    return Refuse(Verdict::kUntrustedIssuer,
                  absl::StrCat("issuer ", cert.issuer_id, " is no longer trusted for clients"));
  }
  if (!issuer->enabled) {
    return Refuse(Verdict::kUntrustedIssuer, absl::StrCat("CA ", cert.issuer_id, " is disabled"));
  }
  if (cert.not_after <= absl::ToUnixSeconds(now)) {
    return Refuse(Verdict::kCertificateExpired,
                  absl::StrCat("certificate ", cert.serial, " has expired"));
  }
  // 2. The certificate: in the inventory and ACTIVE (or accepted by its external CA).
  const v1::PrincipalType expected = issuer->purpose == v1::ISSUER_PURPOSE_OPERATORS
                                         ? v1::PRINCIPAL_TYPE_IDENTITY
                                         : v1::PRINCIPAL_TYPE_DEVICE;
  std::string principal_id = cert.common_name;
  const Certificate* known = policy.FindCertificate(cert.issuer_id, cert.serial);
  if (known != nullptr) {
    if (known->has_fingerprint && known->fingerprint != cert.fingerprint) {
      return Refuse(Verdict::kCertificateMismatch,
                    absl::StrCat("serial ", cert.serial, " of issuer ", cert.issuer_id,
                                 " belongs to another certificate"));
    }
    if (known->status == v1::CERTIFICATE_STATUS_REVOKED) {
      return Refuse(Verdict::kCertificateRevoked,
                    absl::StrCat("certificate ", cert.serial, " is revoked (",
                                 v1::RevocationReason_Name(known->revocation_reason), ")"));
    }
    if (known->status == v1::CERTIFICATE_STATUS_ON_HOLD) {
      return Refuse(Verdict::kCertificateOnHold,
                    absl::StrCat("certificate ", cert.serial, " is on hold"));
    }
    if (known->status != v1::CERTIFICATE_STATUS_ACTIVE) {
      return Refuse(Verdict::kCertificateUnknown,
                    absl::StrCat("certificate ", cert.serial, " is not ACTIVE"));
    }
    if (known->principal_type != v1::PRINCIPAL_TYPE_UNSPECIFIED) {
      if (known->principal_type != expected || known->principal_id != cert.common_name) {
        return Refuse(Verdict::kCertificateMismatch,
                      absl::StrCat("certificate ", cert.serial,
                                   " belongs to another principal than its CN names"));
      }
    } else if (!(issuer->external && issuer->accept_unregistered)) {
      return Refuse(Verdict::kCertificateUnknown,
                    absl::StrCat("certificate ", cert.serial, " is not in fleetca's inventory"));
    }
  } else if (!(issuer->external && issuer->accept_unregistered)) {
    return Refuse(Verdict::kCertificateUnknown,
                  absl::StrCat("certificate ", cert.serial, " of issuer ", cert.issuer_id,
                               " is not in fleetca's inventory"));
  }
  // 3. CN = MQTT client id.
  if (cert.common_name != client_id) {
    return Refuse(Verdict::kClientIdMismatch,
                  absl::StrCat("client id \"", client_id, "\" differs from the certificate CN \"",
                               cert.common_name, "\""));
  }
  // 4. The principal: registered and ACTIVE.
  Decision d;
  d.principal_type = expected;
  d.principal_id = principal_id;
  if (expected == v1::PRINCIPAL_TYPE_DEVICE) {
    const Device* device = policy.FindDevice(principal_id);
    if (device == nullptr) {
      d.verdict = Verdict::kPrincipalUnknown;
      d.message = absl::StrCat("device ", principal_id, " is not registered");
      return d;
    }
    if (device->status != v1::DEVICE_STATUS_ACTIVE) {
      d.verdict = Verdict::kPrincipalInactive;
      d.message = absl::StrCat("device ", principal_id, " is ",
                               absl::StripPrefix(v1::DeviceStatus_Name(device->status),
                                                 "DEVICE_STATUS_"));
      return d;
    }
    d.rules = policy.ResolveRules(expected, principal_id, device);
  } else {
    const Identity* identity = policy.FindIdentity(principal_id);
    if (identity == nullptr) {
      d.verdict = Verdict::kPrincipalUnknown;
      d.message = absl::StrCat("identity ", principal_id, " does not exist");
      return d;
    }
    if (identity->status != v1::IDENTITY_STATUS_ACTIVE) {
      d.verdict = Verdict::kPrincipalInactive;
      d.message = absl::StrCat("identity ", principal_id, " is ",
                               absl::StripPrefix(v1::IdentityStatus_Name(identity->status),
                                                 "IDENTITY_STATUS_"));
      return d;
    }
    d.rules = policy.ResolveRules(expected, principal_id, nullptr);
  }
  d.verdict = Verdict::kAllowed;
  return d;
}

bool LosesRights(const std::vector<acl::ResolvedRule>& before,
                 const std::vector<acl::ResolvedRule>& after) {
  for (const acl::ResolvedRule& rule : before) {
    if (!Contains(after, rule)) return true;
  }
  for (const acl::ResolvedRule& rule : after) {
    if (rule.access == acl::Access::kDeny && !Contains(before, rule)) return true;
  }
  return false;
}

absl::string_view VerdictName(Verdict verdict) {
  switch (verdict) {
    case Verdict::kAllowed: return "allowed";
    case Verdict::kNoCertificate: return "no_certificate";
    case Verdict::kUntrustedIssuer: return "untrusted_issuer";
    case Verdict::kCertificateUnknown: return "certificate_unknown";
    case Verdict::kCertificateMismatch: return "certificate_mismatch";
    case Verdict::kCertificateRevoked: return "certificate_revoked";
    case Verdict::kCertificateOnHold: return "certificate_on_hold";
    case Verdict::kCertificateExpired: return "certificate_expired";
    case Verdict::kClientIdMismatch: return "client_id_mismatch";
    case Verdict::kPrincipalUnknown: return "principal_unknown";
    case Verdict::kPrincipalInactive: return "principal_inactive";
    case Verdict::kNoPolicy: return "no_policy";
    case Verdict::kUnavailable: return "fleetca_unavailable";
  }
  return "unknown";
}

}  // namespace fleetca::plugin
