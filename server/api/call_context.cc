#include "server/api/call_context.h"

#include <grpc/grpc_security_constants.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "server/auth/auth_processor.h"

namespace fleetca::api {
namespace {

std::string Property(const grpc::AuthContext* auth, const char* name) {
  if (auth == nullptr) return "";
  for (const grpc::string_ref& v : auth->FindPropertyValues(name)) {
    return std::string(v.data(), v.size());
  }
  return "";
}

}  // namespace

bool ValidRequestId(absl::string_view id) {
  return !id.empty() && id.size() <= 128 && std::all_of(id.begin(), id.end(), [](char c) {
    return static_cast<unsigned char>(c) >= 0x21 && static_cast<unsigned char>(c) <= 0x7e;
  });
}

RequestContext RequestContextFor(const grpc::ServerContextBase& context) {
  RequestContext ctx;
  ctx.peer = context.peer();
  const std::shared_ptr<const grpc::AuthContext> auth = context.auth_context();
  ctx.actor = Property(auth.get(), auth::kNameProperty);
  if (!ctx.actor.empty()) {
    ctx.role = Property(auth.get(), auth::kRoleProperty);
    ctx.actor_serial = Property(auth.get(), auth::kSerialProperty);
    ctx.actor_issuer = Property(auth.get(), auth::kIssuerProperty);
  } else if (Property(auth.get(), GRPC_TRANSPORT_SECURITY_TYPE_PROPERTY_NAME) == "ssl") {
    // TLS without a recorded principal cannot reach a handler (the processor refuses it);
    // should it ever, it gets no rights.
    ctx.actor = "unauthenticated";
  } else {
    ctx.actor = "anonymous";
    ctx.role = "admin";
  }
  // The ServerContext outlives the handler, and the handler outlives every use of ctx.
  ctx.cancelled = [&context] { return context.IsCancelled(); };
  const auto& metadata = context.client_metadata();
  auto it = metadata.find("x-request-id");
  if (it != metadata.end()) {
    const absl::string_view v(it->second.data(), it->second.size());
    if (ValidRequestId(v)) ctx.request_id = std::string(v);
  }
  return ctx;
}

absl::Status RequireSelfOrRole(const RequestContext& ctx, std::initializer_list<const char*> roles,
                               const std::string& name, absl::string_view what) {
  for (const char* role : roles) {
    if (ctx.role == role) return absl::OkStatus();
  }
  if (!name.empty() && ctx.actor == name && !ctx.role.empty()) return absl::OkStatus();
  return absl::PermissionDeniedError(
      absl::StrCat("role ", ctx.role.empty() ? "none" : ctx.role, " (", ctx.actor, ") may ", what,
                   " only for itself"));
}

}  // namespace fleetca::api
