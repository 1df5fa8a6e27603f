#pragma once

// gRPC IssuanceService over issuance::Issuance. Built: SignDeviceCsr, SignBrokerCsr,
// RenewDeviceCertificate, GetCertificate, ListCertificates, ListProfiles.
// RegisterExternalCertificate and ExportPkcs12 answer UNIMPLEMENTED.

#include "fleetca/v1/issuance.grpc.pb.h"
#include "server/api/service_metrics.h"
#include "server/issuance/issuance.h"

namespace fleetca::api {

// ToProto fills a v1.Certificate from an issued certificate (shared by the services that
// return certificates).
void ToProto(const issuance::IssuedCertificate& c, v1::Certificate* out);

class IssuanceService final : public v1::IssuanceService::Service {
 public:
  // metrics may be null (nothing counted).
  explicit IssuanceService(issuance::Issuance& issuance, ServiceMetrics* metrics = nullptr)
      : issuance_(issuance), metrics_(metrics) {}

  grpc::Status SignDeviceCsr(grpc::ServerContext* context, const v1::SignDeviceCsrRequest* request,
                             v1::SignDeviceCsrResponse* response) override;
  grpc::Status SignBrokerCsr(grpc::ServerContext* context, const v1::SignBrokerCsrRequest* request,
                             v1::SignBrokerCsrResponse* response) override;
  grpc::Status RenewDeviceCertificate(grpc::ServerContext* context,
                                      const v1::RenewDeviceCertificateRequest* request,
                                      v1::RenewDeviceCertificateResponse* response) override;
  grpc::Status GetCertificate(grpc::ServerContext* context,
                              const v1::GetCertificateRequest* request,
                              v1::GetCertificateResponse* response) override;
  grpc::Status ListCertificates(grpc::ServerContext* context,
                                const v1::ListCertificatesRequest* request,
                                v1::ListCertificatesResponse* response) override;
  grpc::Status ListProfiles(grpc::ServerContext* context, const v1::ListProfilesRequest* request,
                            v1::ListProfilesResponse* response) override;

 private:
  issuance::Issuance& issuance_;
  ServiceMetrics* metrics_;
};

}  // namespace fleetca::api
