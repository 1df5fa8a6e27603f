#pragma once

// gRPC IssuanceService over issuance::Issuance. Built: SignDeviceCsr, SignBrokerCsr,
// RenewDeviceCertificate, GetCertificate, ListCertificates, ListProfiles, ExportPkcs12,
// RegisterExternalCertificate (over ca::ExternalCas).

#include "fleetca/v1/issuance.grpc.pb.h"
#include "server/api/service_metrics.h"
#include "server/ca/external_cas.h"
#include "server/issuance/issuance.h"

namespace fleetca::api {

// ToProto fills a v1.Certificate from an issued certificate (shared by the services that
// return certificates).
void ToProto(const issuance::IssuedCertificate& c, v1::Certificate* out);

// SignDeviceCsr, the factories' hot path, is a gRPC callback method: its handler checks the
// request and verifies the CSR, then returns; the group committer's thread answers the
// call once the certificate is committed (no thread waits per call). The other methods
// are synchronous.
class IssuanceService final
    : public v1::IssuanceService::WithCallbackMethod_SignDeviceCsr<v1::IssuanceService::Service> {
 public:
  // metrics may be null (nothing counted).
  // external_cas may be null: RegisterExternalCertificate then answers UNIMPLEMENTED.
  explicit IssuanceService(issuance::Issuance& issuance, ServiceMetrics* metrics = nullptr,
                           ca::ExternalCas* external_cas = nullptr)
      : issuance_(issuance), metrics_(metrics), external_cas_(external_cas) {}

  // (The base's synchronous SignDeviceCsr, which gRPC never calls for a callback method,
  // stays visible: -Woverloaded-virtual.)
  using WithCallbackMethod_SignDeviceCsr::SignDeviceCsr;
  grpc::ServerUnaryReactor* SignDeviceCsr(grpc::CallbackServerContext* context,
                                          const v1::SignDeviceCsrRequest* request,
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
  grpc::Status RegisterExternalCertificate(grpc::ServerContext* context,
                                           const v1::RegisterExternalCertificateRequest* request,
                                           v1::RegisterExternalCertificateResponse* response) override;
  // ExportPkcs12: a certificate of the inventory, its chain and the caller's private key
  // as a PKCS#12 key store. Reads only; the key is never stored, logged or audited.
  grpc::Status ExportPkcs12(grpc::ServerContext* context, const v1::ExportPkcs12Request* request,
                            v1::ExportPkcs12Response* response) override;

 private:
  issuance::Issuance& issuance_;
  ServiceMetrics* metrics_;
  ca::ExternalCas* const external_cas_;
};

}  // namespace fleetca::api
