#include "plugin/query.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "pki/openssl_util.h"

namespace fleetca::plugin {
namespace {

Verdict VerdictOf(v1::ConnectDenyReason reason) {
  switch (reason) {
    case v1::CONNECT_DENY_REASON_UNTRUSTED_ISSUER:
    case v1::CONNECT_DENY_REASON_ISSUER_DISABLED:
      return Verdict::kUntrustedIssuer;
    case v1::CONNECT_DENY_REASON_CERTIFICATE_EXPIRED:
      return Verdict::kCertificateExpired;
    case v1::CONNECT_DENY_REASON_CERTIFICATE_REVOKED:
      return Verdict::kCertificateRevoked;
    case v1::CONNECT_DENY_REASON_CERTIFICATE_ON_HOLD:
      return Verdict::kCertificateOnHold;
    case v1::CONNECT_DENY_REASON_CLIENT_ID_MISMATCH:
      return Verdict::kClientIdMismatch;
    case v1::CONNECT_DENY_REASON_PRINCIPAL_UNKNOWN:
      return Verdict::kPrincipalUnknown;
    case v1::CONNECT_DENY_REASON_PRINCIPAL_INACTIVE:
      return Verdict::kPrincipalInactive;
    default:
      return Verdict::kCertificateUnknown;
  }
}

}  // namespace

Decision DecisionFromResponse(const v1::AuthorizeConnectResponse& response) {
  Decision d;
  d.message = response.message();
  d.principal_type = response.principal().type();
  d.principal_id = response.principal().id();
  if (!response.allowed()) {
    d.verdict = VerdictOf(response.deny_reason());
    return d;
  }
  d.verdict = Verdict::kAllowed;
  for (const v1::ResolvedAclRule& rule : response.rules()) {
    const int access = rule.access();
    if (access < static_cast<int>(acl::Access::kRead) ||
        access > static_cast<int>(acl::Access::kDeny)) {
      continue;  // an access this build does not know grants nothing
    }
    d.rules.push_back({rule.topic_filter(), static_cast<acl::Access>(access)});
  }
  std::sort(d.rules.begin(), d.rules.end(), acl::RuleOrder);
  return d;
}

Decision QueryPolicy::OnConnect(const void* client, const std::string& client_id, X509* cert) {
  clients_.erase(client);
  Decision decision;
  absl::StatusOr<std::string> der =
      cert != nullptr ? pki::CertificateToDer(cert) : absl::InvalidArgumentError("none");
  if (!der.ok()) {
    decision.verdict = Verdict::kNoCertificate;
    decision.message = "the client sent no certificate";
    return decision;
  }
  std::string key = pki::Sha256(*der);
  key.push_back('\0');
  key += client_id;

  const absl::Time now = clock_();
  auto cached = cache_.find(key);
  if (cached != cache_.end() && cached->second.expires > now) {
    decision = cached->second.decision;
  } else {
    v1::AuthorizeConnectRequest request;
    request.set_certificate_der(*std::move(der));
    request.set_client_id(client_id);
    v1::AuthorizeConnectResponse response;
    ++calls_;
    const grpc::Status status = call_(request, &response, now + options_.timeout);
    if (!status.ok()) {
      decision.verdict = Verdict::kUnavailable;
      decision.message = absl::StrCat("AuthorizeConnect failed: ", status.error_message(), " (",
                                      static_cast<int>(status.error_code()), ")");
      return decision;
    }
    decision = DecisionFromResponse(response);
    absl::Duration ttl = options_.max_cache_ttl;
    if (response.has_cache_ttl()) {
      ttl = std::min(ttl, absl::Seconds(response.cache_ttl().seconds()) +
                              absl::Nanoseconds(response.cache_ttl().nanos()));
    }
    if (ttl > absl::ZeroDuration()) {
      if (cache_.size() >= options_.max_cached) cache_.clear();
      cache_[key] = Cached{decision, now + ttl};
    }
  }
  if (decision.allowed()) clients_[client] = Client{client_id, decision.rules};
  return decision;
}

bool QueryPolicy::Allowed(const void* client, absl::string_view client_id, acl::Operation op,
                          absl::string_view topic) {
  auto it = clients_.find(client);
  if (it == clients_.end() || it->second.client_id != client_id) return false;
  return acl::Evaluate(it->second.rules, op, topic).allowed;
}

}  // namespace fleetca::plugin
