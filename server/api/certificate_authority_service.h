#pragma once

// gRPC CertificateAuthorityService over ca::CertificateAuthority. Built: InitializeHierarchy,
// CreateIntermediateCsr, ImportIntermediateCertificate, ImportIssuer (PEM key), ListIssuers,
// GetIssuer, GetTrustBundle (PEM, PKCS#12), the external CAs (over ca::ExternalCas). The
// rest answers UNIMPLEMENTED (rotation, KEK re-wrap, PKCS#11 keys, JKS bundles).

#include "fleetca/v1/certificate_authority.grpc.pb.h"
#include "server/ca/certificate_authority.h"
#include "server/ca/external_cas.h"

namespace fleetca::api {

class CertificateAuthorityService final : public v1::CertificateAuthorityService::Service {
 public:
  // external_cas may be null: the external-CA RPCs then answer UNIMPLEMENTED.
  explicit CertificateAuthorityService(ca::CertificateAuthority& ca,
                                       ca::ExternalCas* external_cas = nullptr)
      : ca_(ca), external_cas_(external_cas) {}

  grpc::Status InitializeHierarchy(grpc::ServerContext* context,
                                   const v1::InitializeHierarchyRequest* request,
                                   v1::InitializeHierarchyResponse* response) override;
  grpc::Status CreateIntermediateCsr(grpc::ServerContext* context,
                                     const v1::CreateIntermediateCsrRequest* request,
                                     v1::CreateIntermediateCsrResponse* response) override;
  grpc::Status ImportIntermediateCertificate(
      grpc::ServerContext* context, const v1::ImportIntermediateCertificateRequest* request,
      v1::ImportIntermediateCertificateResponse* response) override;
  grpc::Status ImportIssuer(grpc::ServerContext* context, const v1::ImportIssuerRequest* request,
                            v1::ImportIssuerResponse* response) override;
  grpc::Status ListIssuers(grpc::ServerContext* context, const v1::ListIssuersRequest* request,
                           v1::ListIssuersResponse* response) override;
  grpc::Status GetIssuer(grpc::ServerContext* context, const v1::GetIssuerRequest* request,
                         v1::GetIssuerResponse* response) override;
  grpc::Status GetTrustBundle(grpc::ServerContext* context,
                              const v1::GetTrustBundleRequest* request,
                              v1::GetTrustBundleResponse* response) override;
  grpc::Status RegisterExternalCa(grpc::ServerContext* context,
                                  const v1::RegisterExternalCaRequest* request,
                                  v1::RegisterExternalCaResponse* response) override;
  grpc::Status GetExternalCa(grpc::ServerContext* context, const v1::GetExternalCaRequest* request,
                             v1::GetExternalCaResponse* response) override;
  grpc::Status ListExternalCas(grpc::ServerContext* context,
                               const v1::ListExternalCasRequest* request,
                               v1::ListExternalCasResponse* response) override;
  grpc::Status UpdateExternalCa(grpc::ServerContext* context,
                                const v1::UpdateExternalCaRequest* request,
                                v1::UpdateExternalCaResponse* response) override;
  grpc::Status DeleteExternalCa(grpc::ServerContext* context,
                                const v1::DeleteExternalCaRequest* request,
                                v1::DeleteExternalCaResponse* response) override;

 private:
  // ToProto fills an Issuer; chain_pem only when with_chain (List leaves it out).
  absl::Status ToProto(const storage::Issuer& issuer, v1::Issuer* out, bool with_chain = true);

  ca::CertificateAuthority& ca_;
  ca::ExternalCas* const external_cas_;
};

// ToProto fills an ExternalCa.
void ToProto(const storage::ExternalCa& ca, v1::ExternalCa* out);

// Enum conversions shared with the issuance service.
std::optional<pki::KeyAlgorithm> FromProtoAlgorithm(v1::KeyAlgorithm a);
v1::KeyAlgorithm ToProtoAlgorithm(const std::string& name);
std::optional<storage::IssuerPurpose> FromProtoPurpose(v1::IssuerPurpose p);
v1::IssuerPurpose ToProtoPurpose(storage::IssuerPurpose p);

}  // namespace fleetca::api
