#include "server/auth/roles.h"

#include <algorithm>
#include <cstdint>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace fleetca::auth {
namespace {

using Mask = uint32_t;
constexpr Mask Bit(Role r) { return Mask{1} << static_cast<int>(r); }
constexpr Mask kAdmin = Bit(Role::kAdmin);
constexpr Mask kProv = Bit(Role::kProvisioner);
constexpr Mask kBroker = Bit(Role::kBroker);
constexpr Mask kViewer = Bit(Role::kViewer);
constexpr Mask kMqtt = Bit(Role::kMqttClient);
constexpr Mask kDevice = Bit(Role::kDevice);
constexpr Mask kEvery = kAdmin | kProv | kBroker | kViewer | kMqtt | kDevice;

struct Rule {
  const char* service;  // without the package
  const char* method;
  Mask roles;
};

// The table. Rules that depend on the request ("its own ...") are narrowed in the handler;
// the proto comment of each RPC says the same ("Roles: ...").
constexpr Rule kRules[] = {
    // DeviceRegistryService: stations register and read; only admins change status or delete.
    {"DeviceRegistryService", "RegisterDevice", kAdmin | kProv},
    {"DeviceRegistryService", "BatchRegisterDevices", kAdmin | kProv},
    {"DeviceRegistryService", "GetDevice", kAdmin | kProv | kViewer | kBroker},
    {"DeviceRegistryService", "ListDevices", kAdmin | kProv | kViewer},
    {"DeviceRegistryService", "UpdateDevice", kAdmin | kProv},
    {"DeviceRegistryService", "SetDeviceStatus", kAdmin},
    {"DeviceRegistryService", "DeleteDevice", kAdmin},
    // CertificateAuthorityService.
    {"CertificateAuthorityService", "InitializeHierarchy", kAdmin},
    {"CertificateAuthorityService", "CreateIntermediateCsr", kAdmin},
    {"CertificateAuthorityService", "ImportIntermediateCertificate", kAdmin},
    {"CertificateAuthorityService", "ImportIssuer", kAdmin},
    {"CertificateAuthorityService", "ListIssuers", kAdmin | kViewer | kProv | kBroker},
    {"CertificateAuthorityService", "GetIssuer", kAdmin | kViewer | kProv | kBroker},
    {"CertificateAuthorityService", "GetTrustBundle", kEvery},
    {"CertificateAuthorityService", "RotateIssuer", kAdmin},
    {"CertificateAuthorityService", "RewrapIssuerKeys", kAdmin},
    {"CertificateAuthorityService", "RegisterExternalCa", kAdmin},
    {"CertificateAuthorityService", "GetExternalCa", kAdmin | kViewer | kBroker},
    {"CertificateAuthorityService", "ListExternalCas", kAdmin | kViewer | kBroker},
    {"CertificateAuthorityService", "UpdateExternalCa", kAdmin},
    {"CertificateAuthorityService", "DeleteExternalCa", kAdmin},
    // IssuanceService.
    {"IssuanceService", "SignDeviceCsr", kAdmin | kProv},
    {"IssuanceService", "SignBrokerCsr", kAdmin},
    {"IssuanceService", "RenewDeviceCertificate", kAdmin | kProv | kDevice},
    {"IssuanceService", "GetCertificate", kAdmin | kViewer | kProv | kBroker | kDevice},
    {"IssuanceService", "ListCertificates", kAdmin | kViewer | kProv},
    {"IssuanceService", "ListProfiles", kAdmin | kViewer | kProv},
    {"IssuanceService", "RegisterExternalCertificate", kAdmin | kProv},
    {"IssuanceService", "ExportPkcs12", kAdmin | kProv | kDevice},
    // RevocationService.
    {"RevocationService", "RevokeCertificate", kAdmin},
    {"RevocationService", "RevokeDeviceCertificates", kAdmin},
    {"RevocationService", "HoldCertificate", kAdmin},
    {"RevocationService", "ReleaseCertificateHold", kAdmin},
    {"RevocationService", "GetRevocationStatus", kAdmin | kViewer | kBroker | kProv | kDevice},
    {"RevocationService", "GetCrl", kAdmin | kViewer | kBroker | kProv},
    {"RevocationService", "ImportCrl", kAdmin},
    // AclService.
    {"AclService", "CreateAclProfile", kAdmin},
    {"AclService", "GetAclProfile", kAdmin | kViewer | kBroker},
    {"AclService", "ListAclProfiles", kAdmin | kViewer | kBroker},
    {"AclService", "UpdateAclProfile", kAdmin},
    {"AclService", "DeleteAclProfile", kAdmin},
    {"AclService", "AssignAclProfile", kAdmin},
    {"AclService", "UnassignAclProfile", kAdmin},
    {"AclService", "ListAclAssignments", kAdmin | kViewer | kBroker},
    {"AclService", "ResolveAcl", kAdmin | kViewer | kBroker},
    // BrokerAuthService and BrokerSyncService.
    {"BrokerAuthService", "AuthorizeConnect", kAdmin | kBroker},
    {"BrokerAuthService", "CheckTopic", kAdmin | kBroker},
    {"BrokerSyncService", "RegisterBroker", kAdmin},
    {"BrokerSyncService", "GetBroker", kAdmin | kViewer | kBroker},
    {"BrokerSyncService", "ListBrokers", kAdmin | kViewer},
    {"BrokerSyncService", "UpdateBroker", kAdmin},
    {"BrokerSyncService", "DeleteBroker", kAdmin},
    {"BrokerSyncService", "Watch", kAdmin | kBroker},
    // AuditService.
    {"AuditService", "ListAuditEvents", kAdmin | kViewer},
    {"AuditService", "VerifyAuditChain", kAdmin | kViewer},
    // IdentityService: "its own name" rules are narrowed in the handler.
    {"IdentityService", "IssueIdentity", kAdmin},
    {"IdentityService", "RenewIdentity", kAdmin | kProv | kBroker | kViewer | kMqtt},
    {"IdentityService", "GetIdentity", kAdmin | kProv | kBroker | kViewer | kMqtt},
    {"IdentityService", "ListIdentities", kAdmin | kViewer},
    {"IdentityService", "RevokeIdentity", kAdmin},
};

const absl::flat_hash_map<std::string, Mask>& Table() {
  static const auto* table = [] {
    auto* t = new absl::flat_hash_map<std::string, Mask>();
    for (const Rule& r : kRules) {
      (*t)[absl::StrCat("/fleetca.v1.", r.service, "/", r.method)] = r.roles;
    }
    return t;
  }();
  return *table;
}

}  // namespace

