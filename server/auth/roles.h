#pragma once

// Roles and the authorization table: which role may call which RPC. The one place access
// rules live; the AuthProcessor (auth_processor.h) enforces it on every call before any
// handler runs. A handler only narrows further where a rule depends on the request ("its
// own certificate", "its own name").

#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace fleetca::auth {

enum class Role { kAdmin, kProvisioner, kBroker, kViewer, kMqttClient, kDevice };
inline constexpr Role kAllRoles[] = {Role::kAdmin,  Role::kProvisioner, Role::kBroker,
                                     Role::kViewer, Role::kMqttClient,  Role::kDevice};

// RoleName: "admin", "provisioner", "broker", "viewer", "mqtt-client", "device" (the form
// used in certificates' URI "fleetca://role/<role>/<name>").
const char* RoleName(Role role);
// RoleFromName accepts RoleName's forms (and "mqtt_client", the database's spelling).
std::optional<Role> RoleFromName(absl::string_view name);

// What a full method ("/fleetca.v1.IssuanceService/SignDeviceCsr") asks of its caller.
enum class Access {
  kPublic,         // anyone, even without a certificate (gRPC health)
  kAuthenticated,  // any authenticated caller (server reflection: the API's shape)
  kRoles,          // the roles of the table
  kUnknown,        // not in the table: admin only (gRPC answers UNIMPLEMENTED)
};
Access AccessFor(absl::string_view full_method);

// MayCall: whether a role may call a full method (false for kUnknown methods unless admin).
bool MayCall(Role role, absl::string_view full_method);

// TableMethods lists the full methods the table names, sorted (for tests and docs).
std::vector<std::string> TableMethods();

// IsIssuanceMethod: the methods that sign certificates, rate-limited per identity.
bool IsIssuanceMethod(absl::string_view full_method);

}  // namespace fleetca::auth
