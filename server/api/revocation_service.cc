#include "server/api/revocation_service.h"

#include <optional>
#include <string>

#include "absl/strings/str_cat.h"
#include "pki/certificate_builder.h"
#include "pki/crl_reader.h"
#include "pki/openssl_util.h"
#include "server/api/call_context.h"
#include "server/api/device_registry_service.h"
#include "server/api/issuance_service.h"
#include "server/api/proto_convert.h"
#include "server/api/status.h"

namespace fleetca::api {
namespace {

absl::StatusOr<std::string> Serial(const std::string& hex) {
  if (hex.empty()) return absl::InvalidArgumentError("serial: required");
  return SerialField("serial", hex);
}

void ToProto(const storage::RevocationEntry& e, v1::RevocationInfo* out) {
  out->set_reason(static_cast<v1::RevocationReason>(e.reason));  // RFC 5280 codes
  SetTimestamp(e.revoke_time, out->mutable_revoke_time());
  if (e.invalidity_time) SetTimestamp(*e.invalidity_time, out->mutable_invalidity_time());
  out->set_comment(e.comment);
  out->set_from_imported_crl(e.from_imported_crl);
}

// SetCrlBody ends GetCrl's answer for a CRL of this number: not_modified when the caller
// has it already (newer_than_crl_number; never for a CRL without a number, which the caller
// cannot name), else the CRL in the encoding asked for.
grpc::Status SetCrlBody(const v1::GetCrlRequest& request, std::optional<int64_t> crl_number,
                        const std::string& der, v1::GetCrlResponse* response) {
  if (request.newer_than_crl_number() > 0 && crl_number &&
      *crl_number <= request.newer_than_crl_number()) {
    response->set_not_modified(true);
    return grpc::Status::OK;
  }
  if (request.encoding() == v1::CRL_ENCODING_PEM) {
    response->set_crl_pem(pki::DerToPem(der, "X509 CRL"));
  } else {
    response->set_crl_der(der);
  }
  return grpc::Status::OK;
}

grpc::Status ImportedCrlResponse(const v1::GetCrlRequest& request,
                                 const storage::ImportedCrl& crl, v1::GetCrlResponse* response) {
  if (request.delta()) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                        "delta: an external CA's CRL is imported whole; there is no delta CRL");
  }
  response->set_issuer_id(request.issuer_id());
  response->set_crl_number(crl.crl_number.value_or(0));
  SetTimestamp(crl.this_update, response->mutable_this_update());
  if (crl.next_update) SetTimestamp(*crl.next_update, response->mutable_next_update());
  response->set_crl_sha256(pki::Sha256Hex(crl.der));
  if (auto parsed = pki::CrlEntryCount(crl.der); parsed.ok()) response->set_entry_count(*parsed);
  return SetCrlBody(request, crl.crl_number, crl.der, response);
}

}  // namespace

grpc::Status RevocationService::ImportCrl(grpc::ServerContext* context,
                                          const v1::ImportCrlRequest* request,
                                          v1::ImportCrlResponse* response) {
  if (external_cas_ == nullptr) {
    return grpc::Status(grpc::StatusCode::UNIMPLEMENTED,
                        "external CAs are not available on this server");
  }
  ca::CrlInput in;
  switch (request->crl_case()) {
    case v1::ImportCrlRequest::kCrlPem:
      in.crl_pem = request->crl_pem();
      break;
    case v1::ImportCrlRequest::kCrlDer:
      in.crl_der = request->crl_der();
      break;
    default:
      break;
  }
  auto imported = external_cas_->ImportCrl(request->external_ca_id(), in,
                                           RequestContextFor(*context));
  if (!imported.ok()) return ToGrpcStatus(imported.status());
  response->set_crl_number(imported->crl.crl_number.value_or(0));
  SetTimestamp(imported->crl.this_update, response->mutable_this_update());
  if (imported->crl.next_update) {
    SetTimestamp(*imported->crl.next_update, response->mutable_next_update());
  }
  response->set_entry_count(static_cast<int64_t>(imported->crl.entries.size()));
  response->set_newly_revoked_count(imported->outcome.newly_revoked);
  response->set_already_imported(imported->outcome.already_imported);
  return grpc::Status::OK;
}

