#include "storage/pg_issuer_store.h"

#include <pqxx/pqxx>

#include "absl/strings/str_cat.h"
#include "common/json.h"
#include "common/status_macros.h"
#include "storage/journal.h"
#include "storage/pg_errors.h"
#include "storage/pg_util.h"

namespace fleetca::storage {
namespace {

#define FLEETCA_ISSUER_COLUMNS                                                                \
  "id, purpose, coalesce(parent_id, ''), state, algorithm, subject, "                         \
  "encode(coalesce(certificate_der, ''), 'hex'), encode(coalesce(chain_der, ''), 'hex'), "     \
  "encode(coalesce(csr_der, ''), 'hex'), "                                                    \
  "(extract(epoch FROM not_before) * 1000000)::bigint, "                                     \
  "(extract(epoch FROM not_after) * 1000000)::bigint, "                                      \
  "encode(coalesce(key_ciphertext, ''), 'hex'), coalesce(kek_id, ''), version, "             \
  "(extract(epoch FROM created_at) * 1000000)::bigint, "                                     \
  "(extract(epoch FROM updated_at) * 1000000)::bigint, "                                     \
  "(extract(epoch FROM activated_at) * 1000000)::bigint, "                                   \
  "(extract(epoch FROM retired_at) * 1000000)::bigint"

constexpr char kInsertSql[] =
    "INSERT INTO issuers (id, purpose, parent_id, state, algorithm, subject, certificate_der, "
    "chain_der, csr_der, not_before, not_after, key_ciphertext, kek_id, activated_at) VALUES ($1, $2, "
    "nullif($3, ''), $4, $5, $6, nullif(decode($7, 'hex'), ''), nullif(decode($8, 'hex'), ''), "
    "nullif(decode($9, 'hex'), ''), to_timestamp($10::bigint / 1000000.0), "
    "to_timestamp($11::bigint / 1000000.0), nullif(decode($12, 'hex'), ''), nullif($13, ''), "
    "CASE WHEN $4 = 'active' THEN now() END)";

// External CAs share the id namespace but are not fleetca's issuers (ExternalCaStore).
constexpr char kGetSql[] = "SELECT " FLEETCA_ISSUER_COLUMNS
                           " FROM issuers WHERE id = $1 AND purpose <> 'external'";

constexpr char kListSql[] = "SELECT " FLEETCA_ISSUER_COLUMNS
                            " FROM issuers WHERE purpose <> 'external' ORDER BY id";

constexpr char kLockSql[] = "SELECT state, version, purpose FROM issuers WHERE id = $1 FOR UPDATE";

constexpr char kRetireSql[] =
    "UPDATE issuers SET state = 'retired', retired_at = now(), version = version + 1, "
    "updated_at = now() "
    "WHERE purpose = $1 AND state = 'active' RETURNING id";

constexpr char kActivateSql[] =
    "UPDATE issuers SET state = 'active', certificate_der = decode($2, 'hex'), "
    "chain_der = nullif(decode($3, 'hex'), ''), not_before = to_timestamp($4::bigint / 1000000.0), "
    "not_after = to_timestamp($5::bigint / 1000000.0), parent_id = nullif($6, ''), "
    "csr_der = NULL, activated_at = now(), version = version + 1, updated_at = now() "
    "WHERE id = $1";

#undef FLEETCA_ISSUER_COLUMNS

}  // namespace

absl::StatusOr<IssuerPurpose> IssuerPurposeFromName(const std::string& s) {
  if (s == "root") return IssuerPurpose::kRoot;
  if (s == "devices") return IssuerPurpose::kDevices;
  if (s == "brokers") return IssuerPurpose::kBrokers;
  if (s == "operators") return IssuerPurpose::kOperators;
  return absl::InternalError("unknown issuer purpose in the database");
}

namespace {

absl::StatusOr<IssuerState> ParseState(const std::string& s) {
  if (s == "pending") return IssuerState::kPending;
  if (s == "active") return IssuerState::kActive;
  if (s == "retired") return IssuerState::kRetired;
  return absl::InternalError("unknown issuer state in the database");
}

absl::StatusOr<Issuer> FromRow(const pqxx::row& row) {
  Issuer i;
  i.id = row[0].as<std::string>();
  ASSIGN_OR_RETURN(i.purpose, IssuerPurposeFromName(row[1].as<std::string>()));
  i.parent_id = row[2].as<std::string>();
  ASSIGN_OR_RETURN(i.state, ParseState(row[3].as<std::string>()));
  i.algorithm = row[4].as<std::string>();
  i.subject = row[5].as<std::string>();
  ASSIGN_OR_RETURN(i.certificate_der, FromHex(row[6].as<std::string>()));
  ASSIGN_OR_RETURN(i.chain_der, FromHex(row[7].as<std::string>()));
  ASSIGN_OR_RETURN(i.csr_der, FromHex(row[8].as<std::string>()));
  i.not_before = OptionalTime(row[9]);
  i.not_after = OptionalTime(row[10]);
  ASSIGN_OR_RETURN(i.key_ciphertext, FromHex(row[11].as<std::string>()));
  i.kek_id = row[12].as<std::string>();
  i.version = row[13].as<int64_t>();
  i.create_time = FromMicros(row[14].as<int64_t>());
  i.update_time = FromMicros(row[15].as<int64_t>());
  i.activate_time = OptionalTime(row[16]);
  i.retire_time = OptionalTime(row[17]);
  return i;
}

std::optional<std::string> MicrosText(const std::optional<absl::Time>& t) {
  if (!t.has_value()) return std::nullopt;
  return std::to_string(ToMicros(*t));
}

void Insert(pqxx::transaction_base& tx, const Issuer& i) {
  const std::optional<std::string> nb = MicrosText(i.not_before), na = MicrosText(i.not_after);
  tx.exec_params(kInsertSql, i.id, IssuerPurposeName(i.purpose), i.parent_id,
                 IssuerStateName(i.state), i.algorithm, i.subject, ToHex(i.certificate_der),
                 ToHex(i.chain_der), ToHex(i.csr_der), NullableParam(nb),
                 NullableParam(na), ToHex(i.key_ciphertext), i.kek_id);
}

}  // namespace

const char* IssuerPurposeName(IssuerPurpose purpose) {
  switch (purpose) {
    case IssuerPurpose::kRoot:
      return "root";
    case IssuerPurpose::kDevices:
      return "devices";
    case IssuerPurpose::kBrokers:
      return "brokers";
    case IssuerPurpose::kOperators:
      return "operators";
  }
  return "root";
}

const char* IssuerStateName(IssuerState state) {
  switch (state) {
    case IssuerState::kPending:
      return "pending";
    case IssuerState::kActive:
      return "active";
    case IssuerState::kRetired:
      return "retired";
  }
  return "pending";
}

absl::Status PgIssuerStore::CreateAll(const std::vector<Issuer>& issuers,
                                      const RequestContext& ctx) {
  if (issuers.empty()) return absl::OkStatus();
  absl::Status st = pool_.Transact(
      "create issuers", TxMode::kReadWrite,
      [&](pqxx::transaction_base& tx) -> absl::Status {
        std::vector<std::string> ids;
        for (const Issuer& i : issuers) {
          Insert(tx, i);
          ids.push_back(i.id);
        }
        Journal(tx, ctx,
                {"CreateIssuers", "issuer", ids, false,
                 absl::StrCat("{\"issuers\":", JsonArray(ids), "}")});
        return absl::OkStatus();
      },
      &ctx);
  if (st.code() == absl::StatusCode::kAlreadyExists) {
    return absl::AlreadyExistsError(
        "an issuer with this id, or an active issuer for this purpose, already exists");
  }
  return st;
}

absl::StatusOr<Issuer> PgIssuerStore::Get(const std::string& id) {
  Issuer out;
  RETURN_IF_ERROR(pool_.Transact("get issuer", TxMode::kReadOnly,
                                 [&](pqxx::transaction_base& tx) -> absl::Status {
                                   const pqxx::result r = tx.exec_params(kGetSql, id);
                                   if (r.empty()) {
                                     return absl::NotFoundError(
                                         absl::StrCat("issuer \"", id, "\" does not exist"));
                                   }
                                   ASSIGN_OR_RETURN(out, FromRow(r[0]));
                                   return absl::OkStatus();
                                 }));
  return out;
}

absl::StatusOr<std::vector<Issuer>> PgIssuerStore::List() {
  std::vector<Issuer> out;
  RETURN_IF_ERROR(pool_.Transact("list issuers", TxMode::kReadOnly,
                                 [&](pqxx::transaction_base& tx) -> absl::Status {
                                   out.clear();
                                   for (const auto& row : tx.exec(kListSql)) {
                                     ASSIGN_OR_RETURN(Issuer i, FromRow(row));
                                     out.push_back(std::move(i));
                                   }
                                   return absl::OkStatus();
                                 }));
  return out;
}

absl::StatusOr<std::string> PgIssuerStore::Replace(const Issuer& issuer,
                                                   const std::optional<Issuer>& new_root,
                                                   const RequestContext& ctx) {
  std::string retired;
  absl::Status st = pool_.Transact(
      "replace issuer", TxMode::kReadWrite,
      [&](pqxx::transaction_base& tx) -> absl::Status {
        retired.clear();
        std::vector<std::string> keys;
        if (new_root.has_value()) {
          Insert(tx, *new_root);
          keys.push_back(new_root->id);
        }
        for (const auto& row : tx.exec_params(kRetireSql, IssuerPurposeName(issuer.purpose))) {
          retired = row[0].as<std::string>();
          keys.push_back(retired);
        }
        Insert(tx, issuer);
        keys.push_back(issuer.id);
        Journal(tx, ctx,
                {"ReplaceIssuer", "issuer", keys, false,
                 absl::StrCat("{\"issuer\":\"", issuer.id, "\",\"retired\":\"", retired, "\"}")});
        return absl::OkStatus();
      },
      &ctx);
  if (st.code() == absl::StatusCode::kAlreadyExists) {
    return absl::AlreadyExistsError(absl::StrCat("issuer \"", issuer.id, "\" already exists"));
  }
  if (!st.ok()) return st;
  return retired;
}

absl::StatusOr<std::string> PgIssuerStore::Activate(const std::string& id,
                                                    int64_t expected_version,
                                                    const std::string& certificate_der,
                                                    const std::string& chain_der,
                                                    const std::string& parent_id,
                                                    absl::Time not_before, absl::Time not_after,
                                                    const std::optional<Issuer>& new_root,
                                                    const RequestContext& ctx) {
  std::string retired;
  RETURN_IF_ERROR(pool_.Transact(
      "activate issuer", TxMode::kReadWrite,
      [&](pqxx::transaction_base& tx) -> absl::Status {
        retired.clear();
        const pqxx::result r = tx.exec_params(kLockSql, id);
        if (r.empty()) return absl::NotFoundError(absl::StrCat("issuer \"", id, "\" does not exist"));
        if (r[0][0].as<std::string>() != "pending" || r[0][1].as<int64_t>() != expected_version) {
          return absl::AbortedError(
              absl::StrCat("issuer \"", id, "\" is no longer pending or changed meanwhile"));
        }
        std::vector<std::string> keys;
        if (new_root.has_value()) {
          Insert(tx, *new_root);
          keys.push_back(new_root->id);
        }
        for (const auto& row : tx.exec_params(kRetireSql, r[0][2].as<std::string>())) {
          retired = row[0].as<std::string>();
          keys.push_back(retired);
        }
        tx.exec_params(kActivateSql, id, ToHex(certificate_der), ToHex(chain_der),
                       ToMicros(not_before), ToMicros(not_after), parent_id);
        keys.push_back(id);
        Journal(tx, ctx,
                {"ActivateIssuer", "issuer", keys, false,
                 absl::StrCat("{\"issuer\":\"", id, "\",\"retired\":\"", retired, "\"}")});
        return absl::OkStatus();
      },
      &ctx));
  return retired;
}

}  // namespace fleetca::storage
