#include "server/api/issuance_service.h"

#include "absl/strings/str_cat.h"
#include "pki/certificate_builder.h"
#include "pki/pkcs12.h"
#include "server/api/call_context.h"
#include "server/api/certificate_authority_service.h"
#include "server/api/proto_convert.h"
#include "server/api/status.h"

namespace fleetca::api {
namespace {

using storage::CertificateKind;
using storage::CertificateStatus;

// MayRead narrows the table's "read a certificate" for the roles whose rights depend on
// the certificate: a provisioner reads the certificates it requested, a device its own.
absl::Status MayRead(const RequestContext& ctx, const storage::CertificateRecord& r) {
  if (ctx.role == "provisioner") {
    if (r.requester == ctx.actor) return absl::OkStatus();
    return absl::PermissionDeniedError(absl::StrCat(
        "role provisioner (", ctx.actor, ") may read only the certificates it requested"));
  }
  if (ctx.role == "device") {
    if (!r.comm_id.empty() && r.comm_id == ctx.actor) return absl::OkStatus();
    return absl::PermissionDeniedError(
        absl::StrCat("role device (", ctx.actor, ") may read only its own certificates"));
  }
  return absl::OkStatus();  // admin, viewer, broker: every certificate (the table decides)
}

v1::CertificateKind ToProtoKind(CertificateKind k) {
  switch (k) {
    case CertificateKind::kDevice:
    case CertificateKind::kExternalDevice:
      return v1::CERTIFICATE_KIND_DEVICE;
    case CertificateKind::kBroker:
      return v1::CERTIFICATE_KIND_BROKER;
    case CertificateKind::kIdentity:
      return v1::CERTIFICATE_KIND_IDENTITY;
    case CertificateKind::kServer:
      return v1::CERTIFICATE_KIND_SERVER;
  }
  return v1::CERTIFICATE_KIND_UNSPECIFIED;
}

// FillCsr copies the CSR oneof (PEM or DER) into req. INVALID_ARGUMENT when absent.
template <typename Request>
grpc::Status FillCsr(const Request& in, issuance::SignRequest* req) {
  if (in.has_csr_pem()) {
    req->csr = in.csr_pem();
    req->csr_is_pem = true;
    req->csr_field = "csr_pem";
  } else if (in.has_csr_der()) {
    req->csr = in.csr_der();
    req->csr_is_pem = false;
    req->csr_field = "csr_der";
  } else {
    return Invalid("csr_pem: a CSR is required (csr_pem or csr_der)");
  }
  if (in.has_validity()) {
    auto d = FromDuration("validity", in.validity());
    if (!d.ok()) return ToGrpcStatus(d.status());
    req->validity = *d;
  }
  req->request_id = in.request_id();
  return grpc::Status::OK;
}

}  // namespace

void ToProto(const issuance::IssuedCertificate& c, v1::Certificate* out) {
  const storage::CertificateRecord& r = c.record;
  out->set_serial(pki::SerialToHex(r.serial));
  out->set_sha256_fingerprint(pki::SerialToHex(r.fingerprint));
  out->set_issuer_id(r.issuer_id);
  out->set_kind(ToProtoKind(r.kind));
  out->set_external(r.kind == CertificateKind::kExternalDevice);
  out->set_comm_id(r.comm_id);
  out->set_broker_id(r.broker_name);
  out->set_identity_name(r.identity_name);
  out->set_subject(r.subject);
  for (const auto& d : r.dns_names) out->add_dns_names(d);
  for (const auto& ip : r.ip_addresses) out->add_ip_addresses(ip);
  SetTimestamp(r.not_before, out->mutable_not_before());
  SetTimestamp(r.not_after, out->mutable_not_after());
  switch (r.status) {
    case CertificateStatus::kRevoked:
      out->set_status(v1::CERTIFICATE_STATUS_REVOKED);
      break;
    case CertificateStatus::kOnHold:
      out->set_status(v1::CERTIFICATE_STATUS_ON_HOLD);
      break;
    default:
      out->set_status(r.not_after <= absl::Now() ? v1::CERTIFICATE_STATUS_EXPIRED
                                                 : v1::CERTIFICATE_STATUS_ACTIVE);
  }
  out->set_profile(r.profile);
  out->set_request_id(r.request_id);
  if (!r.renewed_from.empty()) out->set_renewed_from_serial(pki::SerialToHex(r.renewed_from));
  out->set_external(r.kind == CertificateKind::kExternalDevice);
  out->set_key_algorithm(ToProtoAlgorithm(r.key_algorithm));
  out->set_certificate_pem(c.certificate_pem);
  out->set_chain_pem(c.chain_pem);
  SetTimestamp(r.create_time, out->mutable_create_time());
  out->set_requested_by(r.requester);
}

grpc::ServerUnaryReactor* IssuanceService::SignDeviceCsr(grpc::CallbackServerContext* context,
                                                         const v1::SignDeviceCsrRequest* request,
                                                         v1::SignDeviceCsrResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  issuance::SignRequest req;
  req.subject_id = request->comm_id();
  req.profile = request->profile();
  if (grpc::Status st = FillCsr(*request, &req); !st.ok()) {
    reactor->Finish(st);
    return reactor;
  }
  // The call (context, response) lives until Finish.
  issuance_.SignDeviceCsrAsync(
      req, RequestContextFor(*context),
      [this, reactor, response](absl::StatusOr<issuance::IssuedCertificate> issued) {
        if (metrics_ != nullptr) metrics_->Issued("device", issued);
        if (!issued.ok()) {
          reactor->Finish(ToGrpcStatus(issued.status()));
          return;
        }
        ToProto(*issued, response->mutable_certificate());
        response->set_replayed(issued->replayed);
        reactor->Finish(grpc::Status::OK);
      });
  return reactor;
}

grpc::Status IssuanceService::SignBrokerCsr(grpc::ServerContext* context,
                                            const v1::SignBrokerCsrRequest* request,
                                            v1::SignBrokerCsrResponse* response) {
  issuance::SignRequest req;
  req.subject_id = request->broker_id();
  req.profile = request->profile();
  req.dns_names.assign(request->dns_names().begin(), request->dns_names().end());
  req.ip_addresses.assign(request->ip_addresses().begin(), request->ip_addresses().end());
  if (grpc::Status st = FillCsr(*request, &req); !st.ok()) return st;
  auto issued = issuance_.SignBrokerCsr(req, RequestContextFor(*context));
  if (metrics_ != nullptr) metrics_->Issued("broker", issued);
  if (!issued.ok()) return ToGrpcStatus(issued.status());
  ToProto(*issued, response->mutable_certificate());
  response->set_replayed(issued->replayed);
  return grpc::Status::OK;
}

grpc::Status IssuanceService::RenewDeviceCertificate(
    grpc::ServerContext* context, const v1::RenewDeviceCertificateRequest* request,
    v1::RenewDeviceCertificateResponse* response) {
  if (request->revoke_previous()) {
    return grpc::Status(grpc::StatusCode::UNIMPLEMENTED,
                        "revoke_previous: revocation is not available in this version");
  }
  // A device (authenticated by its current certificate) renews only itself.
  const RequestContext ctx = RequestContextFor(*context);
  if (absl::Status st = RequireSelfOrRole(ctx, {"admin", "provisioner"}, request->comm_id(),
                                          "renew a device certificate");
      !st.ok()) {
    return ToGrpcStatus(st);
  }
  issuance::SignRequest req;
  req.subject_id = request->comm_id();
  if (grpc::Status st = FillCsr(*request, &req); !st.ok()) return st;
  if (!request->previous_serial().empty()) {  // empty: the device's newest valid certificate
    auto serial = SerialField("previous_serial", request->previous_serial());
    if (!serial.ok()) return ToGrpcStatus(serial.status());
    req.renew_from_serial = *serial;
  }
  auto issued = issuance_.RenewDeviceCertificate(req, ctx);
  if (metrics_ != nullptr) metrics_->Issued("device_renewal", issued);
  if (!issued.ok()) return ToGrpcStatus(issued.status());
  ToProto(*issued, response->mutable_certificate());
  response->set_replayed(issued->replayed);
  return grpc::Status::OK;
}

grpc::Status IssuanceService::GetCertificate(grpc::ServerContext* context,
                                             const v1::GetCertificateRequest* request,
                                             v1::GetCertificateResponse* response) {
  absl::StatusOr<issuance::IssuedCertificate> c;
  if (request->has_serial()) {
    auto serial = SerialField("serial", request->serial());
    if (!serial.ok()) return ToGrpcStatus(serial.status());
    c = issuance_.GetBySerial(*serial, request->issuer_id());
  } else if (request->has_sha256_fingerprint()) {
    auto fp = FingerprintField("sha256_fingerprint", request->sha256_fingerprint());
    if (!fp.ok()) return ToGrpcStatus(fp.status());
    c = issuance_.GetByFingerprint(*fp);
  } else {
    return Invalid("serial: a serial or a sha256_fingerprint is required");
  }
  if (!c.ok()) return ToGrpcStatus(c.status());
  if (absl::Status st = MayRead(RequestContextFor(*context), c->record); !st.ok()) {
    return ToGrpcStatus(st);
  }
  ToProto(*c, response->mutable_certificate());
  return grpc::Status::OK;
}

grpc::Status IssuanceService::ListCertificates(grpc::ServerContext* context,
                                               const v1::ListCertificatesRequest* request,
                                               v1::ListCertificatesResponse* response) {
  issuance::ListCertificatesQuery q;
  // A provisioner lists the certificates it requested (see MayRead).
  const RequestContext ctx = RequestContextFor(*context);
  if (ctx.role == "provisioner") q.filter.requester = ctx.actor;
  q.page_size = request->page_size();
  q.page_token = request->page_token();
  q.filter.comm_id = request->comm_id();
  q.filter.issuer_id = request->issuer_id();
  q.filter.broker_name = request->broker_id();
  switch (request->kind()) {
    case v1::CERTIFICATE_KIND_UNSPECIFIED:
      break;
    case v1::CERTIFICATE_KIND_DEVICE:
      q.filter.kind = CertificateKind::kDevice;
      break;
    case v1::CERTIFICATE_KIND_BROKER:
      q.filter.kind = CertificateKind::kBroker;
      break;
    case v1::CERTIFICATE_KIND_IDENTITY:
      q.filter.kind = CertificateKind::kIdentity;
      break;
    case v1::CERTIFICATE_KIND_SERVER:
      q.filter.kind = CertificateKind::kServer;
      break;
    default:
      return Invalid("kind: unknown value");
  }
  switch (request->status()) {
    case v1::CERTIFICATE_STATUS_UNSPECIFIED:
      break;
    case v1::CERTIFICATE_STATUS_ACTIVE:
      q.filter.status = CertificateStatus::kIssued;
      q.filter.expires_after = absl::Now();
      break;
    case v1::CERTIFICATE_STATUS_REVOKED:
      q.filter.status = CertificateStatus::kRevoked;
      break;
    case v1::CERTIFICATE_STATUS_ON_HOLD:
      q.filter.status = CertificateStatus::kOnHold;
      break;
    case v1::CERTIFICATE_STATUS_EXPIRED:
      q.filter.status = CertificateStatus::kIssued;
      q.filter.expires_before = absl::Now();
      break;
    default:
      return Invalid("status: unknown value");
  }
  if (request->has_expires_after()) q.filter.expires_after = FromTimestamp(request->expires_after());
  if (request->has_expires_before()) q.filter.expires_before = FromTimestamp(request->expires_before());
  if (!request->identity_name().empty() || !request->requested_by().empty()) {
    return grpc::Status(grpc::StatusCode::UNIMPLEMENTED,
                        "identity_name, requested_by: filters not available in this version");
  }
  auto page = issuance_.List(q);
  if (!page.ok()) return ToGrpcStatus(page.status());
  for (auto& record : page->certificates) {
    issuance::IssuedCertificate c;
    c.certificate_pem = pki::DerToPem(record.der, "CERTIFICATE");
    c.record = std::move(record);
    ToProto(c, response->add_certificates());
  }
  response->set_next_page_token(page->next_page_token);
  return grpc::Status::OK;
}

grpc::Status IssuanceService::ListProfiles(grpc::ServerContext*,
                                           const v1::ListProfilesRequest* request,
                                           v1::ListProfilesResponse* response) {
  for (const auto& p : issuance_.profiles()) {
    const v1::CertificateKind kind = ToProtoKind(p.kind);
    if (request->kind() != v1::CERTIFICATE_KIND_UNSPECIFIED && request->kind() != kind) continue;
    v1::Profile* out = response->add_profiles();
    out->set_name(p.name);
    out->set_kind(kind);
    out->set_is_default(p.is_default);
    out->set_description(p.description);
    out->mutable_default_validity()->set_seconds(absl::ToInt64Seconds(p.default_validity));
    out->mutable_max_validity()->set_seconds(absl::ToInt64Seconds(p.max_validity));
    out->set_subject_organization(p.organization);
    out->set_subject_organizational_unit(p.organizational_unit);
    for (auto a : {v1::KEY_ALGORITHM_ECDSA_P256, v1::KEY_ALGORITHM_ECDSA_P384,
                   v1::KEY_ALGORITHM_RSA_2048, v1::KEY_ALGORITHM_RSA_3072,
                   v1::KEY_ALGORITHM_RSA_4096, v1::KEY_ALGORITHM_ED25519}) {
      out->add_allowed_key_algorithms(a);
    }
  }
  return grpc::Status::OK;
}

// ExportPkcs12 ------------------------------------------------------------------------------
// Checks, in order: the request's fields (serial, private_key_pem present, password 1 to 128
// bytes, pkcs12_encryption known); the certificate exists (and is issuer_id's when given);
// the caller may read it (MayRead, as GetCertificate); it is valid now (not revoked, on hold
// or expired); then pki::BuildKeyStorePkcs12 parses the key, checks that it is the
// certificate's and builds the file. Nothing is written to the database and nothing is
// audited (GetCertificate is not either); no message repeats the key or the password.

namespace {

// Pkcs12Chain: the certificates of a chain_pem (the issuer first, the root last), parsed.
absl::StatusOr<std::vector<pki::X509Ptr>> Pkcs12Chain(const std::string& chain_pem) {
  if (chain_pem.empty()) return std::vector<pki::X509Ptr>{};
  auto chain = pki::CertificatesFromPem(chain_pem);
  if (!chain.ok()) {
    return absl::InternalError(absl::StrCat("the stored chain does not parse: ",
                                            chain.status().message()));
  }
  return chain;
}

}  // namespace

grpc::Status IssuanceService::ExportPkcs12(grpc::ServerContext* context,
                                           const v1::ExportPkcs12Request* request,
                                           v1::ExportPkcs12Response* response) {
  // 1. The request's own fields, before any lookup.
  if (request->serial().empty()) return Invalid("serial: is required");
  auto serial = SerialField("serial", request->serial());
  if (!serial.ok()) return ToGrpcStatus(serial.status());
  if (request->private_key_pem().empty()) {
    return Invalid("private_key_pem: is required (the certificate's private key, PEM)");
  }
  if (request->password().empty()) return Invalid("password: is required (1 to 128 bytes)");
  if (request->password().size() > pki::kMaxPkcs12PasswordBytes) {
    return Invalid(absl::StrCat("password: at most ", pki::kMaxPkcs12PasswordBytes, " bytes, got ",
                                request->password().size()));
  }
  auto encryption = Pkcs12EncryptionField("pkcs12_encryption", request->pkcs12_encryption());
  if (!encryption.ok()) return ToGrpcStatus(encryption.status());

  // 2. The certificate, narrowed to issuer_id when given (as GetCertificate: a serial that
  // external CAs share needs it; another issuer's serial is NOT_FOUND).
  auto c = issuance_.GetBySerial(*serial, request->issuer_id());
  if (!c.ok()) return ToGrpcStatus(c.status());
  const storage::CertificateRecord& r = c->record;
  const std::string serial_hex = pki::SerialToHex(r.serial);

  // 3. Who may: admin any, provisioner what it requested, device its own (as GetCertificate).
  if (absl::Status st = MayRead(RequestContextFor(*context), r); !st.ok()) {
    return ToGrpcStatus(st);
  }

  // 4. Only a valid certificate is worth a key store.
  if (r.status == CertificateStatus::kRevoked) {
    return ToGrpcStatus(absl::FailedPreconditionError(absl::StrCat(
        "certificate ", serial_hex, " is revoked: only a valid certificate is exported")));
  }
  if (r.status == CertificateStatus::kOnHold) {
    return ToGrpcStatus(absl::FailedPreconditionError(absl::StrCat(
        "certificate ", serial_hex,
        " is on hold: release it (ReleaseCertificateHold) before exporting it")));
  }
  if (r.status != CertificateStatus::kIssued) {
    return ToGrpcStatus(absl::FailedPreconditionError(absl::StrCat(
        "certificate ", serial_hex, " is ", storage::CertificateStatusName(r.status),
        ": only a valid certificate is exported")));
  }
  if (r.not_after <= absl::Now()) {
    return ToGrpcStatus(absl::FailedPreconditionError(absl::StrCat(
        "certificate ", serial_hex, " has expired (notAfter ",
        absl::FormatTime(absl::RFC3339_sec, r.not_after, absl::UTCTimeZone()),
        "): only a valid certificate is exported")));
  }

  // 5. The file: the certificate, the issuing CAs up to the root unless exclude_chain, and
  // the key (pki checks that it parses and is the certificate's).
  auto certificate = pki::CertificateFromDer(r.der);
  if (!certificate.ok()) {
    return ToGrpcStatus(absl::InternalError(absl::StrCat(
        "certificate ", serial_hex, ": the stored certificate does not parse")));
  }
  std::vector<pki::X509Ptr> chain;
  if (!request->exclude_chain()) {
    auto parsed = Pkcs12Chain(c->chain_pem);
    if (!parsed.ok()) return ToGrpcStatus(parsed.status());
    chain = std::move(*parsed);
  }
  std::vector<const X509*> chain_ptrs;
  chain_ptrs.reserve(chain.size());
  for (const auto& x : chain) chain_ptrs.push_back(x.get());
  auto keystore = pki::BuildKeyStorePkcs12(certificate->get(), chain_ptrs,
                                           request->private_key_pem(), request->password(),
                                           request->friendly_name(), *encryption);
  // pki's field names (private_key_pem, password, friendly_name) are the request's.
  if (!keystore.ok()) return ToGrpcStatus(keystore.status());
  response->set_pkcs12(std::move(*keystore));
  return grpc::Status::OK;
}

grpc::Status IssuanceService::RegisterExternalCertificate(
    grpc::ServerContext* context, const v1::RegisterExternalCertificateRequest* request,
    v1::RegisterExternalCertificateResponse* response) {
  if (external_cas_ == nullptr) {
    return grpc::Status(grpc::StatusCode::UNIMPLEMENTED,
                        "external CAs are not available on this server");
  }
  ca::ExternalCertificateInput in;
  in.comm_id = request->comm_id();
  switch (request->certificate_case()) {
    case v1::RegisterExternalCertificateRequest::kCertificatePem:
      in.certificate_pem = request->certificate_pem();
      break;
    case v1::RegisterExternalCertificateRequest::kCertificateDer:
      in.certificate_der = request->certificate_der();
      break;
    default:
      break;
  }
  in.chain_pem = request->chain_pem();
  auto registered = external_cas_->RegisterCertificate(in, RequestContextFor(*context));
  if (!registered.ok()) return ToGrpcStatus(registered.status());
  issuance::IssuedCertificate c;
  c.certificate_pem = pki::DerToPem(registered->record.der, "CERTIFICATE");
  c.chain_pem = request->chain_pem();
  c.record = std::move(registered->record);
  ToProto(c, response->mutable_certificate());
  response->set_already_registered(registered->already_registered);
  return grpc::Status::OK;
}

}  // namespace fleetca::api
