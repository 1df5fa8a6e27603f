#include "storage/pg_broker_store.h"

#include <pqxx/pqxx>

#include "absl/strings/str_cat.h"
#include "common/json.h"
#include "common/status_macros.h"
#include "storage/journal.h"
#include "storage/pg_errors.h"
#include "storage/pg_util.h"

namespace fleetca::storage {
namespace {

// With the sync state the replicas recorded (broker_streams; rows older than 60 s are
// replicas gone).
#define FLEETCA_BROKER_COLUMNS                                                         \
  "name, display_name, allowed_dns_names, allowed_ip_addresses, version, "             \
  "(extract(epoch FROM created_at) * 1000000)::bigint, "                               \
  "(extract(epoch FROM updated_at) * 1000000)::bigint, "                               \
  "(SELECT coalesce(sum(s.streams) FILTER (WHERE s.updated_at > now() - interval "     \
  "'60 seconds'), 0) FROM broker_streams s WHERE s.broker_name = brokers.name), "       \
  "(SELECT coalesce(max(s.sent_revision), 0) FROM broker_streams s "                   \
  " WHERE s.broker_name = brokers.name), "                                             \
  "(SELECT (extract(epoch FROM max(s.last_seen_at)) * 1000000)::bigint "                \
  " FROM broker_streams s WHERE s.broker_name = brokers.name)"

constexpr char kInsertSql[] =
    "INSERT INTO brokers (name, display_name, allowed_dns_names, allowed_ip_addresses) "
    "VALUES ($1, $2, $3::text[], $4::text[]) ON CONFLICT (name) DO NOTHING "
    "RETURNING " FLEETCA_BROKER_COLUMNS;
constexpr char kGetSql[] = "SELECT " FLEETCA_BROKER_COLUMNS " FROM brokers WHERE name = $1";
constexpr char kListSql[] =
    "SELECT " FLEETCA_BROKER_COLUMNS " FROM brokers WHERE name > $1 ORDER BY name LIMIT $2";
constexpr char kLockSql[] = "SELECT version FROM brokers WHERE name = $1 FOR UPDATE";
constexpr char kUpdateSql[] =
    "UPDATE brokers SET display_name = coalesce($2, display_name), "
    "allowed_dns_names = coalesce($3::text[], allowed_dns_names), "
    "allowed_ip_addresses = coalesce($4::text[], allowed_ip_addresses), "
    "version = version + 1, updated_at = now() WHERE name = $1 RETURNING " FLEETCA_BROKER_COLUMNS;
constexpr char kDeleteSql[] = "DELETE FROM brokers WHERE name = $1";

#undef FLEETCA_BROKER_COLUMNS

Broker FromRow(const pqxx::row& row) {
  Broker b;
  b.name = row[0].as<std::string>();
  b.display_name = row[1].as<std::string>();
  b.allowed_dns_names = ParseTextArray(row[2]);
  b.allowed_ip_addresses = ParseTextArray(row[3]);
  b.version = row[4].as<int64_t>();
  b.create_time = FromMicros(row[5].as<int64_t>());
  b.update_time = FromMicros(row[6].as<int64_t>());
  b.sync.streams = row[7].as<int>();
  b.sync.sent_revision = row[8].as<int64_t>();
  if (!row[9].is_null()) b.sync.last_seen = FromMicros(row[9].as<int64_t>());
  return b;
}

absl::Status NotFound(const std::string& name) {
  return absl::NotFoundError(absl::StrCat("broker \"", name, "\" is not registered"));
}

absl::Status Lock(pqxx::transaction_base& tx, const std::string& name,
                  std::optional<int64_t> expected_version) {
  const pqxx::result r = tx.exec_params(kLockSql, name);
  if (r.empty()) return NotFound(name);
  if (expected_version && *expected_version != r[0][0].as<int64_t>()) {
    return absl::AbortedError(absl::StrCat("broker \"", name, "\" changed since etag \"",
                                           *expected_version, "\" was read: read it again"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<Broker> PgBrokerStore::Create(const Broker& b, const RequestContext& ctx) {
  Broker out;
  RETURN_IF_ERROR(pool_.Transact(
      "register broker", TxMode::kReadWrite,
      [&](pqxx::transaction_base& tx) -> absl::Status {
        const pqxx::result r =
            tx.exec_params(kInsertSql, b.name, b.display_name, PgTextArray(b.allowed_dns_names),
                           PgTextArray(b.allowed_ip_addresses));
        if (r.empty()) {
          return absl::AlreadyExistsError(
              absl::StrCat("broker \"", b.name, "\" is already registered"));
        }
        out = FromRow(r[0]);
        Journal(tx, ctx,
                {"RegisterBroker", "broker", {b.name}, false,
                 absl::StrCat("{\"dns\":", JsonArray(b.allowed_dns_names),
                              ",\"ip\":", JsonArray(b.allowed_ip_addresses), "}")});
        return absl::OkStatus();
      },
      &ctx));
  return out;
}

absl::StatusOr<Broker> PgBrokerStore::Get(const std::string& name) {
  Broker out;
  RETURN_IF_ERROR(pool_.Transact("get broker", TxMode::kReadOnly,
                                 [&](pqxx::transaction_base& tx) -> absl::Status {
                                   const pqxx::result r = tx.exec_params(kGetSql, name);
                                   if (r.empty()) return NotFound(name);
                                   out = FromRow(r[0]);
                                   return absl::OkStatus();
                                 }));
  return out;
}

absl::StatusOr<std::vector<Broker>> PgBrokerStore::List(const std::string& after, int limit) {
  std::vector<Broker> out;
  RETURN_IF_ERROR(pool_.Transact("list brokers", TxMode::kReadOnly,
                                 [&](pqxx::transaction_base& tx) -> absl::Status {
                                   out.clear();
                                   for (const auto& row : tx.exec_params(kListSql, after, limit)) {
                                     out.push_back(FromRow(row));
                                   }
                                   return absl::OkStatus();
                                 }));
  return out;
}

absl::StatusOr<Broker> PgBrokerStore::Update(const std::string& name, const BrokerUpdate& u,
                                             std::optional<int64_t> expected_version,
                                             const RequestContext& ctx) {
  Broker out;
  std::optional<std::string> dns, ip;
  if (u.allowed_dns_names) dns = PgTextArray(*u.allowed_dns_names);
  if (u.allowed_ip_addresses) ip = PgTextArray(*u.allowed_ip_addresses);
  RETURN_IF_ERROR(pool_.Transact(
      "update broker", TxMode::kReadWrite,
      [&](pqxx::transaction_base& tx) -> absl::Status {
        RETURN_IF_ERROR(Lock(tx, name, expected_version));
        const pqxx::result r =
            tx.exec_params(kUpdateSql, name, NullableParam(u.display_name), NullableParam(dns),
                           NullableParam(ip));
        out = FromRow(r[0]);
        Journal(tx, ctx,
                {"UpdateBroker", "broker", {name}, false,
                 absl::StrCat("{\"dns\":", JsonArray(out.allowed_dns_names),
                              ",\"ip\":", JsonArray(out.allowed_ip_addresses), "}")});
        return absl::OkStatus();
      },
      &ctx));
  return out;
}

absl::Status PgBrokerStore::Delete(const std::string& name,
                                   std::optional<int64_t> expected_version,
                                   const RequestContext& ctx) {
  absl::Status st = pool_.Transact(
      "delete broker", TxMode::kReadWrite,
      [&](pqxx::transaction_base& tx) -> absl::Status {
        RETURN_IF_ERROR(Lock(tx, name, expected_version));
        tx.exec_params(kDeleteSql, name);
        Journal(tx, ctx, {"DeleteBroker", "broker", {name}, true, "{}"});
        return absl::OkStatus();
      },
      &ctx);
  if (st.code() == absl::StatusCode::kFailedPrecondition &&
      ConstraintName(st) == "certificates_broker_name_fkey") {
    return absl::FailedPreconditionError(absl::StrCat(
        "broker \"", name, "\" has certificates and cannot be deleted; revoke them first"));
  }
  return st;
}

absl::Status PgBrokerStore::RecordStreams(const std::string& replica_id,
                                          const std::vector<BrokerStreams>& states) {
  if (states.empty()) return absl::OkStatus();
  std::string items = "[";
  for (const BrokerStreams& st : states) {
    if (items.size() > 1) items += ",";
    absl::StrAppend(&items, "{\"broker\":", JsonString(st.broker), ",\"streams\":", st.streams,
                    ",\"sent\":", st.sent_revision, ",\"seen\":", ToMicros(st.last_seen), "}");
  }
  items += "]";
  // Brokers deleted meanwhile are skipped (their rows went with them).
  return pool_.Transact(
      "record broker streams", TxMode::kReadWrite, [&](pqxx::transaction_base& tx) -> absl::Status {
        tx.exec_params(
            "INSERT INTO broker_streams AS s (broker_name, replica_id, streams, sent_revision, "
            "  last_seen_at, updated_at) "
            "SELECT x.broker, $1, x.streams, x.sent, "
            "       timestamptz 'epoch' + x.seen * interval '1 microsecond', now() "
            "FROM jsonb_to_recordset($2::jsonb) AS x (broker text, streams int, sent bigint, "
            "  seen bigint) "
            "WHERE EXISTS (SELECT 1 FROM brokers b WHERE b.name = x.broker) "
            "ORDER BY x.broker "
            "ON CONFLICT (broker_name, replica_id) DO UPDATE SET streams = excluded.streams, "
            "  sent_revision = greatest(s.sent_revision, excluded.sent_revision), "
            "  last_seen_at = greatest(s.last_seen_at, excluded.last_seen_at), "
            "  updated_at = now()",
            replica_id, items);
        return absl::OkStatus();
      });
}

}  // namespace fleetca::storage
