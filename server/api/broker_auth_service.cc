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
  const absl::Time now = absl::Now();
  auto answer = index_.AuthorizeConnect(ref, request->client_id(), now);
  if (!answer.ok()) return ToGrpcStatus(answer.status());
  if (answer->verdict == policy::ConnectVerdict::kCertificateUnknown && presented != nullptr) {
    // Not in the inventory: does it chain to an issuer of client certificates at all?
    answer->verdict = ChainVerdict(presented.get(), now);
    answer->message = answer->verdict == policy::ConnectVerdict::kCertificateUnknown
                          ? "the certificate chains to this CA but is not in its inventory"
                      : answer->verdict == policy::ConnectVerdict::kCertificateExpired
                          ? "the certificate has expired"
                          : "the certificate does not chain to an issuer of client certificates";
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

policy::ConnectVerdict BrokerAuthService::ChainVerdict(const X509* leaf, absl::Time now) const {
  std::vector<pki::X509Ptr> held;
  std::vector<const X509*> anchors;
  for (const std::string& der : index_.ClientIssuerDers()) {
    auto cert = pki::CertificateFromDer(der);
    if (!cert.ok()) continue;
    anchors.push_back(cert->get());
    held.push_back(*std::move(cert));
  }
  auto info = pki::InspectCertificate(leaf);
  if (!info.ok() || anchors.empty()) return policy::ConnectVerdict::kUntrustedIssuer;
  // Verified at a time inside its validity: an expired certificate of ours is EXPIRED.
  const bool expired = now >= info->not_after;
  const absl::Time at = expired ? info->not_after - absl::Seconds(1) : now;
  if (!pki::VerifyChain(leaf, {}, anchors, at).ok()) return policy::ConnectVerdict::kUntrustedIssuer;
  return expired ? policy::ConnectVerdict::kCertificateExpired
                 : policy::ConnectVerdict::kCertificateUnknown;
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
