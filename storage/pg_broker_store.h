#pragma once

#include "storage/broker_store.h"
#include "storage/connection_pool.h"

namespace fleetca::storage {

class PgBrokerStore final : public BrokerStore {
 public:
  explicit PgBrokerStore(ConnectionPool& pool) : pool_(pool) {}

  absl::StatusOr<Broker> Create(const Broker& broker, const RequestContext& ctx) override;
  absl::StatusOr<Broker> Get(const std::string& name) override;
  absl::StatusOr<std::vector<Broker>> List(const std::string& after, int limit) override;
  absl::StatusOr<Broker> Update(const std::string& name, const BrokerUpdate& update,
                                std::optional<int64_t> expected_version,
                                const RequestContext& ctx) override;
  absl::Status Delete(const std::string& name, std::optional<int64_t> expected_version,
                      const RequestContext& ctx) override;
  absl::Status RecordStreams(const std::string& replica_id,
                             const std::vector<BrokerStreams>& states) override;

 private:
  ConnectionPool& pool_;
};

}  // namespace fleetca::storage
