#pragma once

// gRPC RevocationService over revocation::Revocations: revoke, hold, release, status, CRLs;
// customer CRLs (ImportCrl, GetCrl of an external CA) over ca::ExternalCas.

#include "fleetca/v1/revocation.grpc.pb.h"
#include "server/api/service_metrics.h"
#include "server/ca/external_cas.h"
#include "server/issuance/issuance.h"
#include "server/registry/registry.h"
#include "server/revocation/crl_publisher.h"
#include "server/revocation/revocations.h"

namespace fleetca::api {

class RevocationService final : public v1::RevocationService::Service {
 public:
  RevocationService(revocation::Revocations& revocations, revocation::CrlPublisher& crls,
                    issuance::Issuance& issuance, registry::Registry& registry,
                    ServiceMetrics* metrics = nullptr, ca::ExternalCas* external_cas = nullptr)
      : revocations_(revocations),
        crls_(crls),
        issuance_(issuance),
        registry_(registry),
        metrics_(metrics),
        external_cas_(external_cas) {}

  grpc::Status RevokeCertificate(grpc::ServerContext* context,
                                 const v1::RevokeCertificateRequest* request,
                                 v1::RevokeCertificateResponse* response) override;
  grpc::Status RevokeDeviceCertificates(grpc::ServerContext* context,
                                        const v1::RevokeDeviceCertificatesRequest* request,
                                        v1::RevokeDeviceCertificatesResponse* response) override;
  grpc::Status HoldCertificate(grpc::ServerContext* context,
                               const v1::HoldCertificateRequest* request,
                               v1::HoldCertificateResponse* response) override;
  grpc::Status ReleaseCertificateHold(grpc::ServerContext* context,
                                      const v1::ReleaseCertificateHoldRequest* request,
                                      v1::ReleaseCertificateHoldResponse* response) override;
  grpc::Status GetCrl(grpc::ServerContext* context, const v1::GetCrlRequest* request,
                      v1::GetCrlResponse* response) override;
  // ImportCrl: over ca::ExternalCas (UNIMPLEMENTED without it).
  grpc::Status ImportCrl(grpc::ServerContext* context, const v1::ImportCrlRequest* request,
                         v1::ImportCrlResponse* response) override;
  grpc::Status GetRevocationStatus(grpc::ServerContext* context,
                                   const v1::GetRevocationStatusRequest* request,
                                   v1::GetRevocationStatusResponse* response) override;

 private:
  // The certificate after a change, with its revocation.
  grpc::Status Certificate(const storage::RevocationState& state, v1::Certificate* out);

  revocation::Revocations& revocations_;
  revocation::CrlPublisher& crls_;
  issuance::Issuance& issuance_;
  registry::Registry& registry_;
  ServiceMetrics* metrics_;
  ca::ExternalCas* const external_cas_;
};

}  // namespace fleetca::api
