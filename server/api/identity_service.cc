#include "server/api/identity_service.h"

#include "absl/strings/str_cat.h"
#include "server/api/call_context.h"
#include "server/api/certificate_authority_service.h"
#include "server/api/issuance_service.h"
#include "server/api/proto_convert.h"
#include "server/api/status.h"

namespace fleetca::api {
namespace {

std::optional<auth::Role> FromProtoRole(v1::IdentityRole r) {
  switch (r) {
    case v1::IDENTITY_ROLE_ADMIN: return auth::Role::kAdmin;
    case v1::IDENTITY_ROLE_PROVISIONER: return auth::Role::kProvisioner;
    case v1::IDENTITY_ROLE_BROKER: return auth::Role::kBroker;
    case v1::IDENTITY_ROLE_VIEWER: return auth::Role::kViewer;
    case v1::IDENTITY_ROLE_MQTT_CLIENT: return auth::Role::kMqttClient;
    case v1::IDENTITY_ROLE_DEVICE: return auth::Role::kDevice;
    default: return std::nullopt;
  }
}


// KeyFrom reads a request's key oneof.
template <typename Request>
absl::StatusOr<identity::KeySource> KeyFrom(const Request& in) {
  identity::KeySource key;
  if (in.has_csr_pem()) {
    if (in.csr_pem().empty()) return absl::InvalidArgumentError("csr_pem: is empty");
    key.csr_pem = in.csr_pem();
  } else if (in.has_generate_key_algorithm()) {
    if (in.generate_key_algorithm() == v1::KEY_ALGORITHM_UNSPECIFIED) {
      key.generate = pki::KeyAlgorithm::kEcdsaP256;
    } else {
      key.generate = FromProtoAlgorithm(in.generate_key_algorithm());
      if (!key.generate) {
        return absl::InvalidArgumentError("generate_key_algorithm: unknown value");
      }
    }
  } else {
    return absl::InvalidArgumentError("key: set csr_pem, or generate_key_algorithm for a key "
                                      "made by the server");
  }
  return key;
}

void CertificateToProto(const identity::IssuedIdentity& issued, v1::Certificate* out) {
  issuance::IssuedCertificate c;
  c.record = issued.certificate;
  c.certificate_pem = issued.certificate_pem;
  c.chain_pem = issued.chain_pem;
  api::ToProto(c, out);
}

}  // namespace

v1::IdentityRole ToProtoRole(const std::string& db_role) {
  auto role = identity::RoleFromDb(db_role);
  if (!role) return v1::IDENTITY_ROLE_UNSPECIFIED;
  switch (*role) {
    case auth::Role::kAdmin: return v1::IDENTITY_ROLE_ADMIN;
    case auth::Role::kProvisioner: return v1::IDENTITY_ROLE_PROVISIONER;
    case auth::Role::kBroker: return v1::IDENTITY_ROLE_BROKER;
    case auth::Role::kViewer: return v1::IDENTITY_ROLE_VIEWER;
    case auth::Role::kMqttClient: return v1::IDENTITY_ROLE_MQTT_CLIENT;
    case auth::Role::kDevice: return v1::IDENTITY_ROLE_DEVICE;
  }
  return v1::IDENTITY_ROLE_UNSPECIFIED;
}

void IdentityService::ToProto(const storage::IdentityRecord& r, v1::Identity* out) {
  out->set_name(r.name);
  out->set_role(ToProtoRole(r.role));
  out->set_status(r.status == "active" ? v1::IDENTITY_STATUS_ACTIVE : v1::IDENTITY_STATUS_REVOKED);
  out->set_display_name(r.description);
  out->set_active_certificate_count(r.active_certificate_count);
  SetTimestamp(r.create_time, out->mutable_create_time());
  if (r.status != "active") SetTimestamp(r.update_time, out->mutable_revoke_time());
  if (!r.latest_serial.empty()) {
    auto cert = certificates_.GetBySerial(r.latest_serial);
    if (cert.ok()) {
      issuance::IssuedCertificate c;
      c.record = *cert;
      c.certificate_pem = pki::DerToPem(cert->der, "CERTIFICATE");
      api::ToProto(c, out->mutable_latest_certificate());
    }
  }
}

grpc::Status IdentityService::IssueIdentity(grpc::ServerContext* context,
                                            const v1::IssueIdentityRequest* request,
                                            v1::IssueIdentityResponse* response) {
  const RequestContext ctx = RequestContextFor(*context);
  auto role = FromProtoRole(request->role());
  if (!role.has_value()) {
    return Invalid("role: required: ADMIN, PROVISIONER, BROKER, VIEWER or MQTT_CLIENT");
  }
  auto key = KeyFrom(*request);
  if (!key.ok()) return ToGrpcStatus(key.status());
  auto validity = FromDuration("validity", request->validity());
  if (!validity.ok()) return ToGrpcStatus(validity.status());
  auto issued = identities_.Issue(request->name(), *role, request->display_name(), *key,
                                  *validity, ctx);
  if (!issued.ok()) return ToGrpcStatus(issued.status());
  ToProto(issued->identity, response->mutable_identity());
  CertificateToProto(*issued, response->mutable_certificate());
  response->set_private_key_pem(issued->private_key_pem);
  return grpc::Status::OK;
}

grpc::Status IdentityService::RenewIdentity(grpc::ServerContext* context,
                                            const v1::RenewIdentityRequest* request,
                                            v1::RenewIdentityResponse* response) {
  const RequestContext ctx = RequestContextFor(*context);
  if (absl::Status st = RequireSelfOrRole(ctx, {"admin"}, request->name(), "renew an identity");
      !st.ok() || ctx.role == "device") {
    return ToGrpcStatus(st.ok() ? absl::PermissionDeniedError("devices renew with "
                                                              "RenewDeviceCertificate")
                                : st);
  }
  auto key = KeyFrom(*request);
  if (!key.ok()) return ToGrpcStatus(key.status());
  auto validity = FromDuration("validity", request->validity());
  if (!validity.ok()) return ToGrpcStatus(validity.status());
  auto issued = identities_.Renew(request->name(), *key, *validity, request->revoke_previous(), ctx);
  if (!issued.ok()) return ToGrpcStatus(issued.status());
  CertificateToProto(*issued, response->mutable_certificate());
  response->set_private_key_pem(issued->private_key_pem);
  return grpc::Status::OK;
}

grpc::Status IdentityService::GetIdentity(grpc::ServerContext* context,
                                          const v1::GetIdentityRequest* request,
                                          v1::GetIdentityResponse* response) {
  const RequestContext ctx = RequestContextFor(*context);
  if (absl::Status st = RequireSelfOrRole(ctx, {"admin", "viewer"}, request->name(),
                                          "read an identity");
      !st.ok() || ctx.role == "device") {
    return ToGrpcStatus(st.ok() ? absl::PermissionDeniedError("devices have no identity") : st);
  }
  auto identity = identities_.Get(request->name());
  if (!identity.ok()) return ToGrpcStatus(identity.status());
  ToProto(*identity, response->mutable_identity());
  return grpc::Status::OK;
}

grpc::Status IdentityService::ListIdentities(grpc::ServerContext* /*context*/,
                                             const v1::ListIdentitiesRequest* request,
                                             v1::ListIdentitiesResponse* response) {
  storage::IdentityFilter filter;
  if (request->role() != v1::IDENTITY_ROLE_UNSPECIFIED) {
    auto role = FromProtoRole(request->role());
    if (!role.has_value()) return Invalid("role: unknown value");
    filter.role = identity::DbRoleName(*role);
  }
  switch (request->status()) {
    case v1::IDENTITY_STATUS_UNSPECIFIED: break;
    case v1::IDENTITY_STATUS_ACTIVE: filter.status = "active"; break;
    case v1::IDENTITY_STATUS_REVOKED: filter.status = "revoked"; break;
    default: return Invalid("status: unknown value");
  }
  auto page = identities_.List(filter, request->page_size(), request->page_token());
  if (!page.ok()) return ToGrpcStatus(page.status());
  for (const auto& r : page->identities) ToProto(r, response->add_identities());
  response->set_next_page_token(page->next_page_token);
  return grpc::Status::OK;
}

grpc::Status IdentityService::RevokeIdentity(grpc::ServerContext* context,
                                             const v1::RevokeIdentityRequest* request,
                                             v1::RevokeIdentityResponse* response) {
  const RequestContext ctx = RequestContextFor(*context);
  switch (request->reason()) {
    case v1::REVOCATION_REASON_UNSPECIFIED:
    case v1::REVOCATION_REASON_KEY_COMPROMISE:
    case v1::REVOCATION_REASON_AFFILIATION_CHANGED:
    case v1::REVOCATION_REASON_SUPERSEDED:
    case v1::REVOCATION_REASON_CESSATION_OF_OPERATION:
    case v1::REVOCATION_REASON_PRIVILEGE_WITHDRAWN:
      break;
    default:
      return Invalid(absl::StrCat("reason: ", v1::RevocationReason_Name(request->reason()),
                                  " is not allowed for an identity"));
  }
  auto result = identities_.Revoke(request->name(), request->reason(), request->comment(), ctx);
  if (!result.ok()) return ToGrpcStatus(result.status());
  ToProto(result->identity, response->mutable_identity());
  response->set_revoked_certificate_count(static_cast<int>(result->revoked_serials.size()));
  return grpc::Status::OK;
}

}  // namespace fleetca::api
