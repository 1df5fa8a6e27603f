#include "server/auth/roles.h"

#include <gmock/gmock.h>
#include <google/protobuf/descriptor.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "fleetca/v1/acl.pb.h"
#include "fleetca/v1/audit.pb.h"
#include "fleetca/v1/broker_auth.pb.h"
#include "fleetca/v1/broker_sync.pb.h"
#include "fleetca/v1/certificate_authority.pb.h"
#include "fleetca/v1/device_registry.pb.h"
#include "fleetca/v1/identity.pb.h"
#include "fleetca/v1/issuance.pb.h"
#include "fleetca/v1/revocation.pb.h"
#include "grpc/health/v1/health.pb.h"

namespace fleetca::auth {
namespace {

using ::testing::ElementsAreArray;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

constexpr char kProtoDir[] = FLEETCA_SOURCE_DIR "/proto/fleetca/v1";

// The generated pool only knows the files whose .pb.cc is linked, and a static library
// contributes an object only when something references it: touch one message of each file
// so that its descriptor (and its services) is registered. EveryProtoFileIsLinked catches
// a new file missing here.
void LinkDescriptors() {
  static const bool linked = [] {
    const google::protobuf::Descriptor* const any_message_of_each_file[] = {
        v1::CreateAclProfileRequest::descriptor(),
        v1::ListAuditEventsRequest::descriptor(),
        v1::AuthorizeConnectRequest::descriptor(),
        v1::RegisterBrokerRequest::descriptor(),
        v1::InitializeHierarchyRequest::descriptor(),
        v1::RegisterDeviceRequest::descriptor(),
        v1::IssueIdentityRequest::descriptor(),
        v1::SignDeviceCsrRequest::descriptor(),
        v1::RevokeCertificateRequest::descriptor(),
        ::grpc::health::v1::HealthCheckRequest::descriptor(),
    };
    for (const auto* d : any_message_of_each_file) EXPECT_NE(d, nullptr);
    return true;
  }();
  (void)linked;
}

// The .proto files of the API, as in the source tree ("acl.proto", ...).
std::vector<std::string> ProtoFileNames() {
  std::vector<std::string> out;
  for (const auto& entry : std::filesystem::directory_iterator(kProtoDir)) {
    if (entry.path().extension() == ".proto") out.push_back(entry.path().filename().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

// Every RPC of the fleetca.v1 package as a full method ("/fleetca.v1.X/Y"), from the
// descriptors compiled into the server.
std::vector<std::string> DescriptorMethods() {
  LinkDescriptors();
  const auto* pool = google::protobuf::DescriptorPool::generated_pool();
  std::vector<std::string> out;
  for (const std::string& name : ProtoFileNames()) {
    const google::protobuf::FileDescriptor* file = pool->FindFileByName("fleetca/v1/" + name);
    if (file == nullptr) continue;  // reported by EveryProtoFileIsLinked
    EXPECT_EQ(file->package(), "fleetca.v1") << name;
    for (int s = 0; s < file->service_count(); ++s) {
      const google::protobuf::ServiceDescriptor* service = file->service(s);
      for (int m = 0; m < service->method_count(); ++m) {
        out.push_back(absl::StrCat("/", service->full_name(), "/", service->method(m)->name()));
      }
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

// The method name of a full method ("/fleetca.v1.X/Y" -> "Y").
std::string MethodName(const std::string& full_method) {
  return full_method.substr(full_method.rfind('/') + 1);
}

std::set<std::string> MethodsCallableBy(Role role) {
  std::set<std::string> out;
  for (const std::string& m : TableMethods()) {
    if (MayCall(role, m)) out.insert(m);
  }
  return out;
}

TEST(RolesTest, EveryProtoFileIsLinked) {
  LinkDescriptors();
  const std::vector<std::string> files = ProtoFileNames();
  // A wrong FLEETCA_SOURCE_DIR would otherwise make every test below vacuous.
  ASSERT_GE(files.size(), 9u) << kProtoDir;
  for (const std::string& name : files) {
    EXPECT_NE(
        google::protobuf::DescriptorPool::generated_pool()->FindFileByName("fleetca/v1/" + name),
        nullptr)
        << "fleetca/v1/" << name << " is not linked: reference one of its messages in "
        << "LinkDescriptors()";
  }
}

TEST(RolesTest, DescriptorWalkFindsEveryService) {
  // Guards the walk itself: had a file been skipped, the comparisons below would still pass.
  std::set<std::string> services;
  for (const std::string& m : DescriptorMethods()) {
    services.insert(std::string(absl::StripPrefix(m.substr(0, m.rfind('/')), "/")));
  }
  EXPECT_THAT(services, ::testing::IsSupersetOf({
                            "fleetca.v1.AclService",
                            "fleetca.v1.AuditService",
                            "fleetca.v1.BrokerAuthService",
                            "fleetca.v1.BrokerSyncService",
                            "fleetca.v1.CertificateAuthorityService",
                            "fleetca.v1.DeviceRegistryService",
                            "fleetca.v1.IdentityService",
                            "fleetca.v1.IssuanceService",
                            "fleetca.v1.RevocationService",
                        }));
}

TEST(RolesTest, EveryRpcIsInTheTable) {
  const std::vector<std::string> rpcs = DescriptorMethods();
  ASSERT_GE(rpcs.size(), 50u);  // 60 when written: fewer means the walk lost a file
  const std::vector<std::string> table = TableMethods();
  std::vector<std::string> missing;
  std::set_difference(rpcs.begin(), rpcs.end(), table.begin(), table.end(),
                      std::back_inserter(missing));
  // A missing RPC would be admin-only (kUnknown): every other role refused with no rule
  // saying so.
  EXPECT_THAT(missing, IsEmpty()) << "RPCs without a rule in server/auth/roles.cc";
  for (const std::string& rpc : rpcs) {
    EXPECT_EQ(AccessFor(rpc), Access::kRoles) << rpc;
  }
}

TEST(RolesTest, EveryTableEntryIsAnRpc) {
  const std::vector<std::string> rpcs = DescriptorMethods();
  ASSERT_FALSE(rpcs.empty());
  const std::vector<std::string> table = TableMethods();
  std::vector<std::string> stale;
  std::set_difference(table.begin(), table.end(), rpcs.begin(), rpcs.end(),
                      std::back_inserter(stale));
  EXPECT_THAT(stale, IsEmpty()) << "rules for RPCs the API does not have (renamed? removed?)";
}

TEST(RolesTest, TableMethodsAreSortedAndUnique) {
  const std::vector<std::string> table = TableMethods();
  EXPECT_TRUE(std::is_sorted(table.begin(), table.end()));
  // A duplicate rule would silently override the first one in the lookup map.
  EXPECT_EQ(std::adjacent_find(table.begin(), table.end()), table.end());
}

TEST(RolesTest, AdminMayCallEveryRpc) {
  for (const std::string& m : DescriptorMethods()) {
    EXPECT_TRUE(MayCall(Role::kAdmin, m)) << m;
  }
}

TEST(RolesTest, HealthIsPublic) {
  LinkDescriptors();
  const google::protobuf::ServiceDescriptor* health =
      google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(
          "grpc.health.v1.Health");
  ASSERT_NE(health, nullptr);
  ASSERT_GT(health->method_count(), 0);
  for (int i = 0; i < health->method_count(); ++i) {
    const std::string method = absl::StrCat("/grpc.health.v1.Health/", health->method(i)->name());
    EXPECT_EQ(AccessFor(method), Access::kPublic) << method;
    for (Role role : kAllRoles) EXPECT_TRUE(MayCall(role, method)) << method;
  }
}

TEST(RolesTest, ReflectionNeedsOnlyAuthentication) {
  for (const char* method : {"/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
                             "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"}) {
    EXPECT_EQ(AccessFor(method), Access::kAuthenticated) << method;
    for (Role role : kAllRoles) EXPECT_TRUE(MayCall(role, method)) << method;
  }
}

TEST(RolesTest, UnknownMethodsAreAdminOnly) {
  for (const char* method : {
           "/fleetca.v1.IssuanceService/NoSuchMethod",
           "/fleetca.v1.NoSuchService/GetDevice",
           "/fleetca.v1.issuanceservice/signdevicecsr",  // names are case-sensitive
           "/fleetca.v1.IssuanceService/SignDeviceCsr/",
           "/grpc.health.v1.HealthX/Check",  // not the health service
           "/fleetca.v2.IssuanceService/SignDeviceCsr",
           "",
       }) {
    EXPECT_EQ(AccessFor(method), Access::kUnknown) << method;
    for (Role role : kAllRoles) {
      EXPECT_EQ(MayCall(role, method), role == Role::kAdmin) << RoleName(role) << " " << method;
    }
  }
}

TEST(RolesTest, ProvisionerSpotChecks) {
  EXPECT_TRUE(MayCall(Role::kProvisioner, "/fleetca.v1.IssuanceService/SignDeviceCsr"));
  EXPECT_TRUE(MayCall(Role::kProvisioner, "/fleetca.v1.DeviceRegistryService/RegisterDevice"));
  EXPECT_FALSE(MayCall(Role::kProvisioner, "/fleetca.v1.RevocationService/RevokeCertificate"));
  EXPECT_FALSE(MayCall(Role::kProvisioner, "/fleetca.v1.DeviceRegistryService/SetDeviceStatus"));
  EXPECT_FALSE(MayCall(Role::kProvisioner, "/fleetca.v1.IdentityService/IssueIdentity"));
  EXPECT_FALSE(MayCall(Role::kProvisioner, "/fleetca.v1.IssuanceService/SignBrokerCsr"));
}

TEST(RolesTest, DeviceMayCallExactlyItsOwnCertificateRpcs) {
  EXPECT_THAT(MethodsCallableBy(Role::kDevice),
              UnorderedElementsAre("/fleetca.v1.IssuanceService/RenewDeviceCertificate",
                                   "/fleetca.v1.IssuanceService/GetCertificate",
                                   "/fleetca.v1.RevocationService/GetRevocationStatus",
                                   "/fleetca.v1.IssuanceService/ExportPkcs12",
                                   "/fleetca.v1.CertificateAuthorityService/GetTrustBundle"));
}

TEST(RolesTest, ViewerIsReadOnly) {
  const std::vector<std::string> kWritePrefixes = {
      "Create",  "Update",     "Delete", "Register", "Revoke", "Sign",     "Issue",
      "Set",     "Import",     "Rotate", "Rewrap",   "Assign", "Unassign", "Hold",
      "Release", "Initialize", "Renew",  "Export",   "Batch"};
  std::vector<std::string> writes;
  for (const std::string& m : MethodsCallableBy(Role::kViewer)) {
    const std::string name = MethodName(m);
    for (const std::string& prefix : kWritePrefixes) {
      if (absl::StartsWith(name, prefix)) writes.push_back(m);
    }
  }
  // The one exception: like every identity, a viewer renews its own certificate (the handler
  // narrows RenewIdentity to the caller's own name; see identity.proto).
  EXPECT_THAT(writes, ElementsAreArray({"/fleetca.v1.IdentityService/RenewIdentity"}));
  // And it does read: a viewer that may call nothing would pass the check above.
  EXPECT_TRUE(MayCall(Role::kViewer, "/fleetca.v1.DeviceRegistryService/ListDevices"));
  EXPECT_TRUE(MayCall(Role::kViewer, "/fleetca.v1.AuditService/ListAuditEvents"));
}

TEST(RolesTest, MqttClientOnlyManagesItsOwnIdentity) {
  EXPECT_THAT(MethodsCallableBy(Role::kMqttClient),
              UnorderedElementsAre("/fleetca.v1.IdentityService/RenewIdentity",
                                   "/fleetca.v1.IdentityService/GetIdentity",
                                   "/fleetca.v1.CertificateAuthorityService/GetTrustBundle"));
}

TEST(RolesTest, IssuanceMethodsAreTheSigningRpcs) {
  std::set<std::string> issuance;
  for (const std::string& m : DescriptorMethods()) {
    if (IsIssuanceMethod(m)) issuance.insert(m);
    // Every RPC that signs a certificate for its caller must be rate limited.
    const std::string name = MethodName(m);
    if (absl::StartsWith(name, "Sign") || absl::StartsWith(name, "Issue") ||
        absl::StartsWith(name, "Renew")) {
      EXPECT_TRUE(IsIssuanceMethod(m)) << m;
    }
  }
  EXPECT_THAT(issuance, UnorderedElementsAre("/fleetca.v1.IssuanceService/SignDeviceCsr",
                                             "/fleetca.v1.IssuanceService/SignBrokerCsr",
                                             "/fleetca.v1.IssuanceService/RenewDeviceCertificate",
                                             "/fleetca.v1.IdentityService/IssueIdentity",
                                             "/fleetca.v1.IdentityService/RenewIdentity"));
}

TEST(RolesTest, RoleNamesRoundTrip) {
  std::set<std::string> names;
  for (Role role : kAllRoles) {
    const std::string name = RoleName(role);
    names.insert(name);
    EXPECT_EQ(RoleFromName(name), role) << name;
  }
  EXPECT_EQ(names.size(), std::size(kAllRoles));
  EXPECT_THAT(names, UnorderedElementsAre("admin", "provisioner", "broker", "viewer", "mqtt-client",
                                          "device"));
  // The database spells it with an underscore.
  EXPECT_EQ(RoleFromName("mqtt_client"), Role::kMqttClient);
  EXPECT_STREQ(RoleName(Role::kMqttClient), "mqtt-client");
}

TEST(RolesTest, RoleFromNameRejectsOtherSpellings) {
  for (const char* name : {"", "Admin", "ADMIN", "admin ", " admin", "mqttclient", "mqtt client",
                           "devices", "unknown", "root"}) {
    EXPECT_EQ(RoleFromName(name), std::nullopt) << '"' << name << '"';
  }
  EXPECT_EQ(RoleFromName(absl::string_view("admin\0", 6)), std::nullopt);
}

// The "Roles:" sentence of each RPC's comment in the .proto files, read as the set of roles
// it names. The phrasings in use: "admin, viewer.", "every role, including device.",
// "every role except device and mqtt-client.", "admin; any identity for its own name."
// (identities are every role but device), "admin, broker (its own broker_id).".
std::set<Role> RolesOfSentence(absl::string_view sentence) {
  std::set<Role> named;
  for (absl::string_view word :
       absl::StrSplit(sentence, absl::ByAnyChar(" ,.;:()_"), absl::SkipEmpty())) {
    if (auto role = RoleFromName(word); role.has_value()) named.insert(*role);
  }
  std::set<Role> out;
  if (absl::StrContains(sentence, "every role")) {
    const bool except = absl::StrContains(sentence, "except");
    for (Role r : kAllRoles) {
      if (!except || named.count(r) == 0) out.insert(r);
    }
    return out;
  }
  out = named;
  if (absl::StrContains(sentence, "any identity")) {
    for (Role r : kAllRoles) {
      if (r != Role::kDevice) out.insert(r);
    }
  }
  return out;
}

// The documented roles of each RPC ("/fleetca.v1.X/Y" -> roles) for those whose comment
// has a "Roles:" sentence.
std::map<std::string, std::set<Role>> DocumentedRoles() {
  std::map<std::string, std::set<Role>> out;
  for (const std::string& name : ProtoFileNames()) {
    std::ifstream in(absl::StrCat(kProtoDir, "/", name));
    std::string line, service, comment;
    while (std::getline(in, line)) {
      absl::string_view l = absl::StripAsciiWhitespace(line);
      if (absl::ConsumePrefix(&l, "service ")) {
        service = std::string(l.substr(0, l.find_first_of(" {")));
      } else if (absl::ConsumePrefix(&l, "//")) {
        absl::StrAppend(&comment, " ", absl::StripAsciiWhitespace(l));
        continue;
      } else if (absl::ConsumePrefix(&l, "rpc ")) {
        const std::string method(l.substr(0, l.find('(')));
        if (size_t at = comment.find("Roles:"); at != std::string::npos) {
          // The sentence only: roles named further on are about something else.
          absl::string_view sentence = absl::string_view(comment).substr(at + 6);
          sentence = sentence.substr(0, sentence.find(". "));
          out[absl::StrCat("/fleetca.v1.", service, "/", method)] = RolesOfSentence(sentence);
        }
      }
      comment.clear();
    }
  }
  return out;
}

std::string Names(const std::set<Role>& roles) {
  return absl::StrJoin(roles, ",", [](std::string* out, Role r) { out->append(RoleName(r)); });
}

TEST(RolesTest, EveryRpcDocumentsItsRoles) {
  const std::map<std::string, std::set<Role>> documented = DocumentedRoles();
  for (const std::string& rpc : DescriptorMethods()) {
    EXPECT_EQ(documented.count(rpc), 1u)
        << rpc << ": its comment in the .proto file has no \"Roles: ...\" sentence";
  }
}

TEST(RolesTest, TableAgreesWithTheProtoComments) {
  // roles.cc promises that "the proto comment of each RPC says the same".
  const std::map<std::string, std::set<Role>> documented = DocumentedRoles();
  // Most RPCs document their roles; fewer would mean the parse above broke.
  ASSERT_GE(documented.size(), 40u);
  for (const auto& [method, roles] : documented) {
    EXPECT_EQ(AccessFor(method), Access::kRoles) << method;
    std::set<Role> allowed;
    for (Role r : kAllRoles) {
      if (MayCall(r, method)) allowed.insert(r);
    }
    EXPECT_EQ(Names(allowed), Names(roles)) << method << ": table vs. its proto comment";
  }
}

}  // namespace
}  // namespace fleetca::auth
