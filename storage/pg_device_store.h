#pragma once

// PostgreSQL implementation of DeviceStore (table devices, migrations/0001).

#include "storage/connection_pool.h"
#include "storage/device_store.h"

namespace fleetca::storage {

class PgDeviceStore final : public DeviceStore {
 public:
  // pool is borrowed and must outlive the store.
  explicit PgDeviceStore(ConnectionPool& pool) : pool_(pool) {}

  absl::StatusOr<Device> Create(const Device& device, const RequestContext& ctx) override;
  absl::StatusOr<std::vector<absl::Status>> CreateBatch(const std::vector<Device>& devices,
                                                        const RequestContext& ctx) override;
  absl::StatusOr<Device> Get(const std::string& comm_id) override;
  absl::StatusOr<std::vector<Device>> List(const DeviceFilter& filter, const std::string& after,
                                           int limit) override;
  absl::StatusOr<Device> Update(const std::string& comm_id, const DeviceUpdate& update,
                                std::optional<int64_t> expected_version,
                                const RequestContext& ctx) override;
  absl::StatusOr<Device> SetStatus(const std::string& comm_id, DeviceStatus status,
                                   const std::string& reason,
                                   std::optional<int64_t> expected_version,
                                   const RequestContext& ctx) override;
  absl::Status Delete(const std::string& comm_id, std::optional<int64_t> expected_version,
                      const RequestContext& ctx) override;

 private:
  ConnectionPool& pool_;
};

}  // namespace fleetca::storage
