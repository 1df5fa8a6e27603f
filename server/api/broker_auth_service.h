#pragma once

// gRPC BrokerAuthService over the in-memory policy::PolicyIndex: CheckTopic answers from
// memory, never a database round trip. AuthorizeConnect is not built yet: UNIMPLEMENTED.

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
  const policy::PolicyIndex& index_;
};

}  // namespace fleetca::api
