#pragma once

// gRPC IdentityService over identity::Identities.

#include "fleetca/v1/identity.grpc.pb.h"
#include "server/identity/identities.h"
#include "storage/certificate_store.h"

namespace fleetca::api {

// ToProtoRole: an identity role in the database spelling as the API names it.
v1::IdentityRole ToProtoRole(const std::string& db_role);

class IdentityService final : public v1::IdentityService::Service {
 public:
  IdentityService(identity::Identities& identities, storage::CertificateStore& certificates,
                  ca::CertificateAuthority& ca)
      : identities_(identities), certificates_(certificates), ca_(ca) {}

  grpc::Status IssueIdentity(grpc::ServerContext* context, const v1::IssueIdentityRequest* request,
                             v1::IssueIdentityResponse* response) override;
  grpc::Status RenewIdentity(grpc::ServerContext* context, const v1::RenewIdentityRequest* request,
                             v1::RenewIdentityResponse* response) override;
  grpc::Status GetIdentity(grpc::ServerContext* context, const v1::GetIdentityRequest* request,
                           v1::GetIdentityResponse* response) override;
  grpc::Status ListIdentities(grpc::ServerContext* context,
                              const v1::ListIdentitiesRequest* request,
                              v1::ListIdentitiesResponse* response) override;
  grpc::Status RevokeIdentity(grpc::ServerContext* context,
                              const v1::RevokeIdentityRequest* request,
                              v1::RevokeIdentityResponse* response) override;

 private:
  void ToProto(const storage::IdentityRecord& r, v1::Identity* out);

  identity::Identities& identities_;
  storage::CertificateStore& certificates_;
  ca::CertificateAuthority& ca_;
};

}  // namespace fleetca::api
