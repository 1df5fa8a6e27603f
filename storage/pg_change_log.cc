#include "storage/pg_change_log.h"

#include <pqxx/pqxx>

#include "common/status_macros.h"

namespace fleetca::storage {

absl::StatusOr<int64_t> PgChangeLogReader::Head() {
  int64_t head = 0;
  RETURN_IF_ERROR(pool_.Transact("read change-log head", TxMode::kReadOnly,
                                 [&](pqxx::transaction_base& tx) -> absl::Status {
                                   head = tx.exec1("SELECT coalesce(max(revision), 0) FROM "
                                                   "change_log")[0]
                                              .as<int64_t>();
                                   return absl::OkStatus();
                                 }));
  return head;
}

absl::StatusOr<std::vector<ChangeRow>> PgChangeLogReader::After(int64_t revision, int limit) {
  std::vector<ChangeRow> out;
  RETURN_IF_ERROR(pool_.Transact(
      "read change log", TxMode::kReadOnly, [&](pqxx::transaction_base& tx) -> absl::Status {
        out.clear();
        for (const pqxx::row& row : tx.exec_params(
                 "SELECT l.revision, l.entity_type, k.key, l.op = 'delete' FROM ("
                 "  SELECT * FROM change_log WHERE revision > $1 ORDER BY revision LIMIT $2) l "
                 "CROSS JOIN LATERAL unnest(coalesce(l.entity_keys, ARRAY[l.entity_key])) "
                 "  WITH ORDINALITY AS k (key, n) "
                 "ORDER BY l.revision, k.n",
                 revision, limit)) {
          out.push_back({row[0].as<int64_t>(), row[1].as<std::string>(), row[2].as<std::string>(),
                         row[3].as<bool>()});
        }
        return absl::OkStatus();
      }));
  return out;
}

}  // namespace fleetca::storage
