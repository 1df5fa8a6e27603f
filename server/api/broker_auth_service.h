#pragma once

// gRPC BrokerAuthService over the in-memory policy::PolicyIndex: AuthorizeConnect and
// CheckTopic answer from memory, never a database round trip.

#include <openssl/x509.h>

#include <string>
#include <vector>

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
  // UnknownCertificate decides for a certificate the inventory does not hold: chained to
  // an external CA, by the CA's options (PolicyIndex::AuthorizeUnregistered); chained to
  // one of fleetca's client issuers, CERTIFICATE_UNKNOWN (or EXPIRED); else
  // UNTRUSTED_ISSUER. intermediates: the chain the client sent.
  absl::StatusOr<policy::ConnectAnswer> UnknownCertificate(
      const X509* leaf, const std::vector<const X509*>& intermediates,
      const std::string& client_id, absl::Time now, policy::ConnectAnswer answer) const;

  const policy::PolicyIndex& index_;
};

}  // namespace fleetca::api
