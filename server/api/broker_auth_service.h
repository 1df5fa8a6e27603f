#pragma once

// gRPC BrokerAuthService over the in-memory policy::PolicyIndex: AuthorizeConnect and
// CheckTopic answer from memory, never a database round trip.

#include <openssl/x509.h>

#include "fleetca/v1/broker_auth.grpc.pb.h"
#include "server/policy/index.h"

namespace fleetca::api {

class BrokerAuthService final : public v1::BrokerAuthService::Service {
 public:
  explicit BrokerAuthService(const policy::PolicyIndex& index) : index_(index) {}

  grpc::Status AuthorizeConnect(grpc::ServerContext* context,
                                const v1::AuthorizeConnectRequest* request,
                                v1::AuthorizeConnectResponse* response) override;
  grpc::Status CheckTopic(grpc::ServerContext* context, const v1::CheckTopicRequest* request,
                          v1::CheckTopicResponse* response) override;

 private:
  // ChainVerdict: for a certificate the inventory does not hold, UNTRUSTED_ISSUER unless it
  // chains to an issuer of client certificates (then CERTIFICATE_UNKNOWN, or EXPIRED).
  policy::ConnectVerdict ChainVerdict(const X509* leaf, absl::Time now) const;

  const policy::PolicyIndex& index_;
};

}  // namespace fleetca::api
