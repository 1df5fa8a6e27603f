#include "storage/pg_errors.h"


#include <pqxx/pqxx>
#include <string>

#include "absl/random/random.h"
#include "absl/strings/cord.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/logging.h"

namespace fleetca::storage {
namespace {

constexpr char kConstraintPayload[] = "fleetca.constraint";

std::string IncidentId() {
  static absl::Mutex mu;
  static absl::BitGen* gen = new absl::BitGen();
  absl::MutexLock lock(&mu);
  return absl::StrFormat("%08x", absl::Uniform<uint32_t>(*gen));
}

bool IsUnavailableState(const std::string& state) {
  return absl::StartsWith(state, "08") || state == "57P01" || state == "57P02" ||
         state == "57P03" || state == "53300" || state == "57014" || state == "55P03";
}

absl::Status Logged(absl::StatusCode code, absl::string_view message,
                    absl::string_view operation, const std::exception& e,
                    const std::string& state) {
  const std::string id = IncidentId();
  LogWarning("database error", {{"operation", std::string(operation)},
                                {"sqlstate", state},
                                {"detail", e.what()},
                                {"incident", id}});
  return absl::Status(code, absl::StrCat(operation, ": ", message, " (incident ", id, ")"));
}

}  // namespace

bool IsConnectionLoss(const std::exception& e) {
  if (dynamic_cast<const pqxx::in_doubt_error*>(&e) != nullptr) return false;
  if (dynamic_cast<const pqxx::broken_connection*>(&e) != nullptr) return true;
  if (const auto* sql = dynamic_cast<const pqxx::sql_error*>(&e)) {
    const std::string state = sql->sqlstate();
    return absl::StartsWith(state, "08") || state == "57P01" || state == "57P02" ||
           state == "57P03";
  }
  return false;
}

absl::Status StatusFromException(const std::exception& e, absl::string_view operation) {
  if (dynamic_cast<const pqxx::in_doubt_error*>(&e) != nullptr) {
    return Logged(absl::StatusCode::kUnavailable,
                  "database connection lost during commit; the outcome is unknown, read the "
                  "object back before retrying",
                  operation, e, "");
  }
  if (dynamic_cast<const pqxx::broken_connection*>(&e) != nullptr) {
    return Logged(absl::StatusCode::kUnavailable, "database unavailable, retry later", operation,
                  e, "");
  }
  const auto* sql = dynamic_cast<const pqxx::sql_error*>(&e);
  if (sql == nullptr) {
    return Logged(absl::StatusCode::kInternal, "internal error", operation, e, "");
  }
  const std::string state = sql->sqlstate();
  absl::Status status;
  if (state == "23505") {
    status = absl::AlreadyExistsError(absl::StrCat(operation, ": already exists"));
  } else if (state == "23503" || state == "23514" || state == "23502" || state == "23P01" ||
             state == "23001") {
    status = absl::FailedPreconditionError(
        absl::StrCat(operation, ": the change conflicts with a constraint"));
  } else if (state == "40001" || state == "40P01") {
    return Logged(absl::StatusCode::kAborted, "concurrent change, retry the call", operation, e,
                  state);
  } else if (IsUnavailableState(state)) {
    return Logged(absl::StatusCode::kUnavailable, "database unavailable, retry later",
                  operation, e, state);
  } else {
    return Logged(absl::StatusCode::kInternal, "internal error", operation, e, state);
  }
  // Integrity violations: the constraint name tells stores which rule was hit.
  // libpqxx 6.4 does not expose the constraint name; PostgreSQL puts it in the primary
  // message for CHECK and in the detail for others, so stores match on names below.
  LogDebug("constraint violation", {{"operation", std::string(operation)},
                                    {"sqlstate", state},
                                    {"detail", e.what()}});
  const std::string what = e.what();
  size_t q1 = what.find("constraint \"");
  if (q1 != std::string::npos) {
    q1 += 12;
    const size_t q2 = what.find('"', q1);
    if (q2 != std::string::npos) {
      status.SetPayload(kConstraintPayload, absl::Cord(what.substr(q1, q2 - q1)));
    }
  }
  return status;
}

std::string ConstraintName(const absl::Status& status) {
  auto payload = status.GetPayload(kConstraintPayload);
  return payload.has_value() ? std::string(*payload) : std::string();
}

}  // namespace fleetca::storage
