#include "server/auth/authenticator.h"

#include <openssl/x509v3.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "pki/certificate_builder.h"

namespace fleetca::auth {
namespace {

constexpr size_t kMaxCached = 100000;
constexpr absl::string_view kRoleUriPrefix = "fleetca://role/";

absl::Status Unauthenticated(absl::string_view why) {
  return absl::UnauthenticatedError(why);
}

bool SameAnchors(const std::vector<TrustAnchor>& a, const std::vector<TrustAnchor>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].issuer_id != b[i].issuer_id || a[i].kind != b[i].kind ||
        X509_cmp(a[i].certificate.get(), b[i].certificate.get()) != 0) {
      return false;
    }
  }
  return true;
}

}  // namespace

void Authenticator::SetAnchors(std::vector<TrustAnchor> anchors) {
  absl::MutexLock lock(&mu_);
  // The server re-reads the CAs every second: unchanged, the cache stays.
  if (anchors_ != nullptr && SameAnchors(*anchors_, anchors)) return;
  anchors_ = std::make_shared<const std::vector<TrustAnchor>>(std::move(anchors));
  verified_.clear();
}

void Authenticator::AddRevoked(const RevokedSet& revoked) {
  absl::MutexLock lock(&mu_);
  revoked_.identities.insert(revoked.identities.begin(), revoked.identities.end());
  revoked_.serials.insert(revoked.serials.begin(), revoked.serials.end());
}

void Authenticator::MarkRevoked(const std::string& identity,
                                const std::vector<std::string>& serials_hex) {
  absl::MutexLock lock(&mu_);
  if (!identity.empty()) revoked_.identities.insert(identity);
  revoked_.serials.insert(serials_hex.begin(), serials_hex.end());
}

absl::StatusOr<Principal> Authenticator::Authenticate(const std::string& certificate_pem,
                                                      absl::Time now) {
  Principal principal;
  {
    absl::MutexLock lock(&mu_);
    auto it = verified_.find(certificate_pem);
    if (it != verified_.end()) principal = it->second;
  }
  if (principal.serial_hex.empty()) {
    std::shared_ptr<const std::vector<TrustAnchor>> anchors;
    {
      absl::MutexLock lock(&mu_);
      anchors = anchors_;
    }
    auto verified = Verify(certificate_pem, now, anchors.get());
    if (!verified.ok()) return verified.status();
    principal = *std::move(verified);
    absl::MutexLock lock(&mu_);
    // Cached only if the CAs it was verified against are still the trusted ones.
    if (anchors_ == anchors) {
      if (verified_.size() >= kMaxCached) verified_.clear();
      verified_.emplace(certificate_pem, principal);
    }
  }
  if (now >= principal.not_after) {  // as OpenSSL's chain check (X509_cmp_time) decides
    return Unauthenticated(absl::StrCat("client certificate ", principal.serial_hex,
                                        " expired at ", absl::FormatTime(principal.not_after)));
  }
  absl::MutexLock lock(&mu_);
  if (principal.role != Role::kDevice && revoked_.identities.contains(principal.name)) {
    return Unauthenticated(absl::StrCat("identity ", principal.name, " is revoked"));
  }
  if (revoked_.serials.contains(principal.serial_hex)) {
    return Unauthenticated(
        absl::StrCat("client certificate ", principal.serial_hex, " is revoked"));
  }
  return principal;
}

absl::StatusOr<Principal> Authenticator::Verify(const std::string& certificate_pem,
                                                absl::Time now,
                                                const std::vector<TrustAnchor>* anchors) {
  if (anchors == nullptr || anchors->empty()) {
    return absl::UnavailableError("the server has no CA to verify client certificates yet");
  }
  auto leaf = pki::CertificateFromPem(certificate_pem);
  if (!leaf.ok()) return Unauthenticated("client certificate does not parse");
  std::vector<const X509*> roots, intermediates;
  for (const TrustAnchor& a : *anchors) {
    (a.kind == TrustAnchor::Kind::kRoot ? roots : intermediates).push_back(a.certificate.get());
  }
  if (absl::Status st = pki::VerifyChain(leaf->get(), intermediates, roots, now); !st.ok()) {
    return Unauthenticated(absl::StrCat(
        "client certificate not accepted: ", st.message(),
        " (use a certificate from this fleetca's operators CA, or a device certificate)"));
  }
  // The CA that signed it: only operators and devices CAs sign callers.
  const TrustAnchor* signer = nullptr;
  for (const TrustAnchor& a : *anchors) {
    if (a.kind != TrustAnchor::Kind::kRoot &&
        X509_check_issued(a.certificate.get(), leaf->get()) == X509_V_OK) {
      signer = &a;
      break;
    }
  }
  pki::ClearOpenSslErrors();
  if (signer == nullptr || (signer->kind != TrustAnchor::Kind::kOperators &&
                            signer->kind != TrustAnchor::Kind::kDevices)) {
    return Unauthenticated(
        "client certificate not accepted: not issued by an operators or devices CA");
  }
  if (X509_check_purpose(leaf->get(), X509_PURPOSE_SSL_CLIENT, 0) != 1) {
    pki::ClearOpenSslErrors();
    return Unauthenticated("client certificate not accepted: it does not allow clientAuth");
  }
  auto info = pki::InspectCertificate(leaf->get());
  if (!info.ok()) return Unauthenticated("client certificate does not parse");
  Principal p;
  p.serial_hex = pki::SerialToHex(info->serial);
  p.issuer_id = signer->issuer_id;
  p.not_after = info->not_after;
  if (signer->kind == TrustAnchor::Kind::kDevices) {
    if (info->common_name.empty()) {
      return Unauthenticated("device certificate has no common name");
    }
    p.role = Role::kDevice;
    p.name = info->common_name;
    return p;
  }
  std::vector<std::string> roles;
  for (const std::string& uri : info->uris) {
    if (absl::StartsWith(uri, kRoleUriPrefix)) roles.push_back(uri);
  }
  if (roles.size() != 1) {
    return Unauthenticated(absl::StrCat("client certificate ", p.serial_hex, " must carry one URI ",
                                        kRoleUriPrefix, "<role>/<name>; it has ", roles.size()));
  }
  std::vector<std::string> parts =
      absl::StrSplit(absl::string_view(roles[0]).substr(kRoleUriPrefix.size()), '/');
  auto role = parts.size() == 2 ? RoleFromName(parts[0]) : std::nullopt;
  if (!role.has_value() || *role == Role::kDevice) {
    return Unauthenticated(absl::StrCat("client certificate role URI ", roles[0], " is not valid"));
  }
  if (parts[1].empty()) {
    return Unauthenticated(absl::StrCat("client certificate role URI ", roles[0], " has no name"));
  }
  if (parts[1] != info->common_name) {
    return Unauthenticated(absl::StrCat("client certificate role URI ", roles[0],
                                        " does not name its common name ", info->common_name));
  }
  p.role = *role;
  p.name = parts[1];
  return p;
}

}  // namespace fleetca::auth
