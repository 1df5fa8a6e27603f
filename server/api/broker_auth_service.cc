#include "server/api/broker_auth_service.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "acl/topic.h"
#include "server/api/status.h"
#include "server/api/acl_service.h"

namespace fleetca::api {
namespace {

// How long a broker in query mode may cache a CheckTopic answer: a policy change reaches
// it at most this late (plus the index's own refresh, well under a second).
constexpr int kTopicCacheSeconds = 2;

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

}  // namespace

grpc::Status BrokerAuthService::AuthorizeConnect(grpc::ServerContext*,
                                                 const v1::AuthorizeConnectRequest*,
                                                 v1::AuthorizeConnectResponse*) {
  return grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "AuthorizeConnect is not built yet");
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