grpc::Status RevocationService::Certificate(const storage::RevocationState& state,
                                            v1::Certificate* out) {
  auto c = issuance_.GetBySerial(state.serial, state.issuer_id);
  if (!c.ok()) return ToGrpcStatus(c.status());
  ToProto(*c, out);
  if (state.revocation) ToProto(*state.revocation, out->mutable_revocation());
  return grpc::Status::OK;
}

grpc::Status RevocationService::RevokeCertificate(grpc::ServerContext* context,
                                                  const v1::RevokeCertificateRequest* request,
                                                  v1::RevokeCertificateResponse* response) {
  auto serial = Serial(request->serial());
  if (!serial.ok()) return ToGrpcStatus(serial.status());
  if (!v1::RevocationReason_IsValid(request->reason())) return Invalid("reason: unknown value");
  std::optional<absl::Time> invalidity;
  if (request->has_invalidity_time()) invalidity = FromTimestamp(request->invalidity_time());
  auto out = revocations_.Revoke(*serial, request->issuer_id(), request->reason(), invalidity,
                                 request->comment(), RequestContextFor(*context));
  if (!out.ok()) return ToGrpcStatus(out.status());
  if (metrics_ != nullptr && out->changed) metrics_->Revoked(request->reason(), 1);
  response->set_already_revoked(!out->changed);
  return Certificate(out->state, response->mutable_certificate());
}

grpc::Status RevocationService::RevokeDeviceCertificates(
    grpc::ServerContext* context, const v1::RevokeDeviceCertificatesRequest* request,
    v1::RevokeDeviceCertificatesResponse* response) {
  if (!v1::RevocationReason_IsValid(request->reason())) return Invalid("reason: unknown value");
  std::optional<absl::Time> invalidity;
  if (request->has_invalidity_time()) invalidity = FromTimestamp(request->invalidity_time());
  auto out = revocations_.RevokeDevice(request->comm_id(), request->reason(), invalidity,
                                       request->comment(), request->suspend_device(),
                                       RequestContextFor(*context));
  if (!out.ok()) return ToGrpcStatus(out.status());
  if (metrics_ != nullptr) {
    metrics_->Revoked(request->reason(), static_cast<int64_t>(out->revoked_serials.size()));
  }
  for (size_t i = 0; i < out->revoked_serials.size(); ++i) {
    auto c = issuance_.GetBySerial(out->revoked_serials[i], out->revoked_issuers[i]);
    if (!c.ok()) return ToGrpcStatus(c.status());
    v1::Certificate* cert = response->add_revoked_certificates();
    ToProto(*c, cert);
    cert->clear_certificate_pem();
    cert->clear_chain_pem();
  }
  auto device = registry_.Get(request->comm_id());
  if (!device.ok()) return ToGrpcStatus(device.status());
  ToProto(*device, response->mutable_device());
  return grpc::Status::OK;
}

grpc::Status RevocationService::HoldCertificate(grpc::ServerContext* context,
                                                const v1::HoldCertificateRequest* request,
                                                v1::HoldCertificateResponse* response) {
  auto serial = Serial(request->serial());
  if (!serial.ok()) return ToGrpcStatus(serial.status());
  auto out = revocations_.Hold(*serial, request->issuer_id(), request->comment(),
                               RequestContextFor(*context));
  if (!out.ok()) return ToGrpcStatus(out.status());
  if (metrics_ != nullptr && out->changed) metrics_->Revoked(v1::REVOCATION_REASON_CERTIFICATE_HOLD, 1);
  response->set_already_on_hold(!out->changed);
  return Certificate(out->state, response->mutable_certificate());
}

