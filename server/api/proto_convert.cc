#include "server/api/proto_convert.h"

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "pki/certificate_builder.h"

namespace fleetca::api {

void SetTimestamp(absl::Time t, google::protobuf::Timestamp* ts) {
  const int64_t micros = absl::ToUnixMicros(t);
  int64_t seconds = micros / 1000000;
  int64_t rem = micros % 1000000;
  if (rem < 0) {
    rem += 1000000;
    --seconds;
  }
  ts->set_seconds(seconds);
  ts->set_nanos(static_cast<int32_t>(rem * 1000));
}

absl::Time FromTimestamp(const google::protobuf::Timestamp& ts) {
  return absl::FromUnixSeconds(ts.seconds()) + absl::Nanoseconds(ts.nanos());
}

absl::StatusOr<absl::Duration> FromDuration(absl::string_view field,
                                            const google::protobuf::Duration& d) {
  if (d.seconds() < 0 || d.nanos() < 0 || d.nanos() >= 1000000000) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": must be a positive duration"));
  }
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

absl::StatusOr<std::string> SerialField(absl::string_view field, absl::string_view hex) {
  auto serial = pki::SerialFromHex(hex);
  if (!serial.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": a serial in hex, e.g. 3a9f..."));
  }
  // The certificates table holds 1 to 20 octets (RFC 5280 4.1.2.2): anything longer names
  // no certificate, and is a malformed request rather than an unknown one.
  if (serial->size() > 20) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": at most 40 hex digits (RFC 5280: 20 octets), got ", hex.size()));
  }
  return serial;
}

absl::StatusOr<std::string> FingerprintField(absl::string_view field, absl::string_view hex) {
  auto fp = pki::SerialFromHex(hex);
  if (!fp.ok() || fp->size() != 32) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": 64 hex digits (colons allowed)"));
  }
  return fp;
}

absl::StatusOr<pki::Pkcs12Encryption> Pkcs12EncryptionField(absl::string_view field,
                                                           v1::Pkcs12Encryption value) {
  switch (value) {
    case v1::PKCS12_ENCRYPTION_UNSPECIFIED:
    case v1::PKCS12_ENCRYPTION_AES_256:
      return pki::Pkcs12Encryption::kAes256;
    case v1::PKCS12_ENCRYPTION_LEGACY:
      return pki::Pkcs12Encryption::kLegacy;
    default:
      return absl::InvalidArgumentError(absl::StrCat(field, ": unknown value"));
  }
}

absl::Status RenamePkcs12Field(const absl::Status& status, absl::string_view pki_field,
                               absl::string_view request_field) {
  if (!absl::IsInvalidArgument(status)) return status;
  const std::string prefix = absl::StrCat(pki_field, ":");
  if (!absl::StartsWith(status.message(), prefix)) return status;
  return absl::InvalidArgumentError(
      absl::StrCat(request_field, status.message().substr(pki_field.size())));
}

}  // namespace fleetca::api
