#include "storage/pg_revocation_store.h"

#include <pqxx/pqxx>

#include <map>

#include "absl/strings/str_cat.h"
#include "common/json.h"
#include "common/status_macros.h"
#include "storage/journal.h"
#include "storage/pg_certificate_store.h"
#include "storage/pg_util.h"

namespace fleetca::storage {
namespace {

// The certificate, locked for the change (reserved rows are not certificates yet).
// (Two rows at most: an ambiguous serial is refused before anything changes.)
constexpr char kLockSql[] =
    "SELECT c.issuer_id, c.status, " FLEETCA_CERTIFICATE_KEY_SQL " FROM certificates c "
    "WHERE c.serial = decode($1, 'hex') AND ($2 = '' OR c.issuer_id = $2) "
    "AND c.status <> 'reserved' ORDER BY c.issuer_id LIMIT 2 FOR UPDATE";

constexpr char kStateSql[] =
    "SELECT c.issuer_id, c.status, coalesce(c.comm_id, ''), r.reason, "
    "(extract(epoch FROM r.revoked_at) * 1000000)::bigint, "
    "(extract(epoch FROM r.invalidity_date) * 1000000)::bigint, r.comment, r.revision, "
    "(extract(epoch FROM c.not_after) * 1000000)::bigint, coalesce(r.from_imported_crl, false) "
    "FROM certificates c "
    "LEFT JOIN revocations r ON r.serial = c.serial AND r.issuer_id = c.issuer_id "
    "WHERE c.serial = decode($1, 'hex') AND ($2 = '' OR c.issuer_id = $2) "
    "AND c.status <> 'reserved' ORDER BY c.issuer_id LIMIT 2";

// The first stored CRL of issuer $1 that reflects the last change (crl_changes) to serial
// $2's revocation; 0 while none does. Only GetRevocationStatus asks: not on a change's path.
constexpr char kPublishedSql[] =
    "SELECT coalesce(min(k.crl_number), 0) FROM crls k WHERE k.issuer_id = $1 "
    "AND EXISTS (SELECT 1 FROM crl_ders d WHERE d.issuer_id = k.issuer_id "
    "  AND d.crl_number = k.crl_number) "
    "AND k.changes >= coalesce((SELECT max(ch.change) FROM crl_changes ch "
    "  WHERE ch.issuer_id = $1 AND ch.serial = decode($2, 'hex')), 0)";

absl::Status NotFound(const std::string& serial, const std::string& issuer_id) {
  return absl::NotFoundError(absl::StrCat("serial: no certificate ", ToHex(serial),
                                          issuer_id.empty() ? "" : " of issuer ",
                                          issuer_id.empty() ? "" : "\"" + issuer_id + "\""));
}

absl::StatusOr<RevocationState> ReadState(pqxx::transaction_base& tx, const std::string& serial,
                                          const std::string& issuer_id) {
  const pqxx::result r = tx.exec_params(kStateSql, ToHex(serial), issuer_id);
  if (r.empty()) return NotFound(serial, issuer_id);
  if (r.size() > 1) {
    return AmbiguousSerial(serial, {r[0][0].as<std::string>(), r[1][0].as<std::string>()},
                           /*complete=*/false);
  }
  const pqxx::row row = r[0];
  RevocationState s;
  s.serial = serial;
  s.issuer_id = row[0].as<std::string>();
  ASSIGN_OR_RETURN(s.status, CertificateStatusFromName(row[1].as<std::string>()));
  s.comm_id = row[2].as<std::string>();
  s.not_after = FromMicros(row[8].as<int64_t>());
  if (!row[3].is_null()) {
    RevocationEntry e;
    e.reason = row[3].as<int>();
    e.revoke_time = FromMicros(row[4].as<int64_t>());
    if (!row[5].is_null()) e.invalidity_time = FromMicros(row[5].as<int64_t>());
    e.comment = row[6].as<std::string>();
    e.revision = row[7].as<int64_t>();
    e.from_imported_crl = row[9].as<bool>();
    s.revocation = e;
  }
  return s;
}

}  // namespace

void RevokeLocked(pqxx::transaction_base& tx, const std::vector<std::string>& keys, int reason,
                  std::optional<absl::Time> invalidity_time, const std::string& comment,
                  int64_t revision, bool from_imported_crl) {
  // A certificate on hold has a row already (reason certificateHold): it becomes this
  // revocation, with the revocation's time, reason and revision. Reason certificateHold
  // puts the certificates on hold.
  static constexpr char kRevokeSql[] =
      "WITH targets AS (SELECT c.serial, c.issuer_id FROM certificates c "
      "  WHERE " FLEETCA_CERTIFICATE_KEY_IN_SQL("$1::text[]") "), "
      "ins AS (INSERT INTO revocations (serial, issuer_id, reason, invalidity_date, comment, "
      "  revision, from_imported_crl) SELECT serial, issuer_id, $2, "
      "  CASE WHEN $3::bigint IS NULL THEN NULL "
      "  ELSE timestamptz 'epoch' + $3::bigint * interval '1 microsecond' END, $4, $5, $6 "
      "  FROM targets "
      "  ON CONFLICT (serial, issuer_id) DO UPDATE SET reason = excluded.reason, "
      "  revoked_at = now(), invalidity_date = excluded.invalidity_date, "
      "  comment = excluded.comment, revision = excluded.revision, "
      "  from_imported_crl = excluded.from_imported_crl) "
      "UPDATE certificates c SET status = CASE WHEN $2 = 6 THEN 'on_hold' ELSE 'revoked' END "
      "FROM targets t WHERE c.serial = t.serial AND c.issuer_id = t.issuer_id";
  std::optional<std::string> invalidity;
  if (invalidity_time) invalidity = std::to_string(ToMicros(*invalidity_time));
  tx.exec_params(kRevokeSql, PgTextArray(keys), reason, NullableParam(invalidity), comment,
                 revision, from_imported_crl);
}

absl::StatusOr<RevocationOutcome> PgRevocationStore::Change(
    Op op, const std::string& serial, const std::string& issuer_id, int reason,
    std::optional<absl::Time> invalidity_time, const std::string& comment,
    const RequestContext& ctx) {
  const char* action = op == Op::kRevoke ? "RevokeCertificate"
                       : op == Op::kHold ? "HoldCertificate"
                                         : "ReleaseCertificateHold";
  RevocationOutcome out;
  RETURN_IF_ERROR(pool_.Transact(
      action, TxMode::kReadWrite,
      [&](pqxx::transaction_base& tx) -> absl::Status {
        const std::string hex = ToHex(serial);
        const pqxx::result locked = tx.exec_params(kLockSql, hex, issuer_id);
        if (locked.empty()) return NotFound(serial, issuer_id);
        if (locked.size() > 1) {
          return AmbiguousSerial(
              serial, {locked[0][0].as<std::string>(), locked[1][0].as<std::string>()},
              /*complete=*/false);
        }
        const std::string cert_issuer = locked[0][0].as<std::string>();
        const std::string status = locked[0][1].as<std::string>();
        const std::string key = locked[0][2].as<std::string>();
        out.changed = false;
        if (status == "revoked" && op != Op::kRevoke) {
          return absl::FailedPreconditionError(absl::StrCat(
              "serial: certificate ", hex, " is revoked, and a revocation is final"));
        }
        const bool wanted = (op == Op::kRevoke && status == "revoked") ||
                            (op == Op::kHold && status == "on_hold") ||
                            (op == Op::kRelease && status == "issued");
        if (!wanted) {
          std::map<std::string, std::string> details = {{"issuer", cert_issuer},
                                                        {"from", status}};
          if (!comment.empty()) details["comment"] = comment;
          if (op == Op::kRevoke) details["reason"] = std::to_string(reason);
          const int64_t revision =
              Journal(tx, ctx, {action, "revocation", {key}, op == Op::kRelease,
                                JsonObject(details)});
          if (op == Op::kRelease) {
            tx.exec_params("DELETE FROM revocations WHERE serial = decode($1, 'hex') "
                           "AND issuer_id = $2",
                           hex, cert_issuer);
            tx.exec_params("UPDATE certificates SET status = 'issued' "
                           "WHERE serial = decode($1, 'hex') AND issuer_id = $2",
                           hex, cert_issuer);
          } else {
            RevokeLocked(tx, {key}, op == Op::kHold ? kReasonCertificateHold : reason,
                         invalidity_time, comment, revision);
          }
          out.changed = true;
        }
        ASSIGN_OR_RETURN(out.state, ReadState(tx, serial, cert_issuer));
        return absl::OkStatus();
      },
      &ctx));
  return out;
}

absl::StatusOr<RevocationOutcome> PgRevocationStore::Revoke(
    const std::string& serial, const std::string& issuer_id, int reason,
    std::optional<absl::Time> invalidity_time, const std::string& comment,
    const RequestContext& ctx) {
  return Change(Op::kRevoke, serial, issuer_id, reason, invalidity_time, comment, ctx);
}

absl::StatusOr<RevocationOutcome> PgRevocationStore::Hold(const std::string& serial,
                                                          const std::string& issuer_id,
                                                          const std::string& comment,
                                                          const RequestContext& ctx) {
  return Change(Op::kHold, serial, issuer_id, kReasonCertificateHold, std::nullopt, comment, ctx);
}

absl::StatusOr<RevocationOutcome> PgRevocationStore::Release(const std::string& serial,
                                                             const std::string& issuer_id,
                                                             const std::string& comment,
                                                             const RequestContext& ctx) {
  return Change(Op::kRelease, serial, issuer_id, 0, std::nullopt, comment, ctx);
}

absl::StatusOr<DeviceRevocationOutcome> PgRevocationStore::RevokeDevice(
    const std::string& comm_id, int reason, std::optional<absl::Time> invalidity_time,
    const std::string& comment, bool suspend, const RequestContext& ctx) {
  DeviceRevocationOutcome out;
  RETURN_IF_ERROR(pool_.Transact(
      "RevokeDeviceCertificates", TxMode::kReadWrite,
      [&](pqxx::transaction_base& tx) -> absl::Status {
        out = {};
        const pqxx::result device =
            tx.exec_params("SELECT status FROM devices WHERE comm_id = $1 FOR UPDATE", comm_id);
        if (device.empty()) {
          return absl::NotFoundError(
              absl::StrCat("comm_id: device \"", comm_id, "\" is not registered"));
        }
        std::vector<std::string> keys;
        std::vector<std::string> serials_hex;
        std::vector<std::string> issuers;
        for (const pqxx::row& row : tx.exec_params(
                 "SELECT " FLEETCA_CERTIFICATE_KEY_SQL ", encode(c.serial, 'hex'), c.issuer_id "
                 "FROM certificates c WHERE c.comm_id = $1 "
                 "AND c.status IN ('issued', 'on_hold') ORDER BY c.serial, c.issuer_id FOR UPDATE",
                 comm_id)) {
          keys.push_back(row[0].as<std::string>());
          serials_hex.push_back(row[1].as<std::string>());
          issuers.push_back(row[2].as<std::string>());
        }
        if (!serials_hex.empty()) {
          std::map<std::string, std::string> details = {
              {"comm_id", comm_id},
              {"reason", std::to_string(reason)},
              {"revoked_certificates", std::to_string(serials_hex.size())}};
          if (!comment.empty()) details["comment"] = comment;
          const int64_t revision = Journal(
              tx, ctx, {"RevokeDeviceCertificates", "revocation", keys, false,
                        JsonObject(details)});
          RevokeLocked(tx, keys, reason, invalidity_time, comment, revision);
          for (const std::string& hex : serials_hex) {
            ASSIGN_OR_RETURN(std::string serial, FromHex(hex));
            out.revoked_serials.push_back(std::move(serial));
          }
          out.revoked_issuers = issuers;
        }
        if (suspend && device[0][0].as<std::string>() == "active") {
          tx.exec_params("UPDATE devices SET status = 'suspended', status_reason = $2, "
                         "version = version + 1, updated_at = now() WHERE comm_id = $1",
                         comm_id, comment);
          Journal(tx, ctx,
                  {"SetDeviceStatus", "device", {comm_id}, false,
                   JsonObject({{"from", "active"}, {"to", "suspended"}, {"reason", comment},
                               {"by", "RevokeDeviceCertificates"}})});
          out.suspended = true;
        }
        return absl::OkStatus();
      },
      &ctx));
  return out;
}

absl::StatusOr<RevokedPage> PgRevocationStore::RevokedSince(int64_t after_revision, int limit) {
  RevokedPage out;
  out.last_revision = after_revision;
  RETURN_IF_ERROR(pool_.Transact(
      "read revocations", TxMode::kReadOnly, [&](pqxx::transaction_base& tx) -> absl::Status {
        out.serials_hex.clear();
        out.last_revision = after_revision;
        out.rows = 0;
        // By revision (index revocations_revision); a hold is not final, and an expired
        // certificate is refused anyway.
        for (const pqxx::row& row : tx.exec_params(
                 "SELECT encode(r.serial, 'hex'), r.revision, c.not_after > now() "
                 "FROM revocations r "
                 "JOIN certificates c ON c.serial = r.serial AND c.issuer_id = r.issuer_id "
                 "WHERE r.revision > $1 AND r.reason <> $3 AND c.kind <> 'external_device' "
                 "ORDER BY r.revision LIMIT $2",
                 after_revision, limit, kReasonCertificateHold)) {
          if (row[2].as<bool>()) out.serials_hex.push_back(row[0].as<std::string>());
          out.last_revision = row[1].as<int64_t>();
          ++out.rows;
        }
        return absl::OkStatus();
      }));
  return out;
}

absl::StatusOr<RevocationState> PgRevocationStore::Get(const std::string& serial,
                                                       const std::string& issuer_id) {
  RevocationState out;
  RETURN_IF_ERROR(pool_.Transact("get revocation status", TxMode::kReadOnly,
                                 [&](pqxx::transaction_base& tx) -> absl::Status {
                                   ASSIGN_OR_RETURN(out, ReadState(tx, serial, issuer_id));
                                   out.published_crl_number =
                                       tx.exec_params1(kPublishedSql, out.issuer_id,
                                                       ToHex(serial))[0]
                                           .as<int64_t>();
                                   return absl::OkStatus();
                                 }));
  return out;
}

}  // namespace fleetca::storage
