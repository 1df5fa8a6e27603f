#pragma once

// What the API layer knows about a caller, for the audit log.

#include <grpcpp/server_context.h>

#include "storage/journal.h"

namespace fleetca::api {

// RequestContextFor names the caller. Until mutual TLS identifies callers, the actor is
// "unauthenticated:<peer address>". The request id comes from the "x-request-id" metadata
// (at most 128 printable ASCII characters; otherwise ignored).
RequestContext RequestContextFor(const grpc::ServerContext& context);

}  // namespace fleetca::api