const char* RoleName(Role role) {
  switch (role) {
    case Role::kAdmin: return "admin";
    case Role::kProvisioner: return "provisioner";
    case Role::kBroker: return "broker";
    case Role::kViewer: return "viewer";
    case Role::kMqttClient: return "mqtt-client";
    case Role::kDevice: return "device";
  }
  return "unknown";
}

std::optional<Role> RoleFromName(absl::string_view name) {
  for (Role r : kAllRoles) {
    if (name == RoleName(r)) return r;
  }
  if (name == "mqtt_client") return Role::kMqttClient;
  return std::nullopt;
}

Access AccessFor(absl::string_view full_method) {
  if (absl::StartsWith(full_method, "/grpc.health.v1.Health/")) return Access::kPublic;
  if (absl::StartsWith(full_method, "/grpc.reflection.")) return Access::kAuthenticated;
  return Table().contains(full_method) ? Access::kRoles : Access::kUnknown;
}

bool MayCall(Role role, absl::string_view full_method) {
  switch (AccessFor(full_method)) {
    case Access::kPublic:
    case Access::kAuthenticated:
      return true;
    case Access::kUnknown:
      return role == Role::kAdmin;
    case Access::kRoles:
      break;
  }
  return (Table().find(full_method)->second & Bit(role)) != 0;
}

std::vector<std::string> TableMethods() {
  std::vector<std::string> out;
  for (const Rule& r : kRules) out.push_back(absl::StrCat("/fleetca.v1.", r.service, "/", r.method));
  std::sort(out.begin(), out.end());
  return out;
}

bool IsIssuanceMethod(absl::string_view full_method) {
  return full_method == "/fleetca.v1.IssuanceService/SignDeviceCsr" ||
         full_method == "/fleetca.v1.IssuanceService/SignBrokerCsr" ||
         full_method == "/fleetca.v1.IssuanceService/RenewDeviceCertificate" ||
         full_method == "/fleetca.v1.IdentityService/IssueIdentity" ||
         full_method == "/fleetca.v1.IdentityService/RenewIdentity";
}

}  // namespace fleetca::auth
