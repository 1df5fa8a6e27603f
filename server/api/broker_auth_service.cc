#include "server/api/broker_auth_service.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "acl/topic.h"
#include "pki/certificate_builder.h"
#include "pki/openssl_util.h"
#include "server/api/proto_convert.h"
#include "server/api/status.h"
#include "server/api/acl_service.h"

namespace fleetca::api {
namespace {

// How long a broker in query mode may cache a CheckTopic answer: a policy change reaches
// it at most this late (plus the index's own refresh, well under a second).
constexpr int kTopicCacheSeconds = 2;
// ... and an AuthorizeConnect answer (a revocation reaches a caching broker this late).
constexpr int kConnectCacheSeconds = 2;

v1::TopicDenyReason ToProto(policy::TopicVerdict v) {
  switch (v) {
    case policy::TopicVerdict::kAllowed:
      return v1::TOPIC_DENY_REASON_UNSPECIFIED;
    case policy::TopicVerdict::kNoMatchingRule:
      return v1::TOPIC_DENY_REASON_NO_MATCHING_RULE;
    case policy::TopicVerdict::kDenyRule:
      return v1::TOPIC_DENY_REASON_DENY_RULE;
    case policy::TopicVerdict::kPrincipalUnknown:
      return v1::TOPIC_DENY_REASON_PRINCIPAL_UNKNOWN;
    case policy::TopicVerdict::kPrincipalInactive:
      return v1::TOPIC_DENY_REASON_PRINCIPAL_INACTIVE;
  }
  return v1::TOPIC_DENY_REASON_NO_MATCHING_RULE;
}

v1::ConnectDenyReason ToProto(policy::ConnectVerdict v) {
  switch (v) {
    case policy::ConnectVerdict::kAllowed:
      return v1::CONNECT_DENY_REASON_UNSPECIFIED;
    case policy::ConnectVerdict::kCertificateUnknown:
      return v1::CONNECT_DENY_REASON_CERTIFICATE_UNKNOWN;
    case policy::ConnectVerdict::kUntrustedIssuer:
      return v1::CONNECT_DENY_REASON_UNTRUSTED_ISSUER;
    case policy::ConnectVerdict::kCertificateExpired:
      return v1::CONNECT_DENY_REASON_CERTIFICATE_EXPIRED;
    case policy::ConnectVerdict::kCertificateRevoked:
      return v1::CONNECT_DENY_REASON_CERTIFICATE_REVOKED;
    case policy::ConnectVerdict::kCertificateOnHold:
      return v1::CONNECT_DENY_REASON_CERTIFICATE_ON_HOLD;
    case policy::ConnectVerdict::kClientIdMismatch:
      return v1::CONNECT_DENY_REASON_CLIENT_ID_MISMATCH;
    case policy::ConnectVerdict::kPrincipalUnknown:
      return v1::CONNECT_DENY_REASON_PRINCIPAL_UNKNOWN;
    case policy::ConnectVerdict::kPrincipalInactive:
      return v1::CONNECT_DENY_REASON_PRINCIPAL_INACTIVE;
    case policy::ConnectVerdict::kIssuerDisabled:
      return v1::CONNECT_DENY_REASON_ISSUER_DISABLED;
  }
  return v1::CONNECT_DENY_REASON_CERTIFICATE_UNKNOWN;
}

}  // namespace

grpc::Status BrokerAuthService::AuthorizeConnect(grpc::ServerContext*,
                                                 const v1::AuthorizeConnectRequest* request,
                                                 v1::AuthorizeConnectResponse* response) {
  policy::CertificateRef ref;
  pki::X509Ptr presented;  // the certificate itself, when the broker sent it
  switch (request->client_certificate_case()) {
    case v1::AuthorizeConnectRequest::kCertificatePem:
    case v1::AuthorizeConnectRequest::kCertificateDer: {
      const bool pem =
          request->client_certificate_case() == v1::AuthorizeConnectRequest::kCertificatePem;
      auto cert = pem ? pki::CertificateFromPem(request->certificate_pem())
                      : pki::CertificateFromDer(request->certificate_der());
      if (!cert.ok()) {
        return Invalid(absl::StrCat(pem ? "certificate_pem" : "certificate_der",
                                    ": not an X.509 certificate"));
      }
      auto der = pki::CertificateToDer(cert->get());
      if (!der.ok()) return ToGrpcStatus(der.status());
      ref.fingerprint = pki::Sha256(*der);
      presented = *std::move(cert);
      break;
    }
    case v1::AuthorizeConnectRequest::kSha256Fingerprint: {
      auto fp = FingerprintField("sha256_fingerprint", request->sha256_fingerprint());
      if (!fp.ok()) return ToGrpcStatus(fp.status());
      ref.fingerprint = *fp;
      break;
    }
    case v1::AuthorizeConnectRequest::kSerial: {
      auto serial = SerialField("serial", request->serial());
      if (!serial.ok()) return ToGrpcStatus(serial.status());
      ref.serial = *serial;
      ref.issuer_id = request->issuer_id();
      break;
    }
    default:
      return Invalid(
          "client_certificate: one of certificate_pem, certificate_der, sha256_fingerprint or "
          "serial is required");
  }
  if (request->client_id().empty()) return Invalid("client_id: is required");
  std::vector<pki::X509Ptr> chain;
  if (!request->chain_pem().empty()) {
    if (presented == nullptr) {
      return Invalid("chain_pem: only with certificate_pem or certificate_der");
    }
    auto parsed = pki::CertificatesFromPem(request->chain_pem());
    if (!parsed.ok()) return Invalid("chain_pem: not a PEM bundle of certificates");
    chain = *std::move(parsed);
  }
  const absl::Time now = absl::Now();
  auto answer = index_.AuthorizeConnect(ref, request->client_id(), now);
  if (!answer.ok()) return ToGrpcStatus(answer.status());
  if (answer->verdict == policy::ConnectVerdict::kCertificateUnknown && presented != nullptr) {
    std::vector<const X509*> intermediates;
    for (const pki::X509Ptr& c : chain) intermediates.push_back(c.get());
    answer = UnknownCertificate(presented.get(), intermediates, request->client_id(), now,
                                *std::move(answer));
    if (!answer.ok()) return ToGrpcStatus(answer.status());
  }
  const bool allowed = answer->verdict == policy::ConnectVerdict::kAllowed;
  response->set_allowed(allowed);
  response->set_deny_reason(ToProto(answer->verdict));
  response->set_message(answer->message);
  if (answer->principal_type) {
    response->mutable_principal()->set_type(*answer->principal_type == policy::PrincipalType::kDevice
                                                ? v1::PRINCIPAL_TYPE_DEVICE
                                                : v1::PRINCIPAL_TYPE_IDENTITY);
    response->mutable_principal()->set_id(answer->principal_id);
  }
  if (allowed) {
    response->set_username(answer->principal_id);
    for (const policy::EffectiveRule& r : answer->rules) ToProto(r, response->add_rules());
  }
  if (!answer->serial.empty()) response->set_certificate_serial(pki::SerialToHex(answer->serial));
  response->set_issuer_id(answer->issuer_id);
  response->mutable_cache_ttl()->set_seconds(kConnectCacheSeconds);
  response->set_revision(answer->revision);
  return grpc::Status::OK;
}

absl::StatusOr<policy::ConnectAnswer> BrokerAuthService::UnknownCertificate(
    const X509* leaf, const std::vector<const X509*>& intermediates,
    const std::string& client_id, absl::Time now, policy::ConnectAnswer answer) const {
  auto info = pki::InspectCertificate(leaf);
  answer.verdict = policy::ConnectVerdict::kUntrustedIssuer;
  answer.message = "the certificate does not chain to an issuer of client certificates";
  if (!info.ok()) return answer;
  // Verified at a time inside its validity: an expired certificate of ours is EXPIRED.
  const bool expired = now >= info->not_after;
  const absl::Time at = expired ? info->not_after - absl::Seconds(1) : now;
  for (const policy::ClientIssuer& issuer : index_.ClientIssuers()) {
    auto anchor = pki::CertificateFromDer(issuer.der);
    if (!anchor.ok()) continue;
    if (!pki::VerifyChain(leaf, intermediates, {anchor->get()}, at,
                          /*anchors_may_be_intermediates=*/true).ok()) continue;
    pki::ClearOpenSslErrors();
    if (issuer.external) {
      return index_.AuthorizeUnregistered(issuer.id, info->serial, info->common_name,
                                          info->not_after, client_id, now);
    }
    answer.issuer_id = issuer.id;
    answer.serial = info->serial;
    answer.verdict = expired ? policy::ConnectVerdict::kCertificateExpired
                             : policy::ConnectVerdict::kCertificateUnknown;
    answer.message = expired ? "the certificate has expired"
                             : "the certificate chains to this CA but is not in its inventory";
    return answer;
  }
  pki::ClearOpenSslErrors();
  return answer;
}

grpc::Status BrokerAuthService::CheckTopic(grpc::ServerContext*,
                                           const v1::CheckTopicRequest* request,
                                           v1::CheckTopicResponse* response) {
  if (!request->has_principal()) return Invalid("principal: is required");
  const v1::Principal& principal = request->principal();
  auto type = PrincipalFromProto(principal);
  if (!type.ok()) return ToGrpcStatus(type.status());
  acl::Operation op;
  absl::Status topic_ok;
  switch (request->operation()) {
    case v1::TOPIC_OPERATION_PUBLISH:
      op = acl::Operation::kPublish;
      topic_ok = acl::ValidateTopicName(request->topic());
      break;
    case v1::TOPIC_OPERATION_RECEIVE:
      op = acl::Operation::kReceive;
      topic_ok = acl::ValidateTopicName(request->topic());
      break;
    case v1::TOPIC_OPERATION_SUBSCRIBE:
      op = acl::Operation::kSubscribe;
      topic_ok = acl::ValidateTopicFilter(request->topic());
      break;
    default:
      return Invalid(request->operation() == v1::TOPIC_OPERATION_UNSPECIFIED
                         ? std::string("operation: is required")
                         : absl::StrCat("operation: unknown value ",
                                        static_cast<int>(request->operation())));
  }
  if (!topic_ok.ok()) return Invalid(absl::StrCat("topic: ", topic_ok.message()));
  auto answer = index_.CheckTopic(*type, principal.id(), op, request->topic());
  if (!answer.ok()) return ToGrpcStatus(answer.status());
  response->set_allowed(answer->verdict == policy::TopicVerdict::kAllowed);
  response->set_deny_reason(ToProto(answer->verdict));
  if (answer->matched) ToProto(*answer->matched, response->mutable_matched_rule());
  response->mutable_cache_ttl()->set_seconds(kTopicCacheSeconds);
  response->set_revision(answer->revision);
  return grpc::Status::OK;
}

}  // namespace fleetca::api
