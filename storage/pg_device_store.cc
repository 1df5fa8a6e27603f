#include "storage/pg_device_store.h"

#include <pqxx/pqxx>
#include <set>

#include "absl/strings/str_cat.h"
#include "common/json.h"
#include "common/status_macros.h"
#include "storage/pg_errors.h"
#include "storage/pg_util.h"

namespace fleetca::storage {
namespace {

// Columns read by FromRow, in order.
#define FLEETCA_DEVICE_COLUMNS                                                              \
  "comm_id, status, status_reason, display_name, attributes::text, groups, version, "     \
  "(extract(epoch FROM created_at) * 1000000)::bigint, "                                  \
  "(extract(epoch FROM updated_at) * 1000000)::bigint"

constexpr char kInsertSql[] =
    "INSERT INTO devices (comm_id, status, status_reason, display_name, attributes, groups) "
    "VALUES ($1, $2, $3, $4, $5::jsonb, $6::text[]) ON CONFLICT (comm_id) DO NOTHING "
    "RETURNING " FLEETCA_DEVICE_COLUMNS;

// One statement for a whole batch: the items travel as one JSON array parameter.
// ON CONFLICT DO NOTHING skips comm-IDs registered before (or by a concurrent batch);
// the RETURNING list tells which items went in.
constexpr char kInsertBatchSql[] =
    "INSERT INTO devices (comm_id, status, status_reason, display_name, attributes, groups) "
    "SELECT comm_id, status, status_reason, display_name, attributes, groups "
    "FROM jsonb_to_recordset($1::jsonb) AS x(comm_id text, status text, status_reason text, "
    "display_name text, attributes jsonb, groups text[]) "
    "ON CONFLICT (comm_id) DO NOTHING RETURNING comm_id";

constexpr char kGetSql[] = "SELECT " FLEETCA_DEVICE_COLUMNS " FROM devices WHERE comm_id = $1";

constexpr char kLockSql[] = "SELECT version, status FROM devices WHERE comm_id = $1 FOR UPDATE";

// Keyset pagination on the primary key (COLLATE "C": byte order). comm-IDs never contain
// LIKE's metacharacters (% _ \), so the prefix goes into LIKE as it is.
constexpr char kListSql[] =
    "SELECT " FLEETCA_DEVICE_COLUMNS " FROM devices "
    "WHERE comm_id > $1 "
    "AND ($2 = '' OR status = $2) "
    "AND ($3 = '' OR comm_id LIKE $3 || '%') "
    "AND ($4 = '' OR groups @> ARRAY[$4]) "
    "AND ($5 = '{}' OR attributes @> $5::jsonb) "
    "ORDER BY comm_id LIMIT $6";

constexpr char kUpdateSql[] =
    "UPDATE devices SET display_name = coalesce($2, display_name), "
    "attributes = coalesce($3::jsonb, attributes), groups = coalesce($4::text[], groups), "
    "version = version + 1, updated_at = now() WHERE comm_id = $1 "
    "RETURNING " FLEETCA_DEVICE_COLUMNS;

constexpr char kSetStatusSql[] =
    "UPDATE devices SET status = $2, status_reason = $3, version = version + 1, "
    "updated_at = now() WHERE comm_id = $1 RETURNING " FLEETCA_DEVICE_COLUMNS;

constexpr char kDeleteSql[] = "DELETE FROM devices WHERE comm_id = $1";

#undef FLEETCA_DEVICE_COLUMNS

}  // namespace

absl::StatusOr<DeviceStatus> DeviceStatusFromName(const std::string& s) {
  if (s == "active") return DeviceStatus::kActive;
  if (s == "suspended") return DeviceStatus::kSuspended;
  if (s == "decommissioned") return DeviceStatus::kDecommissioned;
  return absl::InternalError("unknown device status in the database");
}

namespace {

absl::StatusOr<Device> FromRow(const pqxx::row& row) {
  Device d;
  d.comm_id = row[0].as<std::string>();
  ASSIGN_OR_RETURN(d.status, DeviceStatusFromName(row[1].as<std::string>()));
  d.status_reason = row[2].as<std::string>();
  d.display_name = row[3].as<std::string>();
  ASSIGN_OR_RETURN(d.attributes, ParseFlatJsonObject(row[4].as<std::string>()));
  d.groups = ParseTextArray(row[5]);
  d.version = row[6].as<int64_t>();
  d.create_time = absl::FromUnixMicros(row[7].as<int64_t>());
  d.update_time = absl::FromUnixMicros(row[8].as<int64_t>());
  return d;
}

// AppendDeviceJson writes one batch item for jsonb_to_recordset.
void AppendDeviceJson(std::string* out, const Device& d) {
  out->append("{\"comm_id\":");
  AppendJsonString(out, d.comm_id);
  out->append(",\"status\":");
  AppendJsonString(out, DeviceStatusName(d.status));
  out->append(",\"status_reason\":");
  AppendJsonString(out, d.status_reason);
  out->append(",\"display_name\":");
  AppendJsonString(out, d.display_name);
  out->append(",\"attributes\":");
  out->append(JsonObject(d.attributes));
  out->append(",\"groups\":");
  out->append(JsonArray(d.groups));
  out->push_back('}');
}

absl::Status NotFound(const std::string& comm_id) {
  return absl::NotFoundError(absl::StrCat("device \"", comm_id, "\" is not registered"));
}

// LockForChange locks the device row and checks its version. Returns the current status.
absl::StatusOr<DeviceStatus> LockForChange(pqxx::transaction_base& tx, const std::string& comm_id,
                                           std::optional<int64_t> expected_version) {
  const pqxx::result r = tx.exec_params(kLockSql, comm_id);
  if (r.empty()) return NotFound(comm_id);
  const int64_t version = r[0][0].as<int64_t>();
  if (expected_version.has_value() && *expected_version != version) {
    return absl::AbortedError(absl::StrCat("device \"", comm_id, "\" changed since etag \"",
                                           *expected_version, "\" was read (now \"", version,
                                           "\"): read it again and retry"));
  }
  return DeviceStatusFromName(r[0][1].as<std::string>());
}

}  // namespace

const char* DeviceStatusName(DeviceStatus status) {
  switch (status) {
    case DeviceStatus::kActive:
      return "active";
    case DeviceStatus::kSuspended:
      return "suspended";
    case DeviceStatus::kDecommissioned:
      return "decommissioned";
  }
  return "active";
}

absl::StatusOr<Device> PgDeviceStore::Create(const Device& device, const RequestContext& ctx) {
  Device out;
  RETURN_IF_ERROR(pool_.Transact(
      "register device", TxMode::kReadWrite, [&](pqxx::transaction_base& tx) -> absl::Status {
        const pqxx::result r = tx.exec_params(
            kInsertSql, device.comm_id, DeviceStatusName(device.status), device.status_reason,
            device.display_name, JsonObject(device.attributes), PgTextArray(device.groups));
        if (r.empty()) {
          return absl::AlreadyExistsError(
              absl::StrCat("device \"", device.comm_id, "\" is already registered"));
        }
        ASSIGN_OR_RETURN(out, FromRow(r[0]));
        Journal(tx, ctx,
                {"RegisterDevice", "device", {device.comm_id}, false,
                 JsonObject({{"status", DeviceStatusName(device.status)}})});
        return absl::OkStatus();
      },
      &ctx));
  return out;
}

absl::StatusOr<std::vector<absl::Status>> PgDeviceStore::CreateBatch(
    const std::vector<Device>& devices, const RequestContext& ctx) {
  std::vector<absl::Status> results(devices.size());
  if (devices.empty()) return results;
  std::string json = "[";
  json.reserve(devices.size() * 128);
  for (size_t i = 0; i < devices.size(); ++i) {
    if (i > 0) json.push_back(',');
    AppendDeviceJson(&json, devices[i]);
  }
  json.push_back(']');

  std::set<std::string> inserted;
  RETURN_IF_ERROR(pool_.Transact(
      "register devices", TxMode::kReadWrite, [&](pqxx::transaction_base& tx) -> absl::Status {
        inserted.clear();
        std::vector<std::string> keys;
        for (const auto& row : tx.exec_params(kInsertBatchSql, json)) {
          inserted.insert(row[0].as<std::string>());
        }
        keys.reserve(inserted.size());
        // Journal in request order, so revisions follow the caller's order.
        for (const auto& d : devices) {
          if (inserted.count(d.comm_id) != 0) keys.push_back(d.comm_id);
        }
        // One audit entry for the call, naming every device it registered.
        const std::string details =
            absl::StrCat("{\"batch_size\":", devices.size(), ",\"registered\":", keys.size(),
                         ",\"comm_ids\":", JsonArray(keys), "}");
        Journal(tx, ctx, {"BatchRegisterDevices", "device", keys, false, details});
        return absl::OkStatus();
      },
      &ctx));
  for (size_t i = 0; i < devices.size(); ++i) {
    if (inserted.count(devices[i].comm_id) == 0) {
      results[i] = absl::AlreadyExistsError(
          absl::StrCat("device \"", devices[i].comm_id, "\" is already registered"));
    }
  }
  return results;
}

absl::StatusOr<Device> PgDeviceStore::Get(const std::string& comm_id) {
  Device out;
  RETURN_IF_ERROR(pool_.Transact("get device", TxMode::kReadOnly,
                                 [&](pqxx::transaction_base& tx) -> absl::Status {
                                   const pqxx::result r = tx.exec_params(kGetSql, comm_id);
                                   if (r.empty()) return NotFound(comm_id);
                                   ASSIGN_OR_RETURN(out, FromRow(r[0]));
                                   return absl::OkStatus();
                                 }));
  return out;
}

absl::StatusOr<std::vector<Device>> PgDeviceStore::List(const DeviceFilter& filter,
                                                        const std::string& after, int limit) {
  std::vector<Device> out;
  const std::string status = filter.status ? DeviceStatusName(*filter.status) : "";
  const std::string attributes = JsonObject(filter.attributes);
  RETURN_IF_ERROR(pool_.Transact(
      "list devices", TxMode::kReadOnly, [&](pqxx::transaction_base& tx) -> absl::Status {
        out.clear();
        const pqxx::result r = tx.exec_params(kListSql, after, status, filter.comm_id_prefix,
                                              filter.group, attributes, limit);
        out.reserve(r.size());
        for (const auto& row : r) {
          ASSIGN_OR_RETURN(Device d, FromRow(row));
          out.push_back(std::move(d));
        }
        return absl::OkStatus();
      }));
  return out;
}

absl::StatusOr<Device> PgDeviceStore::Update(const std::string& comm_id,
                                             const DeviceUpdate& update,
                                             std::optional<int64_t> expected_version,
                                             const RequestContext& ctx) {
  Device out;
  std::optional<std::string> attributes, groups;
  if (update.attributes) attributes = JsonObject(*update.attributes);
  if (update.groups) groups = PgTextArray(*update.groups);
  RETURN_IF_ERROR(pool_.Transact(
      "update device", TxMode::kReadWrite, [&](pqxx::transaction_base& tx) -> absl::Status {
        RETURN_IF_ERROR(LockForChange(tx, comm_id, expected_version).status());
        // NULL parameters leave a field as it is (coalesce in kUpdateSql).
        const pqxx::result r =
            tx.exec_params(kUpdateSql, comm_id, NullableParam(update.display_name),
                           NullableParam(attributes), NullableParam(groups));
        ASSIGN_OR_RETURN(out, FromRow(r[0]));
        std::map<std::string, std::string> details;
        if (update.display_name) details["display_name"] = *update.display_name;
        if (attributes) details["attributes"] = *attributes;
        if (groups) details["groups"] = *groups;
        Journal(tx, ctx, {"UpdateDevice", "device", {comm_id}, false, JsonObject(details)});
        return absl::OkStatus();
      },
      &ctx));
  return out;
}

absl::StatusOr<Device> PgDeviceStore::SetStatus(const std::string& comm_id, DeviceStatus status,
                                                const std::string& reason,
                                                std::optional<int64_t> expected_version,
                                                const RequestContext& ctx) {
  Device out;
  RETURN_IF_ERROR(pool_.Transact(
      "set device status", TxMode::kReadWrite, [&](pqxx::transaction_base& tx) -> absl::Status {
        ASSIGN_OR_RETURN(DeviceStatus current, LockForChange(tx, comm_id, expected_version));
        if (current == status) {
          // Already there: nothing to change, nothing to journal.
          const pqxx::result r = tx.exec_params(kGetSql, comm_id);
          ASSIGN_OR_RETURN(out, FromRow(r[0]));
          return absl::OkStatus();
        }
        if (current == DeviceStatus::kDecommissioned) {
          return absl::FailedPreconditionError(absl::StrCat(
              "device \"", comm_id, "\" is decommissioned; decommissioning is final"));
        }
        const pqxx::result r =
            tx.exec_params(kSetStatusSql, comm_id, DeviceStatusName(status), reason);
        ASSIGN_OR_RETURN(out, FromRow(r[0]));
        Journal(tx, ctx,
                {"SetDeviceStatus", "device", {comm_id}, false,
                 JsonObject({{"from", DeviceStatusName(current)},
                              {"to", DeviceStatusName(status)},
                              {"reason", reason}})});
        return absl::OkStatus();
      },
      &ctx));
  return out;
}

absl::Status PgDeviceStore::Delete(const std::string& comm_id,
                                   std::optional<int64_t> expected_version,
                                   const RequestContext& ctx) {
  absl::Status st = pool_.Transact(
      "delete device", TxMode::kReadWrite, [&](pqxx::transaction_base& tx) -> absl::Status {
        RETURN_IF_ERROR(LockForChange(tx, comm_id, expected_version).status());
        tx.exec_params(kDeleteSql, comm_id);
        Journal(tx, ctx, {"DeleteDevice", "device", {comm_id}, true, "{}"});
        return absl::OkStatus();
      },
      &ctx);
  if (st.code() == absl::StatusCode::kFailedPrecondition &&
      ConstraintName(st) == "certificates_comm_id_fkey") {
    return absl::FailedPreconditionError(
        absl::StrCat("device \"", comm_id,
                     "\" has certificates and cannot be deleted; decommission it instead"));
  }
  return st;
}

}  // namespace fleetca::storage
