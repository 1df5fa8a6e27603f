#include "storage/migrator.h"

#include <openssl/sha.h>

#include <map>
#include <pqxx/pqxx>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "storage/connection_pool.h"
#include "storage/pg_errors.h"

namespace fleetca::storage {
namespace {

// Session-level advisory lock key for migrations ("fleetca migrate").
constexpr int64_t kMigrationLockKey = 7318262781330071553;

constexpr char kCreateTableSql[] = R"sql(
CREATE TABLE IF NOT EXISTS schema_migrations (
  version    integer PRIMARY KEY CHECK (version > 0),
  name       text NOT NULL,
  checksum   text NOT NULL,
  applied_at timestamptz NOT NULL DEFAULT now()
))sql";

std::string Checksum(const std::string& sql) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(sql.data()), sql.size(), digest);
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(digest), sizeof(digest)));
}

absl::Status CheckOrder(const std::vector<Migration>& migrations) {
  int last = 0;
  for (const auto& m : migrations) {
    if (m.version <= last) {
      return absl::FailedPreconditionError(
          absl::StrCat("migration ", m.name, ": versions must be strictly increasing"));
    }
    last = m.version;
  }
  return absl::OkStatus();
}

// Applied returns version -> checksum of what the database has recorded (empty when the
// table does not exist yet).
std::map<int, std::string> Applied(pqxx::transaction_base& tx) {
  std::map<int, std::string> applied;
  const pqxx::row exists = tx.exec1("SELECT to_regclass('schema_migrations') IS NOT NULL");
  if (!exists[0].as<bool>()) return applied;
  for (const auto& row : tx.exec("SELECT version, checksum FROM schema_migrations")) {
    applied[row[0].as<int>()] = row[1].as<std::string>();
  }
  return applied;
}

absl::Status CheckApplied(const std::map<int, std::string>& applied,
                          const std::vector<Migration>& migrations) {
  std::map<int, const Migration*> known;
  for (const auto& m : migrations) known[m.version] = &m;
  for (const auto& [version, checksum] : applied) {
    auto it = known.find(version);
    if (it == known.end()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "the database has migration ", version,
          " which this fleetca does not know: it was migrated by a newer version"));
    }
    if (Checksum(it->second->sql) != checksum) {
      return absl::FailedPreconditionError(
          absl::StrCat("migration ", it->second->name,
                       " was changed after it was applied (checksum mismatch); migrations are "
                       "forward-only: add a new file instead"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<MigrationReport> Migrate(ConnectionPool& pool,
                                        const std::vector<Migration>& migrations) {
  RETURN_IF_ERROR(CheckOrder(migrations));
  ASSIGN_OR_RETURN(Lease lease, pool.Acquire());
  pqxx::connection& conn = lease.conn();
  MigrationReport report;
  const Migration* current = nullptr;
  try {
    {
      pqxx::nontransaction lock(conn);
      lock.exec(absl::StrCat("SELECT pg_advisory_lock(", kMigrationLockKey, ")"));
    }
    {
      pqxx::work tx(conn);
      tx.exec(kCreateTableSql);
      tx.commit();
    }
    std::map<int, std::string> applied;
    {
      pqxx::read_transaction tx(conn);
      applied = Applied(tx);
    }
    absl::Status st = CheckApplied(applied, migrations);
    if (st.ok()) {
      for (const auto& m : migrations) {
        if (applied.count(m.version) != 0) continue;
        current = &m;
        pqxx::work tx(conn);
        tx.exec(m.sql);
        tx.exec_params(
            "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
            m.version, m.name, Checksum(m.sql));
        tx.commit();
        LogInfo("migration applied", {{"version", std::to_string(m.version)}, {"name", m.name}});
        report.applied.push_back(m.version);
        applied[m.version] = Checksum(m.sql);
      }
      current = nullptr;
    }
    report.current_version = applied.empty() ? 0 : applied.rbegin()->first;
    {
      pqxx::nontransaction unlock(conn);
      unlock.exec(absl::StrCat("SELECT pg_advisory_unlock(", kMigrationLockKey, ")"));
    }
    if (!st.ok()) return st;
    return report;
  } catch (const std::exception& e) {
    // The session lock dies with the connection: discard it rather than reuse it locked.
    lease.Discard();
    if (current != nullptr && !IsConnectionLoss(e)) {
      LogError("migration failed", {{"name", current->name}, {"detail", e.what()}});
      return absl::InternalError(
          absl::StrCat("migration ", current->name, " failed: ", e.what()));
    }
    return StatusFromException(e, "migrate");
  }
}

}  // namespace fleetca::storage
