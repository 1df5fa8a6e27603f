#include "storage/pg_acl_store.h"

#include <pqxx/pqxx>

#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/json.h"
#include "common/status_macros.h"
#include "storage/journal.h"
#include "storage/pg_errors.h"
#include "storage/pg_util.h"

namespace fleetca::storage {
namespace {

// Columns read by ProfileFromRow, in order. The rules come out as two text arrays (the
// patterns and the accesses, in rule order): no JSON to parse on this side.
#define FLEETCA_PROFILE_COLUMNS                                                             \
  "name, description, "                                                                     \
  "ARRAY(SELECT r.e ->> 'pattern' FROM jsonb_array_elements(rules) WITH ORDINALITY "       \
  "AS r (e, n) ORDER BY r.n), "                                                             \
  "ARRAY(SELECT r.e ->> 'access' FROM jsonb_array_elements(rules) WITH ORDINALITY "        \
  "AS r (e, n) ORDER BY r.n), "                                                             \
  "builtin, version, (extract(epoch FROM created_at) * 1000000)::bigint, "                 \
  "(extract(epoch FROM updated_at) * 1000000)::bigint"

#define FLEETCA_ASSIGNMENT_COLUMNS \
  "subject_type, subject, profile_name, (extract(epoch FROM created_at) * 1000000)::bigint"

constexpr char kInsertProfileSql[] =
    "INSERT INTO acl_profiles (name, description, rules) VALUES ($1, $2, $3::jsonb) "
    "ON CONFLICT (name) DO NOTHING RETURNING " FLEETCA_PROFILE_COLUMNS;

constexpr char kGetProfileSql[] =
    "SELECT " FLEETCA_PROFILE_COLUMNS " FROM acl_profiles WHERE name = $1";

// Keyset pagination on the primary key (COLLATE "C": byte order).
constexpr char kListProfilesSql[] =
    "SELECT " FLEETCA_PROFILE_COLUMNS " FROM acl_profiles WHERE name > $1 ORDER BY name LIMIT $2";

constexpr char kLockProfileSql[] =
    "SELECT version, builtin FROM acl_profiles WHERE name = $1 FOR UPDATE";

// NULL parameters leave a field as it is.
constexpr char kUpdateProfileSql[] =
    "UPDATE acl_profiles SET description = coalesce($2, description), "
    "rules = coalesce($3::jsonb, rules), version = version + 1, updated_at = now() "
    "WHERE name = $1 RETURNING " FLEETCA_PROFILE_COLUMNS;

constexpr char kCountAssignmentsSql[] =
    "SELECT count(*) FROM acl_assignments WHERE profile_name = $1";

constexpr char kDeleteProfileSql[] = "DELETE FROM acl_profiles WHERE name = $1";

// Assign's existence checks. FOR KEY SHARE keeps the row from being deleted until commit
// (a concurrent DeleteProfile waits, then sees the assignment) without blocking updates.
constexpr char kShareProfileSql[] = "SELECT 1 FROM acl_profiles WHERE name = $1 FOR KEY SHARE";
constexpr char kShareDeviceSql[] = "SELECT 1 FROM devices WHERE comm_id = $1 FOR KEY SHARE";
constexpr char kShareIdentitySql[] = "SELECT 1 FROM identities WHERE name = $1 FOR KEY SHARE";

constexpr char kInsertAssignmentSql[] =
    "INSERT INTO acl_assignments (profile_name, subject_type, subject) VALUES ($1, $2, $3) "
    "ON CONFLICT DO NOTHING RETURNING " FLEETCA_ASSIGNMENT_COLUMNS;

constexpr char kGetAssignmentSql[] =
    "SELECT " FLEETCA_ASSIGNMENT_COLUMNS " FROM acl_assignments "
    "WHERE profile_name = $1 AND subject_type = $2 AND subject = $3";

constexpr char kDeleteAssignmentSql[] =
    "DELETE FROM acl_assignments WHERE profile_name = $1 AND subject_type = $2 AND subject = $3 "
    "RETURNING 1";

// Keyset pagination on (subject_type, subject, profile_name), all COLLATE "C" (byte order;
// index acl_assignments_subject). Empty filters match everything; ('', '', '') comes before
// every row (subject_type is never empty).
constexpr char kListAssignmentsSql[] =
    "SELECT " FLEETCA_ASSIGNMENT_COLUMNS " FROM acl_assignments "
    "WHERE ($1 = '' OR subject_type = $1) AND ($2 = '' OR subject = $2) "
    "AND ($3 = '' OR profile_name = $3) "
    "AND (subject_type, subject, profile_name) > ($4, $5, $6) "
    "ORDER BY subject_type, subject, profile_name LIMIT $7";

#undef FLEETCA_PROFILE_COLUMNS
#undef FLEETCA_ASSIGNMENT_COLUMNS

// Constraint names (migrations/0001 and 0006) the errors below are worded for.
constexpr char kAssignmentProfileFkey[] = "acl_assignments_profile_name_fkey";
constexpr char kAssignmentSubjectCheck[] = "acl_assignments_check";
constexpr char kBuiltinTrigger[] = "acl_profiles_builtin_is_permanent";

absl::StatusOr<AclProfileRow> ProfileFromRow(const pqxx::row& row) {
  AclProfileRow p;
  p.name = row[0].as<std::string>();
  p.description = row[1].as<std::string>();
  const std::vector<std::string> patterns = ParseTextArray(row[2]);
  const std::vector<std::string> accesses = ParseTextArray(row[3]);
  if (patterns.size() != accesses.size()) {
    return absl::InternalError("malformed ACL rules in the database");
  }
  p.rules.reserve(patterns.size());
  for (size_t i = 0; i < patterns.size(); ++i) {
    const std::optional<AclRuleAccess> access = AclRuleAccessFromName(accesses[i]);
    if (!access) return absl::InternalError("unknown ACL access in the database");
    p.rules.push_back({patterns[i], *access});
  }
  p.builtin = row[4].as<bool>();
  p.version = row[5].as<int64_t>();
  p.create_time = FromMicros(row[6].as<int64_t>());
  p.update_time = FromMicros(row[7].as<int64_t>());
  return p;
}

absl::StatusOr<AclAssignmentRow> AssignmentFromRow(const pqxx::row& row) {
  AclAssignmentRow a;
  const std::optional<AclSubject> type = AclSubjectFromName(row[0].as<std::string>());
  if (!type) return absl::InternalError("unknown ACL subject type in the database");
  a.subject_type = *type;
  a.subject_id = row[1].as<std::string>();
  a.profile_name = row[2].as<std::string>();
  a.create_time = FromMicros(row[3].as<int64_t>());
  return a;
}

// RulesJson writes rules as the jsonb array of acl_profiles.rules (a statement parameter).
std::string RulesJson(const std::vector<AclRuleRow>& rules) {
  std::string out = "[";
  for (size_t i = 0; i < rules.size(); ++i) {
    if (i > 0) out.push_back(',');
    out.append("{\"pattern\":");
    AppendJsonString(&out, rules[i].pattern);
    out.append(",\"access\":");
    AppendJsonString(&out, AclRuleAccessName(rules[i].access));
    out.push_back('}');
  }
  out.push_back(']');
  return out;
}

std::string SubjectText(const AclAssignmentRow& a) {
  if (a.subject_type == AclSubject::kAllDevices) return "all devices";
  return absl::StrCat(AclSubjectName(a.subject_type), " \"", a.subject_id, "\"");
}

absl::Status ProfileNotFound(absl::string_view field, const std::string& name) {
  return absl::NotFoundError(absl::StrCat(field, ": no ACL profile \"", name, "\""));
}

absl::Status BuiltIn(const std::string& name) {
  return absl::FailedPreconditionError(
      absl::StrCat("name: profile \"", name, "\" is built in"));
}

// LockProfile locks a profile's row and checks its version. Returns whether it is built in.
absl::StatusOr<bool> LockProfile(pqxx::transaction_base& tx, const std::string& name,
                                 std::optional<int64_t> expected_version) {
  const pqxx::result r = tx.exec_params(kLockProfileSql, name);
  if (r.empty()) return ProfileNotFound("name", name);
  const int64_t version = r[0][0].as<int64_t>();
  if (expected_version.has_value() && *expected_version != version) {
    return absl::AbortedError(absl::StrCat("etag: ACL profile \"", name, "\" changed since etag \"",
                                           *expected_version, "\" was read (now \"", version,
                                           "\"): read it again and retry"));
  }
  return r[0][1].as<bool>();
}

// ProfileConstraintError words a violated constraint of acl_profiles (the callers validate
// first: this is the database's backstop); other statuses pass unchanged.
absl::Status ProfileConstraintError(const absl::Status& st) {
  if (st.code() != absl::StatusCode::kFailedPrecondition) return st;
  const std::string constraint = ConstraintName(st);
  if (constraint == "acl_profiles_name_check") {
    return absl::InvalidArgumentError(
        "profile.name: 1 to 63 characters of [a-z0-9._-], starting with a letter or digit");
  }
  if (constraint == "acl_profiles_description_check" ||
      constraint == "acl_profiles_description_size") {
    return absl::InvalidArgumentError("profile.description: at most 256 bytes");
  }
  if (constraint == "acl_profiles_rules_check" || constraint == "acl_profiles_rules_count" ||
      constraint == "acl_profiles_rules_well_formed") {
    return absl::InvalidArgumentError(
        "profile.rules: at most 64 rules, each with a non-empty pattern and a known access");
  }
  return st;
}

}  // namespace

absl::StatusOr<AclProfileRow> PgAclStore::CreateProfile(const AclProfileRow& profile,
                                                        const RequestContext& ctx) {
  AclProfileRow out;
  const std::string rules = RulesJson(profile.rules);
  const absl::Status st = pool_.Transact(
      "create ACL profile", TxMode::kReadWrite, [&](pqxx::transaction_base& tx) -> absl::Status {
        const pqxx::result r =
            tx.exec_params(kInsertProfileSql, profile.name, profile.description, rules);
        if (r.empty()) {
          return absl::AlreadyExistsError(
              absl::StrCat("profile.name: \"", profile.name, "\" already exists"));
        }
        ASSIGN_OR_RETURN(out, ProfileFromRow(r[0]));
        Journal(tx, ctx,
                {"CreateAclProfile", "acl_profile", {profile.name}, false,
                 JsonObject({{"rules", std::to_string(profile.rules.size())}})});
        return absl::OkStatus();
      },
      &ctx);
  if (!st.ok()) return ProfileConstraintError(st);
  return out;
}

absl::StatusOr<AclProfileRow> PgAclStore::GetProfile(const std::string& name) {
  AclProfileRow out;
  RETURN_IF_ERROR(pool_.Transact("get ACL profile", TxMode::kReadOnly,
                                 [&](pqxx::transaction_base& tx) -> absl::Status {
                                   const pqxx::result r = tx.exec_params(kGetProfileSql, name);
                                   if (r.empty()) return ProfileNotFound("name", name);
                                   ASSIGN_OR_RETURN(out, ProfileFromRow(r[0]));
                                   return absl::OkStatus();
                                 }));
  return out;
}

absl::StatusOr<std::vector<AclProfileRow>> PgAclStore::ListProfiles(const std::string& after,
                                                                    int limit) {
  std::vector<AclProfileRow> out;
  RETURN_IF_ERROR(pool_.Transact(
      "list ACL profiles", TxMode::kReadOnly, [&](pqxx::transaction_base& tx) -> absl::Status {
        out.clear();
        const pqxx::result r = tx.exec_params(kListProfilesSql, after, limit);
        out.reserve(r.size());
        for (const auto& row : r) {
          ASSIGN_OR_RETURN(AclProfileRow p, ProfileFromRow(row));
          out.push_back(std::move(p));
        }
        return absl::OkStatus();
      }));
  return out;
}

absl::StatusOr<AclProfileRow> PgAclStore::UpdateProfile(const std::string& name,
                                                        const AclProfileUpdate& update,
                                                        std::optional<int64_t> expected_version,
                                                        const RequestContext& ctx) {
  AclProfileRow out;
  std::optional<std::string> rules;
  if (update.rules) rules = RulesJson(*update.rules);
  // The audit entry names the fields replaced and the new rule count, not their content.
  std::vector<std::string> fields;
  std::map<std::string, std::string> details;
  if (update.description) fields.push_back("description");
  if (update.rules) {
    fields.push_back("rules");
    details["rules"] = std::to_string(update.rules->size());
  }
  details["fields"] = absl::StrJoin(fields, ",");
  const absl::Status st = pool_.Transact(
      "update ACL profile", TxMode::kReadWrite, [&](pqxx::transaction_base& tx) -> absl::Status {
        RETURN_IF_ERROR(LockProfile(tx, name, expected_version).status());
        const pqxx::result r = tx.exec_params(kUpdateProfileSql, name,
                                              NullableParam(update.description),
                                              NullableParam(rules));
        ASSIGN_OR_RETURN(out, ProfileFromRow(r[0]));
        Journal(tx, ctx, {"UpdateAclProfile", "acl_profile", {name}, false, JsonObject(details)});
        return absl::OkStatus();
      },
      &ctx);
  if (!st.ok()) return ProfileConstraintError(st);
  return out;
}

absl::Status PgAclStore::DeleteProfile(const std::string& name,
                                       std::optional<int64_t> expected_version,
                                       const RequestContext& ctx) {
  const absl::Status st = pool_.Transact(
      "delete ACL profile", TxMode::kReadWrite, [&](pqxx::transaction_base& tx) -> absl::Status {
        ASSIGN_OR_RETURN(const bool builtin, LockProfile(tx, name, expected_version));
        if (builtin) return BuiltIn(name);
        // The row lock above waits for any Assign holding the profile (FOR KEY SHARE) to
        // finish, and keeps new ones out: the count is exact until commit.
        const int64_t assigned =
            tx.exec_params1(kCountAssignmentsSql, name)[0].as<int64_t>();
        if (assigned > 0) {
          return absl::FailedPreconditionError(
              absl::StrCat("name: profile \"", name, "\" is assigned to ", assigned,
                           assigned == 1 ? " subject" : " subjects", ": unassign it first"));
        }
        tx.exec_params(kDeleteProfileSql, name);
        Journal(tx, ctx, {"DeleteAclProfile", "acl_profile", {name}, true, "{}"});
        return absl::OkStatus();
      },
      &ctx);
  if (st.code() == absl::StatusCode::kFailedPrecondition) {
    // The database's backstops behind the checks above.
    const std::string constraint = ConstraintName(st);
    if (constraint == kBuiltinTrigger) return BuiltIn(name);
    if (constraint == kAssignmentProfileFkey) {
      return absl::FailedPreconditionError(absl::StrCat(
          "name: profile \"", name, "\" is assigned to subjects: unassign it first"));
    }
  }
  return st;
}

absl::StatusOr<std::pair<AclAssignmentRow, bool>> PgAclStore::Assign(
    const AclAssignmentRow& assignment, const RequestContext& ctx) {
  std::pair<AclAssignmentRow, bool> out;
  const std::string subject_type = AclSubjectName(assignment.subject_type);
  const absl::Status st = pool_.Transact(
      "assign ACL profile", TxMode::kReadWrite, [&](pqxx::transaction_base& tx) -> absl::Status {
        if (tx.exec_params(kShareProfileSql, assignment.profile_name).empty()) {
          return ProfileNotFound("assignment.profile_name", assignment.profile_name);
        }
        if (assignment.subject_type == AclSubject::kDevice &&
            tx.exec_params(kShareDeviceSql, assignment.subject_id).empty()) {
          return absl::NotFoundError(
              absl::StrCat("assignment.subject_id: no device \"", assignment.subject_id, "\""));
        }
        if (assignment.subject_type == AclSubject::kIdentity &&
            tx.exec_params(kShareIdentitySql, assignment.subject_id).empty()) {
          return absl::NotFoundError(absl::StrCat("assignment.subject_id: no identity \"",
                                                  assignment.subject_id, "\""));
        }
        // ON CONFLICT DO NOTHING waits for a concurrent insert of the same assignment to
        // commit; the read that follows (a new snapshot: READ COMMITTED) then sees it. It can
        // miss it only when an Unassign removed it in between: insert again then.
        for (int attempt = 0; attempt < 3; ++attempt) {
          const pqxx::result inserted =
              tx.exec_params(kInsertAssignmentSql, assignment.profile_name, subject_type,
                             assignment.subject_id);
          if (!inserted.empty()) {
            ASSIGN_OR_RETURN(out.first, AssignmentFromRow(inserted[0]));
            out.second = false;
            Journal(tx, ctx,
                    {"AssignAclProfile", "acl_assignment", {AssignmentKey(assignment)}, false,
                     "{}"});
            return absl::OkStatus();
          }
          const pqxx::result existing =
              tx.exec_params(kGetAssignmentSql, assignment.profile_name, subject_type,
                             assignment.subject_id);
          if (!existing.empty()) {
            // Already assigned: nothing changed, nothing to journal.
            ASSIGN_OR_RETURN(out.first, AssignmentFromRow(existing[0]));
            out.second = true;
            return absl::OkStatus();
          }
        }
        return absl::AbortedError(
            "assign ACL profile: concurrent changes to this assignment, retry the call");
      },
      &ctx);
  if (st.code() == absl::StatusCode::kFailedPrecondition) {
    const std::string constraint = ConstraintName(st);
    if (constraint == kAssignmentProfileFkey) {
      return ProfileNotFound("assignment.profile_name", assignment.profile_name);
    }
    if (constraint == kAssignmentSubjectCheck) {
      return absl::InvalidArgumentError(
          "assignment.subject_id: must be empty for ACL_SUBJECT_TYPE_ALL_DEVICES, and only for it");
    }
  }
  if (!st.ok()) return st;
  return out;
}

absl::Status PgAclStore::Unassign(const AclAssignmentRow& assignment, const RequestContext& ctx) {
  return pool_.Transact(
      "unassign ACL profile", TxMode::kReadWrite, [&](pqxx::transaction_base& tx) -> absl::Status {
        if (tx.exec_params(kDeleteAssignmentSql, assignment.profile_name,
                           AclSubjectName(assignment.subject_type), assignment.subject_id)
                .empty()) {
          return absl::NotFoundError(absl::StrCat("assignment: profile \"", assignment.profile_name,
                                                  "\" is not assigned to ",
                                                  SubjectText(assignment)));
        }
        Journal(tx, ctx,
                {"UnassignAclProfile", "acl_assignment", {AssignmentKey(assignment)}, true, "{}"});
        return absl::OkStatus();
      },
      &ctx);
}

absl::StatusOr<std::vector<AclAssignmentRow>> PgAclStore::ListAssignments(
    const AclAssignmentFilter& filter, const std::optional<AclAssignmentRow>& after, int limit) {
  std::vector<AclAssignmentRow> out;
  const std::string subject_type = filter.subject_type ? AclSubjectName(*filter.subject_type) : "";
  const std::string after_type = after ? AclSubjectName(after->subject_type) : "";
  const std::string after_subject = after ? after->subject_id : "";
  const std::string after_profile = after ? after->profile_name : "";
  RETURN_IF_ERROR(pool_.Transact(
      "list ACL assignments", TxMode::kReadOnly, [&](pqxx::transaction_base& tx) -> absl::Status {
        out.clear();
        const pqxx::result r =
            tx.exec_params(kListAssignmentsSql, subject_type, filter.subject_id,
                           filter.profile_name, after_type, after_subject, after_profile, limit);
        out.reserve(r.size());
        for (const auto& row : r) {
          ASSIGN_OR_RETURN(AclAssignmentRow a, AssignmentFromRow(row));
          out.push_back(std::move(a));
        }
        return absl::OkStatus();
      }));
  return out;
}

}  // namespace fleetca::storage
