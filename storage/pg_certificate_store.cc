#include "storage/pg_certificate_store.h"

#include <pqxx/pqxx>

#include "absl/strings/str_cat.h"
#include "common/json.h"
#include "common/status_macros.h"
#include "storage/journal.h"
#include "storage/pg_errors.h"
#include "storage/pg_util.h"

namespace fleetca::storage {
namespace {

#define FLEETCA_CERT_COLUMNS                                                                 \
  "encode(serial, 'hex'), issuer_id, kind, coalesce(comm_id, ''), coalesce(broker_name, ''), " \
  "coalesce(identity_name, ''), subject, key_algorithm, dns_names, ip_addresses, status, "    \
  "profile, (extract(epoch FROM not_before) * 1000000)::bigint, "                            \
  "(extract(epoch FROM not_after) * 1000000)::bigint, encode(coalesce(der, ''), 'hex'), "     \
  "encode(coalesce(fingerprint_sha256, ''), 'hex'), coalesce(request_id, ''), "               \
  "encode(coalesce(csr_sha256, ''), 'hex'), requester, encode(coalesce(renewed_from, ''), "   \
  "'hex'), (extract(epoch FROM created_at) * 1000000)::bigint"

constexpr char kCheckSql[] =
    "SELECT encode(prior_serial, 'hex'), coalesce(device_status, ''), broker_found "
    "FROM fleetca_issuance_check($1, $2, $3)";

// One statement stores the certificate and appends its audit entry (chained later by the
// audit sequencer): one round trip, one tuple, each index written once.
constexpr char kInsertSql[] =
    "WITH ins AS (INSERT INTO certificates (serial, issuer_id, kind, comm_id, broker_name, "
    "identity_name, subject, key_algorithm, dns_names, ip_addresses, status, profile, "
    "not_before, not_after, der, fingerprint_sha256, request_id, csr_sha256, requester, "
    "renewed_from) VALUES (decode($1, 'hex'), $2, $3, nullif($4, ''), nullif($5, ''), "
    "nullif($6, ''), $7, $8, $9::text[], $10::text[], 'issued', $11, "
    "to_timestamp($12::bigint / 1000000.0), to_timestamp($13::bigint / 1000000.0), "
    "decode($14, 'hex'), sha256(decode($14, 'hex')), nullif($15, ''), "
    "nullif(decode($16, 'hex'), ''), $17, nullif(decode($18, 'hex'), '')) "
    "RETURNING " FLEETCA_CERT_COLUMNS ") "
    "SELECT ins.*, fleetca_append_audit($19, 'IssueCertificate', $1, $20, $21::jsonb) FROM ins";

constexpr char kByRequestIdSql[] =
    "SELECT " FLEETCA_CERT_COLUMNS " FROM certificates WHERE request_id = $1";
constexpr char kBySerialSql[] = "SELECT " FLEETCA_CERT_COLUMNS
                                " FROM certificates WHERE serial = decode($1, 'hex') AND "
                                "status <> 'reserved'";
constexpr char kByFingerprintSql[] = "SELECT " FLEETCA_CERT_COLUMNS
                                     " FROM certificates WHERE fingerprint_sha256 = "
                                     "decode($1, 'hex')";

constexpr char kListSql[] =
    "SELECT " FLEETCA_CERT_COLUMNS " FROM certificates "
    "WHERE (created_at, serial) > (timestamptz 'epoch' + $10::bigint * interval '1 microsecond', "
    "decode($1, 'hex')) AND status <> 'reserved' "
    "AND ($2 = '' OR comm_id = $2) AND ($3 = '' OR issuer_id = $3) "
    "AND ($4 = '' OR broker_name = $4) AND ($5 = '' OR kind = $5) AND ($6 = '' OR status = $6) "
    "AND ($7::bigint IS NULL OR not_after >= to_timestamp($7::bigint / 1000000.0)) "
    "AND ($8::bigint IS NULL OR not_after < to_timestamp($8::bigint / 1000000.0)) "
    "ORDER BY created_at, serial LIMIT $9";

#undef FLEETCA_CERT_COLUMNS

absl::StatusOr<CertificateKind> ParseKind(const std::string& s) {
  if (s == "device") return CertificateKind::kDevice;
  if (s == "broker") return CertificateKind::kBroker;
  if (s == "identity") return CertificateKind::kIdentity;
  if (s == "external_device") return CertificateKind::kExternalDevice;
  return absl::InternalError("unknown certificate kind in the database");
}

absl::StatusOr<CertificateStatus> ParseStatus(const std::string& s) {
  if (s == "reserved") return CertificateStatus::kReserved;
  if (s == "issued") return CertificateStatus::kIssued;
  if (s == "revoked") return CertificateStatus::kRevoked;
  if (s == "on_hold") return CertificateStatus::kOnHold;
  return absl::InternalError("unknown certificate status in the database");
}

absl::StatusOr<CertificateRecord> FromRow(const pqxx::row& row) {
  CertificateRecord c;
  ASSIGN_OR_RETURN(c.serial, FromHex(row[0].as<std::string>()));
  c.issuer_id = row[1].as<std::string>();
  ASSIGN_OR_RETURN(c.kind, ParseKind(row[2].as<std::string>()));
  c.comm_id = row[3].as<std::string>();
  c.broker_name = row[4].as<std::string>();
  c.identity_name = row[5].as<std::string>();
  c.subject = row[6].as<std::string>();
  c.key_algorithm = row[7].as<std::string>();
  c.dns_names = ParseTextArray(row[8]);
  c.ip_addresses = ParseTextArray(row[9]);
  ASSIGN_OR_RETURN(c.status, ParseStatus(row[10].as<std::string>()));
  c.profile = row[11].as<std::string>();
  c.not_before = FromMicros(row[12].as<int64_t>());
  c.not_after = FromMicros(row[13].as<int64_t>());
  ASSIGN_OR_RETURN(c.der, FromHex(row[14].as<std::string>()));
  ASSIGN_OR_RETURN(c.fingerprint, FromHex(row[15].as<std::string>()));
  c.request_id = row[16].as<std::string>();
  ASSIGN_OR_RETURN(c.csr_sha256, FromHex(row[17].as<std::string>()));
  c.requester = row[18].as<std::string>();
  ASSIGN_OR_RETURN(c.renewed_from, FromHex(row[19].as<std::string>()));
  c.create_time = FromMicros(row[20].as<int64_t>());
  return c;
}

absl::StatusOr<CertificateRecord> GetOne(ConnectionPool& pool, const char* sql,
                                         const std::string& key, absl::string_view what) {
  CertificateRecord out;
  RETURN_IF_ERROR(pool.Transact("get certificate", TxMode::kReadOnly,
                                [&](pqxx::transaction_base& tx) -> absl::Status {
                                  const pqxx::result r = tx.exec_params(sql, key);
                                  if (r.empty()) {
                                    return absl::NotFoundError(absl::StrCat(
                                        "no certificate has ", what, " ", key));
                                  }
                                  ASSIGN_OR_RETURN(out, FromRow(r[0]));
                                  return absl::OkStatus();
                                }));
  return out;
}

}  // namespace

const char* CertificateKindName(CertificateKind kind) {
  switch (kind) {
    case CertificateKind::kDevice:
      return "device";
    case CertificateKind::kBroker:
      return "broker";
    case CertificateKind::kIdentity:
      return "identity";
    case CertificateKind::kExternalDevice:
      return "external_device";
  }
  return "device";
}

const char* CertificateStatusName(CertificateStatus status) {
  switch (status) {
    case CertificateStatus::kReserved:
      return "reserved";
    case CertificateStatus::kIssued:
      return "issued";
    case CertificateStatus::kRevoked:
      return "revoked";
    case CertificateStatus::kOnHold:
      return "on_hold";
  }
  return "reserved";
}

absl::StatusOr<IssueOutcome> PgCertificateStore::Issue(
    const CertificateRecord& r, const std::function<absl::StatusOr<std::string>()>& sign,
    const RequestContext& ctx) {
  IssueOutcome out;
  RETURN_IF_ERROR(pool_.Transact(
      "issue certificate", TxMode::kReadWrite,
      [&](pqxx::transaction_base& tx) -> absl::Status {
        out = IssueOutcome();
        // 1. Serialize on the request id; a request id seen before is a retry.
        const bool device = r.kind == CertificateKind::kDevice;
        const bool broker = r.kind == CertificateKind::kBroker;
        const pqxx::row check = tx.exec_params1(kCheckSql, r.request_id,
                                                device ? r.comm_id : std::string(),
                                                broker ? r.broker_name : std::string());
        if (!check[0].is_null()) {
          const pqxx::result prior = tx.exec_params(kBySerialSql, check[0].as<std::string>());
          if (prior.empty()) return absl::AbortedError("concurrent change; retry");
          ASSIGN_OR_RETURN(out.record, FromRow(prior[0]));
          out.replayed = true;
          return absl::OkStatus();
        }
        // 2. The subject exists (a device: active), locked until commit.
        if (device) {
          const std::string status = check[1].as<std::string>();
          if (status.empty()) {
            return absl::NotFoundError(absl::StrCat("device \"", r.comm_id, "\" is not registered"));
          }
          if (status != "active") {
            return absl::FailedPreconditionError(absl::StrCat(
                "device \"", r.comm_id, "\" is ", status, ": only active devices get certificates"));
          }
        } else if (broker && !check[2].as<bool>()) {
          return absl::NotFoundError(absl::StrCat("broker \"", r.broker_name, "\" is not registered"));
        }
        // 3. Sign, then store with the audit entry: committed together or not at all.
        ASSIGN_OR_RETURN(std::string der, sign());
        std::map<std::string, std::string> details = {{"issuer", r.issuer_id},
                                                      {"kind", CertificateKindName(r.kind)},
                                                      {"subject", r.subject},
                                                      {"profile", r.profile}};
        if (!r.renewed_from.empty()) details["renewed_from"] = ToHex(r.renewed_from);
        const pqxx::result stored = tx.exec_params(
            kInsertSql, ToHex(r.serial), r.issuer_id, CertificateKindName(r.kind), r.comm_id,
            r.broker_name, r.identity_name, r.subject, r.key_algorithm, PgTextArray(r.dns_names),
            PgTextArray(r.ip_addresses), r.profile, ToMicros(r.not_before), ToMicros(r.not_after),
            ToHex(der), r.request_id, ToHex(r.csr_sha256), r.requester, ToHex(r.renewed_from),
            ctx.actor.empty() ? std::string("unknown") : ctx.actor, ctx.request_id,
            JsonObject(details));
        ASSIGN_OR_RETURN(out.record, FromRow(stored[0]));
        return absl::OkStatus();
      },
      &ctx));
  return out;
}

absl::StatusOr<CertificateRecord> PgCertificateStore::GetBySerial(const std::string& serial) {
  return GetOne(pool_, kBySerialSql, ToHex(serial), "serial");
}

absl::StatusOr<CertificateRecord> PgCertificateStore::GetByFingerprint(
    const std::string& fingerprint) {
  return GetOne(pool_, kByFingerprintSql, ToHex(fingerprint), "SHA-256 fingerprint");
}

absl::StatusOr<CertificateRecord> PgCertificateStore::GetByRequestId(
    const std::string& request_id) {
  return GetOne(pool_, kByRequestIdSql, request_id, "request id");
}

absl::StatusOr<std::vector<CertificateRecord>> PgCertificateStore::List(
    const CertificateFilter& f, const CertificateCursor& after, int limit) {
  std::vector<CertificateRecord> out;
  std::optional<std::string> expires_after, expires_before;
  if (f.expires_after) expires_after = std::to_string(ToMicros(*f.expires_after));
  if (f.expires_before) expires_before = std::to_string(ToMicros(*f.expires_before));
  RETURN_IF_ERROR(pool_.Transact(
      "list certificates", TxMode::kReadOnly, [&](pqxx::transaction_base& tx) -> absl::Status {
        out.clear();
        const pqxx::result r = tx.exec_params(
            kListSql, ToHex(after.serial), f.comm_id, f.issuer_id, f.broker_name,
            f.kind ? CertificateKindName(*f.kind) : "", f.status ? CertificateStatusName(*f.status) : "",
            NullableParam(expires_after), NullableParam(expires_before), limit,
            // The start: a time before any certificate, within PostgreSQL's timestamp range.
            after.create_micros == 0 && after.serial.empty() ? int64_t{-100000000000000000}
                                                             : after.create_micros);
        for (const auto& row : r) {
          ASSIGN_OR_RETURN(CertificateRecord c, FromRow(row));
          out.push_back(std::move(c));
        }
        return absl::OkStatus();
      }));
  return out;
}

}  // namespace fleetca::storage
