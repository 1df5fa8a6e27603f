#pragma once

// Conversions between protobuf well-known types and absl, shared by every gRPC service.

#include <google/protobuf/duration.pb.h>
#include <google/protobuf/timestamp.pb.h>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace fleetca::api {

void SetTimestamp(absl::Time t, google::protobuf::Timestamp* ts);
absl::Time FromTimestamp(const google::protobuf::Timestamp& ts);
// FromDuration: INVALID_ARGUMENT naming field for a negative or malformed duration.
absl::StatusOr<absl::Duration> FromDuration(absl::string_view field,
                                            const google::protobuf::Duration& d);

}  // namespace fleetca::api
