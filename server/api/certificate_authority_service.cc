#include "server/api/certificate_authority_service.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/page_token.h"
#include "pki/keys.h"
#include "pki/openssl_util.h"
#include "pki/pkcs12.h"
#include "server/api/call_context.h"
#include "server/api/proto_convert.h"
#include "server/api/status.h"
#include "server/registry/registry.h"

namespace fleetca::api {
namespace {

pki::SubjectName FromProtoName(const v1::DistinguishedName& n) {
  pki::SubjectName s;
  s.common_name = n.common_name();
  s.organization = n.organization();
  s.organizational_unit = n.organizational_unit();
  s.country = n.country();
  return s;
}

}  // namespace

std::optional<pki::KeyAlgorithm> FromProtoAlgorithm(v1::KeyAlgorithm a) {
  switch (a) {
    case v1::KEY_ALGORITHM_UNSPECIFIED:
    case v1::KEY_ALGORITHM_ECDSA_P256:
      return pki::KeyAlgorithm::kEcdsaP256;
    case v1::KEY_ALGORITHM_ECDSA_P384:
      return pki::KeyAlgorithm::kEcdsaP384;
    case v1::KEY_ALGORITHM_RSA_2048:
      return pki::KeyAlgorithm::kRsa2048;
    case v1::KEY_ALGORITHM_RSA_3072:
      return pki::KeyAlgorithm::kRsa3072;
    case v1::KEY_ALGORITHM_RSA_4096:
      return pki::KeyAlgorithm::kRsa4096;
    case v1::KEY_ALGORITHM_ED25519:
      return pki::KeyAlgorithm::kEd25519;
    default:
      return std::nullopt;
  }
}

v1::KeyAlgorithm ToProtoAlgorithm(const std::string& name) {
  auto a = pki::ParseKeyAlgorithmName(name);
  if (!a.ok()) return v1::KEY_ALGORITHM_OTHER;
  switch (*a) {
    case pki::KeyAlgorithm::kEcdsaP256:
      return v1::KEY_ALGORITHM_ECDSA_P256;
    case pki::KeyAlgorithm::kEcdsaP384:
      return v1::KEY_ALGORITHM_ECDSA_P384;
    case pki::KeyAlgorithm::kRsa2048:
      return v1::KEY_ALGORITHM_RSA_2048;
    case pki::KeyAlgorithm::kRsa3072:
      return v1::KEY_ALGORITHM_RSA_3072;
    case pki::KeyAlgorithm::kRsa4096:
      return v1::KEY_ALGORITHM_RSA_4096;
    case pki::KeyAlgorithm::kEd25519:
      return v1::KEY_ALGORITHM_ED25519;
  }
  return v1::KEY_ALGORITHM_OTHER;
}

std::optional<storage::IssuerPurpose> FromProtoPurpose(v1::IssuerPurpose p) {
  switch (p) {
    case v1::ISSUER_PURPOSE_ROOT:
      return storage::IssuerPurpose::kRoot;
    case v1::ISSUER_PURPOSE_DEVICES:
      return storage::IssuerPurpose::kDevices;
    case v1::ISSUER_PURPOSE_BROKERS:
      return storage::IssuerPurpose::kBrokers;
    case v1::ISSUER_PURPOSE_OPERATORS:
      return storage::IssuerPurpose::kOperators;
    default:
      return std::nullopt;
  }
}

v1::IssuerPurpose ToProtoPurpose(storage::IssuerPurpose p) {
  switch (p) {
    case storage::IssuerPurpose::kRoot:
      return v1::ISSUER_PURPOSE_ROOT;
    case storage::IssuerPurpose::kDevices:
      return v1::ISSUER_PURPOSE_DEVICES;
    case storage::IssuerPurpose::kBrokers:
      return v1::ISSUER_PURPOSE_BROKERS;
    case storage::IssuerPurpose::kOperators:
      return v1::ISSUER_PURPOSE_OPERATORS;
  }
  return v1::ISSUER_PURPOSE_UNSPECIFIED;
}

absl::Status CertificateAuthorityService::ToProto(const storage::Issuer& i, v1::Issuer* out,
                                                 bool with_chain) {
  out->set_issuer_id(i.id);
  out->set_purpose(ToProtoPurpose(i.purpose));
  const bool expired = i.not_after.has_value() && *i.not_after <= absl::Now();
  switch (i.state) {
    case storage::IssuerState::kPending:
      out->set_status(v1::ISSUER_STATUS_PENDING);
      break;
    case storage::IssuerState::kActive:
      out->set_status(expired ? v1::ISSUER_STATUS_EXPIRED : v1::ISSUER_STATUS_ACTIVE);
      break;
    case storage::IssuerState::kRetired:
      out->set_status(expired ? v1::ISSUER_STATUS_EXPIRED : v1::ISSUER_STATUS_RETIRED);
      break;
  }
  out->set_subject(i.subject);
  out->set_key_algorithm(ToProtoAlgorithm(i.algorithm));
  out->set_key_storage(i.key_ciphertext.empty() ? v1::KEY_STORAGE_NONE : v1::KEY_STORAGE_SOFTWARE);
  out->set_kek_id(i.kek_id);
  out->set_parent_issuer_id(i.parent_id);
  if (!i.certificate_der.empty()) {
    out->set_sha256_fingerprint(pki::Sha256Hex(i.certificate_der));
    out->set_certificate_pem(pki::DerToPem(i.certificate_der, "CERTIFICATE"));
    if (with_chain) {
      auto chain = ca_.ChainAbovePem(i);
      if (!chain.ok()) return chain.status();
      out->set_chain_pem(*chain);
    }
  }
  if (!i.csr_der.empty() && i.state == storage::IssuerState::kPending) {
    out->set_csr_pem(pki::DerToPem(i.csr_der, "CERTIFICATE REQUEST"));
  }
  if (i.not_before) SetTimestamp(*i.not_before, out->mutable_not_before());
  if (i.not_after) SetTimestamp(*i.not_after, out->mutable_not_after());
  out->set_crl_url(ca_.CrlUrl(i.id));
  out->set_certificate_url(ca_.CaIssuersUrl(i.id));
  SetTimestamp(i.create_time, out->mutable_create_time());
  if (i.activate_time) SetTimestamp(*i.activate_time, out->mutable_activate_time());
  if (i.retire_time) SetTimestamp(*i.retire_time, out->mutable_retire_time());
  return absl::OkStatus();
}

grpc::Status CertificateAuthorityService::InitializeHierarchy(
    grpc::ServerContext* context, const v1::InitializeHierarchyRequest* request,
    v1::InitializeHierarchyResponse* response) {
  ca::InitOptions options;
  options.subject = FromProtoName(request->subject());
  if (options.subject.common_name.empty()) options.subject.common_name = "fleetca";
  auto root_alg = FromProtoAlgorithm(request->root_key_algorithm());
  if (!root_alg) return Invalid("root_key_algorithm: not supported");
  auto inter_alg = FromProtoAlgorithm(request->intermediate_key_algorithm());
  if (!inter_alg) return Invalid("intermediate_key_algorithm: not supported");
  options.root_algorithm = *root_alg;
  options.intermediate_algorithm = *inter_alg;
  if (request->has_root_validity()) {
    auto d = FromDuration("root_validity", request->root_validity());
    if (!d.ok()) return ToGrpcStatus(d.status());
    options.root_validity = *d;
  }
  if (request->has_intermediate_validity()) {
    auto d = FromDuration("intermediate_validity", request->intermediate_validity());
    if (!d.ok()) return ToGrpcStatus(d.status());
    options.intermediate_validity = *d;
  }
  for (int i = 0; i < request->purposes_size(); ++i) {
    auto p = FromProtoPurpose(request->purposes(i));
    if (!p) return Invalid(absl::StrCat("purposes[", i, "]: unknown purpose"));
    options.purposes.push_back(*p);
  }
  options.offline_root = request->offline_root();
  auto result = ca_.Initialize(options, RequestContextFor(*context));
  if (!result.ok()) return ToGrpcStatus(result.status());
  for (const auto& issuer : result->issuers) {
    if (absl::Status st = ToProto(issuer, response->add_issuers()); !st.ok()) return ToGrpcStatus(st);
  }
  for (const auto& id : result->created) response->add_created_issuer_ids(id);
  return grpc::Status::OK;
}

grpc::Status CertificateAuthorityService::CreateIntermediateCsr(
    grpc::ServerContext* context, const v1::CreateIntermediateCsrRequest* request,
    v1::CreateIntermediateCsrResponse* response) {
  auto purpose = FromProtoPurpose(request->purpose());
  if (!purpose || *purpose == storage::IssuerPurpose::kRoot) {
    return Invalid("purpose: one of ISSUER_PURPOSE_DEVICES, _BROKERS, _OPERATORS");
  }
  auto alg = FromProtoAlgorithm(request->key_algorithm());
  if (!alg) return Invalid("key_algorithm: not supported");
  pki::SubjectName subject = FromProtoName(request->subject());
  if (subject.common_name.empty()) {
    subject.common_name = absl::StrCat("fleetca ", ca::PurposeTitle(*purpose), " CA");
  }
  auto issuer = ca_.CreateIntermediateCsr(*purpose, *alg, subject, RequestContextFor(*context));
  if (!issuer.ok()) return ToGrpcStatus(issuer.status());
  return ToGrpcStatus(ToProto(*issuer, response->mutable_issuer()));
}

grpc::Status CertificateAuthorityService::ImportIntermediateCertificate(
    grpc::ServerContext* context, const v1::ImportIntermediateCertificateRequest* request,
    v1::ImportIntermediateCertificateResponse* response) {
  if (request->issuer_id().empty()) return Invalid("issuer_id: is required");
  if (request->certificate_pem().empty()) return Invalid("certificate_pem: is required");
  std::string root_id;
  auto retired = ca_.ImportIntermediateCertificate(request->issuer_id(), request->certificate_pem(),
                                                   request->chain_pem(), RequestContextFor(*context),
                                                   &root_id);
  if (!retired.ok()) return ToGrpcStatus(retired.status());
  response->set_retired_issuer_id(*retired);
  response->set_root_issuer_id(root_id);
  auto issuer = ca_.GetIssuer(request->issuer_id());
  if (!issuer.ok()) return ToGrpcStatus(issuer.status());
  return ToGrpcStatus(ToProto(*issuer, response->mutable_issuer()));
}

grpc::Status CertificateAuthorityService::ImportIssuer(grpc::ServerContext* context,
                                                       const v1::ImportIssuerRequest* request,
                                                       v1::ImportIssuerResponse* response) {
  auto purpose = FromProtoPurpose(request->purpose());
  if (!purpose || *purpose == storage::IssuerPurpose::kRoot) {
    return Invalid("purpose: one of ISSUER_PURPOSE_DEVICES, _BROKERS, _OPERATORS");
  }
  if (request->has_pkcs11_uri()) {
    return grpc::Status(grpc::StatusCode::UNIMPLEMENTED,
                        "pkcs11_uri: HSM keys are not available in this version");
  }
  if (request->certificate_pem().empty()) return Invalid("certificate_pem: is required");
  if (request->private_key_pem().empty()) return Invalid("private_key_pem: is required");
  std::string retired;
  auto issuer = ca_.ImportIssuer(*purpose, request->certificate_pem(), request->chain_pem(),
                                 request->private_key_pem(), request->private_key_password(),
                                 RequestContextFor(*context), &retired);
  if (!issuer.ok()) return ToGrpcStatus(issuer.status());
  response->set_retired_issuer_id(retired);
  return ToGrpcStatus(ToProto(*issuer, response->mutable_issuer()));
}

grpc::Status CertificateAuthorityService::ListIssuers(grpc::ServerContext*,
                                                      const v1::ListIssuersRequest* request,
                                                      v1::ListIssuersResponse* response) {
  auto size_or = PageSize(request->page_size());
  if (!size_or.ok()) return ToGrpcStatus(size_or.status());
  const int size = *size_or;
  const std::string filters =
      absl::StrCat(static_cast<int>(request->purpose()), "/", static_cast<int>(request->status()));
  auto after = DecodePageToken("issuers", filters, request->page_token());
  if (!after.ok()) return ToGrpcStatus(after.status());
  auto issuers = ca_.ListIssuers();  // ordered by id
  if (!issuers.ok()) return ToGrpcStatus(issuers.status());
  for (const auto& i : *issuers) {
    if (i.id <= *after) continue;
    if (request->purpose() != v1::ISSUER_PURPOSE_UNSPECIFIED &&
        ToProtoPurpose(i.purpose) != request->purpose()) {
      continue;
    }
    v1::Issuer issuer;
    if (absl::Status st = ToProto(i, &issuer, /*with_chain=*/false); !st.ok()) {
      return ToGrpcStatus(st);
    }
    if (request->status() != v1::ISSUER_STATUS_UNSPECIFIED && issuer.status() != request->status()) {
      continue;
    }
    if (response->issuers_size() == size) {
      response->set_next_page_token(
          EncodePageToken("issuers", filters, response->issuers(size - 1).issuer_id()));
      break;
    }
    *response->add_issuers() = std::move(issuer);
  }
  return grpc::Status::OK;
}

grpc::Status CertificateAuthorityService::GetIssuer(grpc::ServerContext*,
                                                    const v1::GetIssuerRequest* request,
                                                    v1::GetIssuerResponse* response) {
  if (request->issuer_id().empty()) return Invalid("issuer_id: is required");
  auto issuer = ca_.GetIssuer(request->issuer_id());
  if (!issuer.ok()) return ToGrpcStatus(issuer.status());
  return ToGrpcStatus(ToProto(*issuer, response->mutable_issuer()));
}

grpc::Status CertificateAuthorityService::GetTrustBundle(grpc::ServerContext*,
                                                         const v1::GetTrustBundleRequest* request,
                                                         v1::GetTrustBundleResponse* response) {
  bool pkcs12 = false;
  switch (request->format()) {
    case v1::TRUST_BUNDLE_FORMAT_UNSPECIFIED:
    case v1::TRUST_BUNDLE_FORMAT_PEM:
      break;
    case v1::TRUST_BUNDLE_FORMAT_PKCS12:
      pkcs12 = true;
      break;
    case v1::TRUST_BUNDLE_FORMAT_JKS:
      // No library in this build writes JKS (Debian packages none for C++), and a
      // hand-written one would be a second, unreviewed keystore format; Java 9 and later
      // read PKCS#12 truststores, which keytool can also convert (-importkeystore).
      return grpc::Status(grpc::StatusCode::UNIMPLEMENTED,
                          "format: TRUST_BUNDLE_FORMAT_JKS is not available in this build; use "
                          "TRUST_BUNDLE_FORMAT_PKCS12 (Java 9 and later read it; keytool "
                          "-importkeystore converts it to JKS)");
    default:
      return Invalid("format: unknown value");
  }
  auto encryption = Pkcs12EncryptionField("pkcs12_encryption", request->pkcs12_encryption());
  if (!encryption.ok()) return ToGrpcStatus(encryption.status());
  if (pkcs12 && request->keystore_password().empty()) {
    return Invalid("keystore_password: is required for TRUST_BUNDLE_FORMAT_PKCS12");
  }
  if (!pkcs12 && !request->keystore_password().empty()) {
    return Invalid("keystore_password: only for a keystore format (TRUST_BUNDLE_FORMAT_PKCS12)");
  }
  ca::BundleScope scope = ca::BundleScope::kAll;
  switch (request->scope()) {
    case v1::TRUST_BUNDLE_SCOPE_UNSPECIFIED:
    case v1::TRUST_BUNDLE_SCOPE_ALL:
      break;
    case v1::TRUST_BUNDLE_SCOPE_CLIENT_AUTH:
      scope = ca::BundleScope::kClientAuth;
      break;
    case v1::TRUST_BUNDLE_SCOPE_SERVER_AUTH:
      scope = ca::BundleScope::kServerAuth;
      break;
    default:
      return Invalid("scope: unknown value");
  }
  std::vector<std::string> ids;
  std::vector<ca::CertificateAuthority::BundleCertificate> certificates;
  auto pem = ca_.TrustBundle(scope, &ids, pkcs12 ? &certificates : nullptr);
  if (!pem.ok()) return ToGrpcStatus(pem.status());
  if (pkcs12) {
    std::vector<pki::X509Ptr> parsed;
    std::vector<pki::TrustStoreEntry> entries;
    for (const auto& c : certificates) {
      auto x509 = pki::CertificateFromDer(c.der);
      if (!x509.ok()) return ToGrpcStatus(x509.status());
      entries.push_back({c.alias, x509->get()});
      parsed.push_back(std::move(*x509));
    }
    auto keystore =
        pki::BuildTrustStorePkcs12(entries, request->keystore_password(), *encryption);
    // pki names its own parameter; the caller knows it as keystore_password.
    if (!keystore.ok()) {
      return ToGrpcStatus(RenamePkcs12Field(keystore.status(), "password", "keystore_password"));
    }
    response->set_keystore(std::move(*keystore));
  }
  response->set_bundle_pem(*pem);
  for (const auto& id : ids) response->add_issuer_ids(id);
  response->set_bundle_sha256(pki::Sha256Hex(*pem));
  return grpc::Status::OK;
}

void ToProto(const storage::ExternalCa& ca, v1::ExternalCa* out) {
  out->set_external_ca_id(ca.id);
  out->set_display_name(ca.display_name);
  out->set_subject(ca.subject);
  out->set_sha256_fingerprint(pki::Sha256Hex(ca.certificate_der));
  if (auto cert = pki::CertificateFromDer(ca.certificate_der); cert.ok()) {
    auto algorithm = pki::KeyAlgorithmOf(X509_get0_pubkey(cert->get()));
    out->set_key_algorithm(algorithm.ok() ? ToProtoAlgorithm(pki::KeyAlgorithmName(*algorithm))
                                          : v1::KEY_ALGORITHM_OTHER);
  }
  pki::ClearOpenSslErrors();
  SetTimestamp(ca.not_before, out->mutable_not_before());
  SetTimestamp(ca.not_after, out->mutable_not_after());
  out->set_certificate_pem(pki::DerToPem(ca.certificate_der, "CERTIFICATE"));
  out->set_enabled(ca.enabled);
  out->set_accept_unregistered_certificates(ca.accept_unregistered);
  out->set_crl_number(ca.crl_number);
  if (ca.crl_next_update) SetTimestamp(*ca.crl_next_update, out->mutable_crl_next_update());
  out->set_etag(registry::Etag(ca.version));
  SetTimestamp(ca.create_time, out->mutable_create_time());
  SetTimestamp(ca.update_time, out->mutable_update_time());
}

namespace {

grpc::Status NoExternalCas() {
  return grpc::Status(grpc::StatusCode::UNIMPLEMENTED,
                      "external CAs are not available on this server");
}

}  // namespace

grpc::Status CertificateAuthorityService::RegisterExternalCa(
    grpc::ServerContext* context, const v1::RegisterExternalCaRequest* request,
    v1::RegisterExternalCaResponse* response) {
  if (external_cas_ == nullptr) return NoExternalCas();
  auto ca = external_cas_->Register(request->external_ca_id(), request->display_name(),
                                    request->certificate_pem(),
                                    request->accept_unregistered_certificates(),
                                    RequestContextFor(*context));
  if (!ca.ok()) return ToGrpcStatus(ca.status());
  api::ToProto(*ca, response->mutable_external_ca());
  return grpc::Status::OK;
}

grpc::Status CertificateAuthorityService::GetExternalCa(grpc::ServerContext*,
                                                        const v1::GetExternalCaRequest* request,
                                                        v1::GetExternalCaResponse* response) {
  if (external_cas_ == nullptr) return NoExternalCas();
  auto ca = external_cas_->Get(request->external_ca_id());
  if (!ca.ok()) return ToGrpcStatus(ca.status());
  api::ToProto(*ca, response->mutable_external_ca());
  return grpc::Status::OK;
}

grpc::Status CertificateAuthorityService::ListExternalCas(grpc::ServerContext*,
                                                          const v1::ListExternalCasRequest* request,
                                                          v1::ListExternalCasResponse* response) {
  if (external_cas_ == nullptr) return NoExternalCas();
  auto page = external_cas_->List(request->page_size(), request->page_token());
  if (!page.ok()) return ToGrpcStatus(page.status());
  for (const storage::ExternalCa& ca : page->cas) api::ToProto(ca, response->add_external_cas());
  response->set_next_page_token(page->next_page_token);
  return grpc::Status::OK;
}

grpc::Status CertificateAuthorityService::UpdateExternalCa(
    grpc::ServerContext* context, const v1::UpdateExternalCaRequest* request,
    v1::UpdateExternalCaResponse* response) {
  if (external_cas_ == nullptr) return NoExternalCas();
  if (!request->has_external_ca()) return Invalid("external_ca: is required");
  const v1::ExternalCa& in = request->external_ca();
  std::vector<std::string> fields(request->update_mask().paths().begin(),
                                  request->update_mask().paths().end());
  storage::ExternalCaUpdate update;
  update.display_name = in.display_name();
  update.enabled = in.enabled();
  update.accept_unregistered = in.accept_unregistered_certificates();
  const std::string& etag = request->etag().empty() ? in.etag() : request->etag();
  auto ca = external_cas_->Update(in.external_ca_id(), fields, update, etag,
                                  RequestContextFor(*context));
  if (!ca.ok()) return ToGrpcStatus(ca.status());
  api::ToProto(*ca, response->mutable_external_ca());
  return grpc::Status::OK;
}

grpc::Status CertificateAuthorityService::DeleteExternalCa(
    grpc::ServerContext* context, const v1::DeleteExternalCaRequest* request,
    v1::DeleteExternalCaResponse*) {
  if (external_cas_ == nullptr) return NoExternalCas();
  return ToGrpcStatus(external_cas_->Delete(request->external_ca_id(), request->etag(),
                                            RequestContextFor(*context)));
}

}  // namespace fleetca::api
