#pragma once

// What the API layer knows about a caller: who it is (set by auth::AuthProcessor, which
// has already authenticated and authorized the call) and its request id.

#include <grpcpp/server_context.h>

#include "absl/status/status.h"
#include "storage/journal.h"

namespace fleetca::api {

// RequestContextFor names the caller from the call's AuthContext: the identity (or
// device) AuthProcessor recorded, or "anonymous" with role admin on a development server
// without TLS (the only case where no processor runs). The request id comes from the
// "x-request-id" metadata (at most 128 printable ASCII characters; otherwise ignored).
// Takes the base class so that interceptors (RpcObserver) can name the caller too.
RequestContext RequestContextFor(const grpc::ServerContextBase& context);

// ValidRequestId: at most 128 printable ASCII characters, none of them a space.
bool ValidRequestId(absl::string_view id);

// RequireSelfOrRole: PERMISSION_DENIED unless the caller has one of `roles` or is the
// named principal (`name`, for rules like "any identity for its own name"; "" for none).
absl::Status RequireSelfOrRole(const RequestContext& ctx, std::initializer_list<const char*> roles,
                               const std::string& name, absl::string_view what);

}  // namespace fleetca::api
