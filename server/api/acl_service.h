#pragma once

// gRPC AclService over policy::Policy: ACL profiles, their assignments, and ResolveAcl.

#include "fleetca/v1/acl.grpc.pb.h"
#include "server/policy/policy.h"

namespace fleetca::api {

// PrincipalFromProto: the principal's type, with its id checked (a comm-ID, or an identity
// name); INVALID_ARGUMENT naming principal.type or principal.id.
absl::StatusOr<policy::PrincipalType> PrincipalFromProto(const v1::Principal& principal);

// ToProto: a stored access, an assignment, as the API names them.
v1::AclAccess ToProto(storage::AclRuleAccess access);
void ToProto(const storage::AclAssignmentRow& assignment, v1::AclAssignment* out);

// ToProto: an effective rule as ResolveAcl and CheckTopic return it.
void ToProto(const policy::EffectiveRule& rule, v1::ResolvedAclRule* out);

class AclService final : public v1::AclService::Service {
 public:
  explicit AclService(policy::Policy& policy) : policy_(policy) {}

  grpc::Status CreateAclProfile(grpc::ServerContext* context,
                                const v1::CreateAclProfileRequest* request,
                                v1::CreateAclProfileResponse* response) override;
  grpc::Status GetAclProfile(grpc::ServerContext* context, const v1::GetAclProfileRequest* request,
                             v1::GetAclProfileResponse* response) override;
  grpc::Status ListAclProfiles(grpc::ServerContext* context,
                               const v1::ListAclProfilesRequest* request,
                               v1::ListAclProfilesResponse* response) override;
  grpc::Status UpdateAclProfile(grpc::ServerContext* context,
                                const v1::UpdateAclProfileRequest* request,
                                v1::UpdateAclProfileResponse* response) override;
  grpc::Status DeleteAclProfile(grpc::ServerContext* context,
                                const v1::DeleteAclProfileRequest* request,
                                v1::DeleteAclProfileResponse* response) override;
  grpc::Status AssignAclProfile(grpc::ServerContext* context,
                                const v1::AssignAclProfileRequest* request,
                                v1::AssignAclProfileResponse* response) override;
  grpc::Status UnassignAclProfile(grpc::ServerContext* context,
                                  const v1::UnassignAclProfileRequest* request,
                                  v1::UnassignAclProfileResponse* response) override;
  grpc::Status ListAclAssignments(grpc::ServerContext* context,
                                  const v1::ListAclAssignmentsRequest* request,
                                  v1::ListAclAssignmentsResponse* response) override;
  grpc::Status ResolveAcl(grpc::ServerContext* context, const v1::ResolveAclRequest* request,
                          v1::ResolveAclResponse* response) override;

 private:
  policy::Policy& policy_;
};

}  // namespace fleetca::api
