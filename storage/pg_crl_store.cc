#include "storage/pg_crl_store.h"

#include <pqxx/pqxx>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "storage/pg_util.h"

namespace fleetca::storage {
namespace {

// The CRL builder's lock (pg_try_advisory_xact_lock): one builder across replicas.
constexpr int64_t kCrlBuilderLock = 7318262781330071556;
// CRLs kept per issuer and kind, complete or delta (the newest; older ones are deleted as
// new ones are stored).
constexpr int kKeptCrls = 3;
// Changes kept in crl_changes per issuer: a builder further behind (a replica that has not
// built for that long) reads every entry again.
constexpr int64_t kKeptChanges = 100000;

// Entries: serial, revocation date, reason, invalidity date, the certificate's notAfter
// (times in microseconds since the epoch). A NULL revocation date: no longer revoked.
constexpr char kAllEntriesSql[] =
    "SELECT r.serial, (extract(epoch FROM r.revoked_at) * 1000000)::bigint, r.reason, "
    "(extract(epoch FROM r.invalidity_date) * 1000000)::bigint, "
    "(extract(epoch FROM c.not_after) * 1000000)::bigint "
    "FROM revocations r "
    "JOIN certificates c ON c.serial = r.serial AND c.issuer_id = r.issuer_id "
    "WHERE r.issuer_id = $1 AND c.not_after > now()";
constexpr char kChangedEntriesSql[] =
    "SELECT ch.serial, (extract(epoch FROM r.revoked_at) * 1000000)::bigint, r.reason, "
    "(extract(epoch FROM r.invalidity_date) * 1000000)::bigint, "
    "(extract(epoch FROM c.not_after) * 1000000)::bigint "
    "FROM (SELECT DISTINCT serial FROM crl_changes "
    "      WHERE issuer_id = $1 AND change > $2 AND change <= $3) ch "
    "LEFT JOIN revocations r ON r.serial = ch.serial AND r.issuer_id = $1 "
    "LEFT JOIN certificates c ON c.serial = ch.serial AND c.issuer_id = $1";
constexpr char kLoggedChangesSql[] =
    "SELECT count(*) FROM crl_changes WHERE issuer_id = $1 AND change > $2 AND change <= $3";

// The newest complete CRL of issuer $1 (delta CRL if $4; its DER if $2), among those whose
// DER is stored unless $3.
constexpr char kLatestSql[] =
    "SELECT k.crl_number, (extract(epoch FROM k.this_update) * 1000000)::bigint, "
    "(extract(epoch FROM k.next_update) * 1000000)::bigint, k.changes, k.revoked_count, "
    "CASE WHEN $2 THEN d.der ELSE ''::bytea END, d.crl_number IS NOT NULL, "
    "coalesce(k.base_crl_number, 0) "
    "FROM crls k LEFT JOIN crl_ders d ON d.issuer_id = k.issuer_id AND d.crl_number = k.crl_number "
    "WHERE k.issuer_id = $1 AND (d.crl_number IS NOT NULL OR $3) "
    "AND (k.base_crl_number IS NOT NULL) = $4 "
    "ORDER BY k.crl_number DESC LIMIT 1";

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
  c.der_stored = row[6].as<bool>();
  c.base_crl_number = row[7].as<int64_t>();
  return c;
}

}  // namespace

absl::StatusOr<StoredCrl> PgCrlStore::Latest(const std::string& issuer_id, bool delta,
                                             bool with_der) {
  StoredCrl out;
  RETURN_IF_ERROR(pool_.Transact(
      "read CRL", TxMode::kReadOnly, [&](pqxx::transaction_base& tx) -> absl::Status {
        const pqxx::result r = tx.exec_params(kLatestSql, issuer_id, with_der, false, delta);
        if (r.empty()) {
          return absl::NotFoundError(absl::StrCat("issuer_id: no ", delta ? "delta " : "",
                                                  "CRL of \"", issuer_id, "\" yet"));
        }
        out = FromRow(issuer_id, r[0]);
        return absl::OkStatus();
      }));
  return out;
}

