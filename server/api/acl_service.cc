#include "server/api/acl_service.h"

#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/api/call_context.h"
#include "server/api/proto_convert.h"
#include "server/api/status.h"
#include "common/status_macros.h"
#include "server/registry/registry.h"
#include "server/registry/validation.h"

namespace fleetca::api {
namespace {

using storage::AclRuleAccess;
using storage::AclSubject;

std::optional<AclRuleAccess> FromProto(v1::AclAccess a) {
  switch (a) {
    case v1::ACL_ACCESS_READ:
      return AclRuleAccess::kRead;
    case v1::ACL_ACCESS_WRITE:
      return AclRuleAccess::kWrite;
    case v1::ACL_ACCESS_READWRITE:
      return AclRuleAccess::kReadWrite;
    case v1::ACL_ACCESS_SUBSCRIBE:
      return AclRuleAccess::kSubscribe;
    case v1::ACL_ACCESS_DENY:
      return AclRuleAccess::kDeny;
    default:
      return std::nullopt;
  }
}


v1::AclAccess ToProto(acl::Access a) { return static_cast<v1::AclAccess>(static_cast<int>(a)); }

std::optional<AclSubject> FromProto(v1::AclSubjectType t) {
  switch (t) {
    case v1::ACL_SUBJECT_TYPE_DEVICE:
      return AclSubject::kDevice;
    case v1::ACL_SUBJECT_TYPE_GROUP:
      return AclSubject::kGroup;
    case v1::ACL_SUBJECT_TYPE_IDENTITY:
      return AclSubject::kIdentity;
    case v1::ACL_SUBJECT_TYPE_ALL_DEVICES:
      return AclSubject::kAllDevices;
    default:
      return std::nullopt;
  }
}

v1::AclSubjectType ToProto(AclSubject t) {
  switch (t) {
    case AclSubject::kDevice:
      return v1::ACL_SUBJECT_TYPE_DEVICE;
    case AclSubject::kGroup:
      return v1::ACL_SUBJECT_TYPE_GROUP;
    case AclSubject::kIdentity:
      return v1::ACL_SUBJECT_TYPE_IDENTITY;
    case AclSubject::kAllDevices:
      return v1::ACL_SUBJECT_TYPE_ALL_DEVICES;
  }
  return v1::ACL_SUBJECT_TYPE_UNSPECIFIED;
}

absl::StatusOr<storage::AclProfileRow> FromProto(const v1::AclProfile& in) {
  storage::AclProfileRow p;
  p.name = in.name();
  p.description = in.description();
  for (int i = 0; i < in.rules_size(); ++i) {
    const v1::AclRule& r = in.rules(i);
    std::optional<AclRuleAccess> access = FromProto(r.access());
    if (!access) {
      return absl::InvalidArgumentError(
          absl::StrCat("profile.rules[", i, "].access: ",
                       r.access() == v1::ACL_ACCESS_UNSPECIFIED
                           ? std::string("is required")
                           : absl::StrCat("unknown value ", static_cast<int>(r.access()))));
    }
    p.rules.push_back({r.topic_pattern(), *access});
  }
  return p;
}

void ToProto(const storage::AclProfileRow& p, v1::AclProfile* out) {
  out->set_name(p.name);
  out->set_description(p.description);
  for (const storage::AclRuleRow& r : p.rules) {
    v1::AclRule* rule = out->add_rules();
    rule->set_topic_pattern(r.pattern);
    rule->set_access(api::ToProto(r.access));
  }
  out->set_builtin(p.builtin);
  out->set_etag(registry::Etag(p.version));
  SetTimestamp(p.create_time, out->mutable_create_time());
  SetTimestamp(p.update_time, out->mutable_update_time());
}

absl::StatusOr<storage::AclAssignmentRow> FromProto(const v1::AclAssignment& in) {
  std::optional<AclSubject> type = FromProto(in.subject_type());
  if (!type) {
    return absl::InvalidArgumentError(
        in.subject_type() == v1::ACL_SUBJECT_TYPE_UNSPECIFIED
            ? std::string("assignment.subject_type: is required")
            : absl::StrCat("assignment.subject_type: unknown value ",
                           static_cast<int>(in.subject_type())));
  }
  return storage::AclAssignmentRow{*type, in.subject_id(), in.profile_name(), absl::Time()};
}


}  // namespace

void ToProto(const storage::AclAssignmentRow& a, v1::AclAssignment* out) {
  out->set_subject_type(ToProto(a.subject_type));
  out->set_subject_id(a.subject_id);
  out->set_profile_name(a.profile_name);
  SetTimestamp(a.create_time, out->mutable_create_time());
}

v1::AclAccess ToProto(AclRuleAccess a) {
  switch (a) {
    case AclRuleAccess::kRead:
      return v1::ACL_ACCESS_READ;
    case AclRuleAccess::kWrite:
      return v1::ACL_ACCESS_WRITE;
    case AclRuleAccess::kReadWrite:
      return v1::ACL_ACCESS_READWRITE;
    case AclRuleAccess::kSubscribe:
      return v1::ACL_ACCESS_SUBSCRIBE;
    case AclRuleAccess::kDeny:
      return v1::ACL_ACCESS_DENY;
  }
  return v1::ACL_ACCESS_UNSPECIFIED;
}

absl::StatusOr<policy::PrincipalType> PrincipalFromProto(const v1::Principal& principal) {
  switch (principal.type()) {
    case v1::PRINCIPAL_TYPE_DEVICE:
      RETURN_IF_ERROR(registry::ValidateCommId("principal.id", principal.id()));
      return policy::PrincipalType::kDevice;
    case v1::PRINCIPAL_TYPE_IDENTITY:
      // Identities are named like profiles (migration 0001).
      RETURN_IF_ERROR(policy::ValidateProfileName("principal.id", principal.id()));
      return policy::PrincipalType::kIdentity;
    default:
      return absl::InvalidArgumentError(
          principal.type() == v1::PRINCIPAL_TYPE_UNSPECIFIED
              ? std::string("principal.type: is required")
              : absl::StrCat("principal.type: unknown value ", static_cast<int>(principal.type())));
  }
}

void ToProto(const policy::EffectiveRule& r, v1::ResolvedAclRule* out) {
  out->set_topic_filter(r.rule.filter);
  out->set_access(ToProto(r.rule.access));
  out->set_topic_pattern(r.pattern);
  out->set_profile_name(r.profile_name);
  out->set_subject_type(ToProto(r.subject_type));
  out->set_subject_id(r.subject_id);
}

grpc::Status AclService::CreateAclProfile(grpc::ServerContext* context,
                                          const v1::CreateAclProfileRequest* request,
                                          v1::CreateAclProfileResponse* response) {
  if (!request->has_profile()) return Invalid("profile: is required");
  auto profile = FromProto(request->profile());
  if (!profile.ok()) return ToGrpcStatus(profile.status());
  auto stored = policy_.CreateProfile(*profile, RequestContextFor(*context));
  if (!stored.ok()) return ToGrpcStatus(stored.status());
  ToProto(*stored, response->mutable_profile());
  return grpc::Status::OK;
}

grpc::Status AclService::GetAclProfile(grpc::ServerContext*, const v1::GetAclProfileRequest* request,
                                       v1::GetAclProfileResponse* response) {
  auto profile = policy_.GetProfile(request->name());
  if (!profile.ok()) return ToGrpcStatus(profile.status());
  ToProto(*profile, response->mutable_profile());
  return grpc::Status::OK;
}

grpc::Status AclService::ListAclProfiles(grpc::ServerContext*,
                                         const v1::ListAclProfilesRequest* request,
                                         v1::ListAclProfilesResponse* response) {
  auto page = policy_.ListProfiles(request->page_size(), request->page_token());
  if (!page.ok()) return ToGrpcStatus(page.status());
  for (const auto& p : page->profiles) ToProto(p, response->add_profiles());
  response->set_next_page_token(page->next_page_token);
  return grpc::Status::OK;
}

grpc::Status AclService::UpdateAclProfile(grpc::ServerContext* context,
                                          const v1::UpdateAclProfileRequest* request,
                                          v1::UpdateAclProfileResponse* response) {
  if (!request->has_profile()) return Invalid("profile: is required");
  auto profile = FromProto(request->profile());
  if (!profile.ok()) return ToGrpcStatus(profile.status());
  const std::vector<std::string> fields(request->update_mask().paths().begin(),
                                        request->update_mask().paths().end());
  // The etag in the request or, as AIP-154 allows, on the profile itself.
  const std::string& etag = request->etag().empty() ? request->profile().etag() : request->etag();
  auto stored = policy_.UpdateProfile(*profile, fields, etag, RequestContextFor(*context));
  if (!stored.ok()) return ToGrpcStatus(stored.status());
  ToProto(*stored, response->mutable_profile());
  return grpc::Status::OK;
}

grpc::Status AclService::DeleteAclProfile(grpc::ServerContext* context,
                                          const v1::DeleteAclProfileRequest* request,
                                          v1::DeleteAclProfileResponse*) {
  return ToGrpcStatus(
      policy_.DeleteProfile(request->name(), request->etag(), RequestContextFor(*context)));
}

grpc::Status AclService::AssignAclProfile(grpc::ServerContext* context,
                                          const v1::AssignAclProfileRequest* request,
                                          v1::AssignAclProfileResponse* response) {
  if (!request->has_assignment()) return Invalid("assignment: is required");
  auto assignment = FromProto(request->assignment());
  if (!assignment.ok()) return ToGrpcStatus(assignment.status());
  auto stored = policy_.Assign(*assignment, RequestContextFor(*context));
  if (!stored.ok()) return ToGrpcStatus(stored.status());
  ToProto(stored->first, response->mutable_assignment());
  response->set_already_assigned(stored->second);
  return grpc::Status::OK;
}

grpc::Status AclService::UnassignAclProfile(grpc::ServerContext* context,
                                            const v1::UnassignAclProfileRequest* request,
                                            v1::UnassignAclProfileResponse*) {
  if (!request->has_assignment()) return Invalid("assignment: is required");
  auto assignment = FromProto(request->assignment());
  if (!assignment.ok()) return ToGrpcStatus(assignment.status());
  return ToGrpcStatus(policy_.Unassign(*assignment, RequestContextFor(*context)));
}

grpc::Status AclService::ListAclAssignments(grpc::ServerContext*,
                                            const v1::ListAclAssignmentsRequest* request,
                                            v1::ListAclAssignmentsResponse* response) {
  storage::AclAssignmentFilter filter;
  if (request->subject_type() != v1::ACL_SUBJECT_TYPE_UNSPECIFIED) {
    filter.subject_type = FromProto(request->subject_type());
    if (!filter.subject_type) {
      return Invalid(absl::StrCat("subject_type: unknown value ",
                                  static_cast<int>(request->subject_type())));
    }
  }
  filter.subject_id = request->subject_id();
  filter.profile_name = request->profile_name();
  auto page = policy_.ListAssignments(filter, request->page_size(), request->page_token());
  if (!page.ok()) return ToGrpcStatus(page.status());
  for (const auto& a : page->assignments) ToProto(a, response->add_assignments());
  response->set_next_page_token(page->next_page_token);
  return grpc::Status::OK;
}

grpc::Status AclService::ResolveAcl(grpc::ServerContext*, const v1::ResolveAclRequest* request,
                                    v1::ResolveAclResponse* response) {
  if (!request->has_principal()) return Invalid("principal: is required");
  const v1::Principal& principal = request->principal();
  auto type = PrincipalFromProto(principal);
  if (!type.ok()) return ToGrpcStatus(type.status());
  auto resolved = policy_.Resolve(*type, principal.id());
  if (!resolved.ok()) return ToGrpcStatus(resolved.status());
  *response->mutable_principal() = principal;
  response->set_active(resolved->active);
  for (const std::string& name : resolved->profile_names) response->add_profile_names(name);
  for (const policy::EffectiveRule& r : resolved->rules) ToProto(r, response->add_rules());
  for (const policy::SkippedRule& s : resolved->skipped) {
    v1::SkippedAclRule* out = response->add_skipped_rules();
    out->set_topic_pattern(s.pattern);
    out->set_access(ToProto(s.access));
    out->set_profile_name(s.profile_name);
    out->set_reason(s.reason);
  }
  return grpc::Status::OK;
}

}  // namespace fleetca::api
