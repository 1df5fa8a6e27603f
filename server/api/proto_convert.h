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

// SerialField: a certificate serial given in hex in `field` (colons allowed); INVALID_ARGUMENT
// naming the field otherwise. FingerprintField: a SHA-256 fingerprint, 64 hex digits.
absl::StatusOr<std::string> SerialField(absl::string_view field, absl::string_view hex);
absl::StatusOr<std::string> FingerprintField(absl::string_view field, absl::string_view hex);

}  // namespace fleetca::api