absl::StatusOr<bool> PgCrlStore::BuildIfNeeded(
    const std::string& issuer_id, int64_t known_changes,
    const std::function<CrlKind(const CrlWork&)>& decide,
    const std::function<absl::StatusOr<Built>(int64_t, CrlEntryChanges&)>& build) {
  bool stored = false;
  RETURN_IF_ERROR(pool_.Transact(
      "build CRL", TxMode::kReadWrite, [&](pqxx::transaction_base& tx) -> absl::Status {
        stored = false;
        if (!tx.exec_params1("SELECT pg_try_advisory_xact_lock($1)", kCrlBuilderLock)[0]
                 .as<bool>()) {
          return absl::OkStatus();  // another replica is building
        }
        CrlWork work;
        // The change count first: every change up to it is committed (crl_changes), and the
        // entries read next reflect at least it.
        const pqxx::result state =
            tx.exec_params("SELECT changes FROM crl_state WHERE issuer_id = $1", issuer_id);
        work.changes = state.empty() ? 0 : state[0][0].as<int64_t>();
        for (const bool delta : {false, true}) {
          const pqxx::result latest = tx.exec_params(kLatestSql, issuer_id, false, true, delta);
          if (!latest.empty()) (delta ? work.latest_delta : work.latest) = FromRow(issuer_id, latest[0]);
        }
        const CrlKind kind = decide(work);
        if (kind == CrlKind::kNone) return absl::OkStatus();
        if (kind == CrlKind::kDelta && !work.latest) {
          return absl::InternalError("a delta CRL was asked for with no complete CRL");
        }

        CrlEntryChanges changes;
        changes.changes = work.changes;
        // Only what changed, when the log still holds every change since known_changes.
        changes.full = known_changes < 0 || known_changes > work.changes ||
                       tx.exec_params1(kLoggedChangesSql, issuer_id, known_changes, work.changes)[0]
                               .as<int64_t>() != work.changes - known_changes;
        const pqxx::result rows =
            changes.full ? tx.exec_params(kAllEntriesSql, issuer_id)
                         : tx.exec_params(kChangedEntriesSql, issuer_id, known_changes, work.changes);
        changes.entries.reserve(rows.size());
        for (const pqxx::row& row : rows) {
          std::string bytes = ByteaValue(row[0]);
          if (row[1].is_null()) {  // no longer revoked
            changes.removed.push_back(std::move(bytes));
            continue;
          }
          CrlEntryRow e;
          e.serial = std::move(bytes);
          e.revocation_date = FromMicros(row[1].as<int64_t>());
          e.reason = row[2].as<int>();
          if (!row[3].is_null()) e.invalidity_date = FromMicros(row[3].as<int64_t>());
          e.not_after = FromMicros(row[4].as<int64_t>());
          changes.entries.push_back(std::move(e));
        }
        int64_t number = 1;
        for (const auto& crl : {work.latest, work.latest_delta}) {
          if (crl) number = std::max(number, crl->crl_number + 1);
        }
        ASSIGN_OR_RETURN(Built built, build(number, changes));
        tx.exec_params(
            "INSERT INTO crls (issuer_id, crl_number, base_crl_number, this_update, next_update, "
            "changes, revoked_count) "
            "VALUES ($1, $2, $3, timestamptz 'epoch' + $4::bigint * interval '1 microsecond', "
            "timestamptz 'epoch' + $5::bigint * interval '1 microsecond', $6, $7)",
            issuer_id, number,
            kind == CrlKind::kDelta ? std::optional<int64_t>(work.latest->crl_number) : std::nullopt,
            ToMicros(built.this_update), ToMicros(built.next_update), work.changes, built.entries);
        tx.exec_params("DELETE FROM crl_changes WHERE issuer_id = $1 AND change <= $2", issuer_id,
                       work.changes - kKeptChanges);
        stored = true;
        return absl::OkStatus();
      }));
  return stored;
}

absl::Status PgCrlStore::StoreDer(const std::string& issuer_id, int64_t crl_number,
                                  const std::string& der) {
  return pool_.Transact("store CRL", TxMode::kReadWrite,
                        [&](pqxx::transaction_base& tx) -> absl::Status {
                          // A binary parameter: no hex text twice its size at 1M entries.
                          tx.exec_params(
                              "INSERT INTO crl_ders (issuer_id, crl_number, der) "
                              "VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                              issuer_id, crl_number, pqxx::binarystring(der.data(), der.size()));
                          // A complete CRL is a change brokers' sync streams send.
                          tx.exec_params("SELECT fleetca_log_crl($1, $2)", issuer_id, crl_number);
                          // The newest kKeptCrls of each kind stay (numbered ones whose
                          // DER is not stored included), with their DERs.
                          tx.exec_params(
                              "DELETE FROM crls k WHERE issuer_id = $1 AND crl_number < ("
                              "  SELECT min(crl_number) FROM (SELECT crl_number FROM crls n "
                              "    WHERE n.issuer_id = $1 AND (n.base_crl_number IS NULL) = "
                              "      (k.base_crl_number IS NULL) "
                              "    ORDER BY crl_number DESC LIMIT $2) newest)",
                              issuer_id, kKeptCrls);
                          tx.exec_params(
                              "DELETE FROM crl_ders d WHERE issuer_id = $1 AND NOT EXISTS ("
                              "  SELECT 1 FROM crls k WHERE k.issuer_id = $1 "
                              "  AND k.crl_number = d.crl_number)",
                              issuer_id);
                          return absl::OkStatus();
                        });
}

}  // namespace fleetca::storage
