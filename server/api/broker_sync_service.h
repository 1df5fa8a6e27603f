#pragma once

// gRPC BrokerSyncService: broker registration (Register/Get/List/Update/DeleteBroker) over
// brokers::BrokerRegistry. Watch answers UNIMPLEMENTED until broker sync is built.

#include "fleetca/v1/broker_sync.grpc.pb.h"
#include "server/brokers/broker_registry.h"

namespace fleetca::api {

class BrokerSyncService final : public v1::BrokerSyncService::Service {
 public:
  explicit BrokerSyncService(brokers::BrokerRegistry& registry) : registry_(registry) {}

  grpc::Status RegisterBroker(grpc::ServerContext* context, const v1::RegisterBrokerRequest* request,
                              v1::RegisterBrokerResponse* response) override;
  grpc::Status GetBroker(grpc::ServerContext* context, const v1::GetBrokerRequest* request,
                         v1::GetBrokerResponse* response) override;
  grpc::Status ListBrokers(grpc::ServerContext* context, const v1::ListBrokersRequest* request,
                           v1::ListBrokersResponse* response) override;
  grpc::Status UpdateBroker(grpc::ServerContext* context, const v1::UpdateBrokerRequest* request,
                            v1::UpdateBrokerResponse* response) override;
  grpc::Status DeleteBroker(grpc::ServerContext* context, const v1::DeleteBrokerRequest* request,
                            v1::DeleteBrokerResponse* response) override;

 private:
  brokers::BrokerRegistry& registry_;
};

}  // namespace fleetca::api
