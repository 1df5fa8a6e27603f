#include "storage/pg_crl_store.h"

#include <pqxx/pqxx>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "storage/pg_util.h"

namespace fleetca::storage {
namespace {

// The CRL builder's lock (pg_try_advisory_xact_lock): one builder across replicas.
constexpr int64_t kCrlBuilderLock = 7318262781330071556;
// CRLs kept per issuer (the newest; older ones are deleted as new ones are stored).
constexpr int kKeptCrls = 3;

constexpr char kLatestSql[] =
    "SELECT crl_number, (extract(epoch FROM this_update) * 1000000)::bigint, "
    "(extract(epoch FROM next_update) * 1000000)::bigint, changes, revoked_count, "
    "CASE WHEN $2 THEN der ELSE ''::bytea END "
    "FROM crls WHERE issuer_id = $1 ORDER BY crl_number DESC LIMIT 1";

StoredCrl FromRow(const std::string& issuer_id, const pqxx::row& row) {
  StoredCrl c;
  c.issuer_id = issuer_id;
  c.crl_number = row[0].as<int64_t>();
  c.this_update = FromMicros(row[1].as<int64_t>());
  c.next_update = FromMicros(row[2].as<int64_t>());
  c.changes = row[3].as<int64_t>();
  c.entries = row[4].as<int>();
  const pqxx::binarystring der(row[5]);
  c.der.assign(reinterpret_cast<const char*>(der.data()), der.size());
  return c;
}

}  // namespace

absl::StatusOr<StoredCrl> PgCrlStore::Latest(const std::string& issuer_id) {
  StoredCrl out;
  RETURN_IF_ERROR(pool_.Transact(
      "read CRL", TxMode::kReadOnly, [&](pqxx::transaction_base& tx) -> absl::Status {
        const pqxx::result r = tx.exec_params(kLatestSql, issuer_id, true);
        if (r.empty()) {
          return absl::NotFoundError(absl::StrCat("issuer_id: no CRL of \"", issuer_id, "\" yet"));
        }
        out = FromRow(issuer_id, r[0]);
        return absl::OkStatus();
      }));
  return out;
}

absl::StatusOr<bool> PgCrlStore::BuildIfNeeded(
    const std::string& issuer_id, const std::function<bool(const CrlWork&)>& decide,
    const std::function<absl::StatusOr<Built>(int64_t, const std::vector<CrlEntryRow>&)>& build) {
  bool stored = false;
  RETURN_IF_ERROR(pool_.Transact(
      "build CRL", TxMode::kReadWrite, [&](pqxx::transaction_base& tx) -> absl::Status {
        stored = false;
        if (!tx.exec_params1("SELECT pg_try_advisory_xact_lock($1)", kCrlBuilderLock)[0]
                 .as<bool>()) {
          return absl::OkStatus();  // another replica is building
        }
        CrlWork work;
        // The change count first: the entries read next reflect at least it.
        const pqxx::result state =
            tx.exec_params("SELECT changes FROM crl_state WHERE issuer_id = $1", issuer_id);
        work.changes = state.empty() ? 0 : state[0][0].as<int64_t>();
        const pqxx::result latest = tx.exec_params(kLatestSql, issuer_id, false);
        if (!latest.empty()) work.latest = FromRow(issuer_id, latest[0]);
        if (!decide(work)) return absl::OkStatus();

        std::vector<CrlEntryRow> entries;
        const pqxx::result rows = tx.exec_params(
            "SELECT encode(r.serial, 'hex'), (extract(epoch FROM r.revoked_at) * 1000000)::bigint, "
            "r.reason, (extract(epoch FROM r.invalidity_date) * 1000000)::bigint "
            "FROM revocations r JOIN certificates c ON c.serial = r.serial "
            "WHERE r.issuer_id = $1 AND c.not_after > now() ORDER BY r.serial",
            issuer_id);
        entries.reserve(rows.size());
        for (const pqxx::row& row : rows) {
          CrlEntryRow e;
          ASSIGN_OR_RETURN(e.serial, FromHex(row[0].as<std::string>()));
          e.revocation_date = FromMicros(row[1].as<int64_t>());
          e.reason = row[2].as<int>();
          if (!row[3].is_null()) e.invalidity_date = FromMicros(row[3].as<int64_t>());
          entries.push_back(std::move(e));
        }
        const int64_t number = work.latest ? work.latest->crl_number + 1 : 1;
        ASSIGN_OR_RETURN(Built built, build(number, entries));
        tx.exec_params(
            "INSERT INTO crls (issuer_id, crl_number, this_update, next_update, changes, revoked_count, "
            "der) VALUES ($1, $2, timestamptz 'epoch' + $3::bigint * interval '1 microsecond', "
            "timestamptz 'epoch' + $4::bigint * interval '1 microsecond', $5, $6, "
            "decode($7, 'hex'))",
            issuer_id, number, ToMicros(built.this_update), ToMicros(built.next_update),
            work.changes, static_cast<int>(entries.size()), ToHex(built.der));
        tx.exec_params("DELETE FROM crls WHERE issuer_id = $1 AND crl_number <= $2", issuer_id,
                       number - kKeptCrls);
        stored = true;
        return absl::OkStatus();
      }));
  return stored;
}

}  // namespace fleetca::storage
