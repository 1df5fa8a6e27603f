#pragma once

#include "storage/change_log.h"
#include "storage/connection_pool.h"

namespace fleetca::storage {

class PgChangeLogReader final : public ChangeLogReader {
 public:
  explicit PgChangeLogReader(ConnectionPool& pool) : pool_(pool) {}
  absl::StatusOr<int64_t> Head() override;
  absl::StatusOr<std::vector<ChangeRow>> After(int64_t revision, int limit) override;

 private:
  ConnectionPool& pool_;
};

}  // namespace fleetca::storage
