#pragma once

// gRPC BrokerSyncService: broker registration (Register/Get/List/Update/DeleteBroker) over
// brokers::BrokerRegistry, and the brokers' sync stream (Watch, over SyncFeed).

#include "fleetca/v1/broker_sync.grpc.pb.h"
#include "server/api/sync_feed.h"
#include "server/brokers/broker_registry.h"

namespace fleetca::api {

class BrokerSyncService final : public v1::BrokerSyncService::Service {
 public:
  BrokerSyncService(brokers::BrokerRegistry& registry, SyncFeed& feed, StreamTracker& tracker)
      : registry_(registry), feed_(feed), tracker_(tracker) {}

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
  grpc::Status Watch(grpc::ServerContext* context, const v1::WatchRequest* request,
                     grpc::ServerWriter<v1::WatchResponse>* writer) override;

 private:
  brokers::BrokerRegistry& registry_;
  SyncFeed& feed_;
  StreamTracker& tracker_;
};

}  // namespace fleetca::api
