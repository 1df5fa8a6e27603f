#pragma once

// The one mapping from absl::Status to grpc::Status.

#include <grpcpp/support/status.h>

#include <string>

#include "absl/status/status.h"

namespace fleetca::api {

// ToGrpcStatus keeps the code and message. Domain and storage layers already word their
// messages for callers (INTERNAL ones carry only an incident id), so nothing is stripped
// here; UNKNOWN and other unexpected codes become INTERNAL.
grpc::Status ToGrpcStatus(const absl::Status& status);

// Invalid: INVALID_ARGUMENT with message, which names the field ("serial: ...").
grpc::Status Invalid(const std::string& message);

}  // namespace fleetca::api
