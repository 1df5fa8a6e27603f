#include "server/revocation/revocations.h"

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "pki/certificate_builder.h"
#include "server/registry/validation.h"

namespace fleetca::revocation {
namespace {

constexpr size_t kMaxCommentBytes = 256;

absl::Status CheckSerial(const std::string& serial) {
  if (serial.empty() || serial.size() > 20) {
    return absl::InvalidArgumentError("serial: 1 to 20 bytes in hex, e.g. 3a9f...");
  }
  return absl::OkStatus();
}

absl::Status CheckRevocation(int reason, std::optional<absl::Time> invalidity_time,
                             const std::string& comment) {
  switch (reason) {
    case 0: case 1: case 3: case 4: case 5: case 9:
      break;
    case storage::kReasonCertificateHold:
      return absl::InvalidArgumentError(
          "reason: CERTIFICATE_HOLD is not a revocation: use HoldCertificate");
    default:
      return absl::InvalidArgumentError(absl::StrCat(
          "reason: ", reason, " is not a reason fleetca revokes a certificate for (use "
          "UNSPECIFIED, KEY_COMPROMISE, AFFILIATION_CHANGED, SUPERSEDED, "
          "CESSATION_OF_OPERATION or PRIVILEGE_WITHDRAWN)"));
  }
  if (invalidity_time && *invalidity_time > absl::Now()) {
    return absl::InvalidArgumentError("invalidity_time: must not be in the future");
  }
  RETURN_IF_ERROR(registry::ValidateFreeText("comment", comment, kMaxCommentBytes));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<storage::RevocationOutcome> Revocations::Revoke(
    const std::string& serial, const std::string& issuer_id, int reason,
    std::optional<absl::Time> invalidity_time, const std::string& comment,
    const RequestContext& ctx) {
  RETURN_IF_ERROR(CheckSerial(serial));
  RETURN_IF_ERROR(CheckRevocation(reason, invalidity_time, comment));
  ASSIGN_OR_RETURN(storage::RevocationOutcome out,
                   store_.Revoke(serial, issuer_id, reason, invalidity_time, comment, ctx));
  if (out.changed && authenticator_ != nullptr) {
    authenticator_->MarkRevoked("", {pki::SerialToHex(serial)});
  }
  return out;
}

absl::StatusOr<storage::RevocationOutcome> Revocations::Hold(const std::string& serial,
                                                             const std::string& issuer_id,
                                                             const std::string& comment,
                                                             const RequestContext& ctx) {
  RETURN_IF_ERROR(CheckSerial(serial));
  RETURN_IF_ERROR(registry::ValidateFreeText("comment", comment, kMaxCommentBytes));
  return store_.Hold(serial, issuer_id, comment, ctx);
}

absl::StatusOr<storage::RevocationOutcome> Revocations::Release(const std::string& serial,
                                                                const std::string& issuer_id,
                                                                const std::string& comment,
                                                                const RequestContext& ctx) {
  RETURN_IF_ERROR(CheckSerial(serial));
  RETURN_IF_ERROR(registry::ValidateFreeText("comment", comment, kMaxCommentBytes));
  return store_.Release(serial, issuer_id, comment, ctx);
}

absl::StatusOr<storage::DeviceRevocationOutcome> Revocations::RevokeDevice(
    const std::string& comm_id, int reason, std::optional<absl::Time> invalidity_time,
    const std::string& comment, bool suspend, const RequestContext& ctx) {
  RETURN_IF_ERROR(registry::ValidateCommId("comm_id", comm_id));
  RETURN_IF_ERROR(CheckRevocation(reason, invalidity_time, comment));
  ASSIGN_OR_RETURN(storage::DeviceRevocationOutcome out,
                   store_.RevokeDevice(comm_id, reason, invalidity_time, comment, suspend, ctx));
  if (authenticator_ != nullptr && !out.revoked_serials.empty()) {
    std::vector<std::string> hex;
    for (const std::string& s : out.revoked_serials) hex.push_back(pki::SerialToHex(s));
    authenticator_->MarkRevoked("", hex);
  }
  return out;
}

absl::StatusOr<storage::RevocationState> Revocations::Get(const std::string& serial,
                                                          const std::string& issuer_id) {
  RETURN_IF_ERROR(CheckSerial(serial));
  return store_.Get(serial, issuer_id);
}

}  // namespace fleetca::revocation
