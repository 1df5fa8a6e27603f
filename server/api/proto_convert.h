#pragma once

// Conversions between protobuf well-known types and absl, shared by every gRPC service.

#include <google/protobuf/duration.pb.h>
#include <google/protobuf/timestamp.pb.h>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "fleetca/v1/types.pb.h"
#include "pki/pkcs12.h"

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

// Pkcs12EncryptionField: the pki algorithms for a v1.Pkcs12Encryption (UNSPECIFIED means
// AES-256); INVALID_ARGUMENT naming `field` for a value this build does not know. Shared by
// GetTrustBundle and ExportPkcs12.
absl::StatusOr<pki::Pkcs12Encryption> Pkcs12EncryptionField(absl::string_view field,
                                                           v1::Pkcs12Encryption value);

// RenamePkcs12Field: pki's PKCS#12 builders name their own parameters in INVALID_ARGUMENT
// messages ("password: required"); a request may know the parameter by another name
// (GetTrustBundle's keystore_password). Returns `status` with a leading "<pki_field>:"
// replaced by "<request_field>:", and any other status unchanged.
absl::Status RenamePkcs12Field(const absl::Status& status, absl::string_view pki_field,
                               absl::string_view request_field);

}  // namespace fleetca::api