grpc::Status RevocationService::ReleaseCertificateHold(
    grpc::ServerContext* context, const v1::ReleaseCertificateHoldRequest* request,
    v1::ReleaseCertificateHoldResponse* response) {
  auto serial = Serial(request->serial());
  if (!serial.ok()) return ToGrpcStatus(serial.status());
  auto out = revocations_.Release(*serial, request->issuer_id(), request->comment(),
                                  RequestContextFor(*context));
  if (!out.ok()) return ToGrpcStatus(out.status());
  response->set_was_on_hold(out->changed);
  return Certificate(out->state, response->mutable_certificate());
}

grpc::Status RevocationService::GetCrl(grpc::ServerContext*, const v1::GetCrlRequest* request,
                                       v1::GetCrlResponse* response) {
  if (request->issuer_id().empty()) return Invalid("issuer_id: required");
  if (!v1::CrlEncoding_IsValid(request->encoding())) return Invalid("encoding: unknown value");
  if (request->newer_than_crl_number() < 0) {
    return Invalid("newer_than_crl_number: must not be negative");
  }
  auto crl = crls_.Latest(request->issuer_id(), request->delta());
  if (crl.status().code() == absl::StatusCode::kNotFound && external_cas_ != nullptr) {
    // Not one of fleetca's issuers: an external CA's imported CRL, perhaps.
    auto imported = external_cas_->ImportedCrl(request->issuer_id());
    if (imported.ok()) return ImportedCrlResponse(*request, *imported, response);
    if (imported.status().code() != absl::StatusCode::kNotFound) {
      return ToGrpcStatus(imported.status());
    }
  }
  if (!crl.ok()) return ToGrpcStatus(crl.status());
  response->set_issuer_id((*crl)->issuer_id);
  response->set_delta((*crl)->base_crl_number != 0);
  response->set_crl_number((*crl)->crl_number);
  response->set_base_crl_number((*crl)->base_crl_number);
  SetTimestamp((*crl)->this_update, response->mutable_this_update());
  SetTimestamp((*crl)->next_update, response->mutable_next_update());
  response->set_entry_count((*crl)->entries);
  response->set_crl_sha256((*crl)->sha256_hex);
  return SetCrlBody(*request, (*crl)->crl_number, (*crl)->der, response);
}

grpc::Status RevocationService::GetRevocationStatus(
    grpc::ServerContext* context, const v1::GetRevocationStatusRequest* request,
    v1::GetRevocationStatusResponse* response) {
  std::string serial;
  if (request->has_sha256_fingerprint()) {
    auto fp = FingerprintField("sha256_fingerprint", request->sha256_fingerprint());
    if (!fp.ok()) return ToGrpcStatus(fp.status());
    auto c = issuance_.GetByFingerprint(*fp);
    if (!c.ok()) return ToGrpcStatus(c.status());
    serial = c->record.serial;
  } else {
    auto s = Serial(request->serial());
    if (!s.ok()) return ToGrpcStatus(s.status());
    serial = *s;
  }
  auto state = revocations_.Get(serial, request->issuer_id());
  if (!state.ok()) return ToGrpcStatus(state.status());
  // A device reads its own certificates' status only.
  if (absl::Status st = RequireSelfOrRole(RequestContextFor(*context),
                                          {"admin", "viewer", "broker", "provisioner"},
                                          state->comm_id, "read a revocation status");
      !st.ok()) {
    return ToGrpcStatus(st);
  }
  response->set_serial(pki::SerialToHex(state->serial));
  response->set_issuer_id(state->issuer_id);
  switch (state->status) {
    case storage::CertificateStatus::kRevoked:
      response->set_status(v1::CERTIFICATE_STATUS_REVOKED);
      break;
    case storage::CertificateStatus::kOnHold:
      response->set_status(v1::CERTIFICATE_STATUS_ON_HOLD);
      break;
    default:
      response->set_status(state->not_after <= absl::Now() ? v1::CERTIFICATE_STATUS_EXPIRED
                                                           : v1::CERTIFICATE_STATUS_ACTIVE);
      break;
  }
  if (state->revocation) ToProto(*state->revocation, response->mutable_revocation());
  response->set_published_crl_number(state->published_crl_number);
  return grpc::Status::OK;
}

}  // namespace fleetca::api
