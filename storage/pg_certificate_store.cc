#include "storage/pg_certificate_store.h"

#include <pqxx/pqxx>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/notification.h"
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

// The two statements of an issuance batch (migration 0002): check and lock, then store.
constexpr char kCheckSql[] = "SELECT * FROM fleetca_check_certificate_requests($1::jsonb)";
constexpr char kStoreSql[] = "SELECT * FROM fleetca_store_certificates($1::jsonb)";

constexpr char kByRequestIdSql[] =
    "SELECT " FLEETCA_CERT_COLUMNS " FROM certificates WHERE request_id = $1";
// At most a few rows: fleetca's serials are unique, an external CA's may repeat another's.
constexpr char kBySerialSql[] = "SELECT " FLEETCA_CERT_COLUMNS
                                " FROM certificates WHERE serial = decode($1, 'hex') AND "
                                "($2 = '' OR issuer_id = $2) AND status <> 'reserved' "
                                "ORDER BY issuer_id LIMIT 8";
constexpr char kByFingerprintSql[] = "SELECT " FLEETCA_CERT_COLUMNS
                                     " FROM certificates WHERE fingerprint_sha256 = "
                                     "decode($1, 'hex')";

constexpr char kListSql[] =
    "SELECT " FLEETCA_CERT_COLUMNS " FROM certificates "
    "WHERE (created_at, serial) > (timestamptz 'epoch' + $10::bigint * interval '1 microsecond', "
    "decode($1, 'hex')) AND status <> 'reserved' "
    "AND ($2 = '' OR comm_id = $2) AND ($3 = '' OR issuer_id = $3) "
    "AND ($4 = '' OR broker_name = $4) AND ($5 = '' OR kind = $5 OR ($5 = 'device' AND kind = 'external_device')) AND ($6 = '' OR status = $6) "
    "AND ($7::bigint IS NULL OR not_after >= to_timestamp($7::bigint / 1000000.0)) "
    "AND ($8::bigint IS NULL OR not_after < to_timestamp($8::bigint / 1000000.0)) "
    "AND ($11 = '' OR requester = $11) "
    "ORDER BY created_at, serial LIMIT $9";

#undef FLEETCA_CERT_COLUMNS

}  // namespace

absl::StatusOr<CertificateKind> CertificateKindFromName(const std::string& s) {
  if (s == "device") return CertificateKind::kDevice;
  if (s == "broker") return CertificateKind::kBroker;
  if (s == "identity") return CertificateKind::kIdentity;
  if (s == "external_device") return CertificateKind::kExternalDevice;
  if (s == "server") return CertificateKind::kServer;
  return absl::InternalError("unknown certificate kind in the database");
}

namespace {


absl::StatusOr<CertificateRecord> FromRow(const pqxx::row& row) {
  CertificateRecord c;
  ASSIGN_OR_RETURN(c.serial, FromHex(row[0].as<std::string>()));
  c.issuer_id = row[1].as<std::string>();
  ASSIGN_OR_RETURN(c.kind, CertificateKindFromName(row[2].as<std::string>()));
  c.comm_id = row[3].as<std::string>();
  c.broker_name = row[4].as<std::string>();
  c.identity_name = row[5].as<std::string>();
  c.subject = row[6].as<std::string>();
  c.key_algorithm = row[7].as<std::string>();
  c.dns_names = ParseTextArray(row[8]);
  c.ip_addresses = ParseTextArray(row[9]);
  ASSIGN_OR_RETURN(c.status, CertificateStatusFromName(row[10].as<std::string>()));
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

std::string CertificateChangeKey(CertificateKind kind, const std::string& issuer_id,
                                 const std::string& serial) {
  if (kind == CertificateKind::kExternalDevice) return absl::StrCat(issuer_id, "/", ToHex(serial));
  return ToHex(serial);
}

absl::Status AmbiguousSerial(const std::string& serial, const std::vector<std::string>& issuers,
                             bool complete) {
  return absl::InvalidArgumentError(
      absl::StrCat("issuer_id: serial ", ToHex(serial), " names certificates of several issuers (",
                   absl::StrJoin(issuers, ", "), complete ? "" : "...",
                   "): give the issuer_id"));
}

absl::StatusOr<CertificateRecord> OneCertificate(std::vector<CertificateRecord> found,
                                                 const std::string& serial,
                                                 const std::string& issuer_id) {
  if (found.empty()) {
    return absl::NotFoundError(absl::StrCat("no certificate has serial ", ToHex(serial),
                                            issuer_id.empty() ? "" : " and issuer ", issuer_id));
  }
  if (found.size() > 1) {
    std::vector<std::string> issuers;
    for (const CertificateRecord& c : found) issuers.push_back(c.issuer_id);
    return AmbiguousSerial(serial, issuers, /*complete=*/found.size() < 8);  // kBySerialSql: LIMIT 8
  }
  return std::move(found[0]);
}

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
    case CertificateKind::kServer:
      return "server";
  }
  return "device";
}

absl::StatusOr<CertificateStatus> CertificateStatusFromName(const std::string& s) {
  if (s == "reserved") return CertificateStatus::kReserved;
  if (s == "issued") return CertificateStatus::kIssued;
  if (s == "revoked") return CertificateStatus::kRevoked;
  if (s == "on_hold") return CertificateStatus::kOnHold;
  return absl::InternalError("unknown certificate status in the database");
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

namespace {

absl::Status SubjectError(const CertificateRecord& r, absl::string_view outcome) {
  if (outcome == "no_device") {
    return absl::NotFoundError(absl::StrCat("device \"", r.comm_id, "\" is not registered"));
  }
  if (outcome == "no_broker") {
    return absl::NotFoundError(absl::StrCat("broker \"", r.broker_name, "\" is not registered"));
  }
  if (absl::ConsumePrefix(&outcome, "device_")) {
    return absl::FailedPreconditionError(absl::StrCat(
        "device \"", r.comm_id, "\" is ", outcome, ": only active devices get certificates"));
  }
  return absl::InternalError("unexpected issuance outcome from the database");
}

// The JSON item fleetca_store_certificates reads (see migration 0002).
void AppendStoreItem(std::string* out, size_t idx, const CertificateRecord& r,
                     const std::string& der, const RequestContext& ctx) {
  std::map<std::string, std::string> details = {{"issuer", r.issuer_id},
                                                {"kind", CertificateKindName(r.kind)},
                                                {"subject", r.subject},
                                                {"profile", r.profile}};
  if (!r.renewed_from.empty()) details["renewed_from"] = ToHex(r.renewed_from);
  absl::StrAppend(out, "{\"idx\":", idx, ",\"not_before\":", ToMicros(r.not_before),
                  ",\"not_after\":", ToMicros(r.not_after),
                  ",\"dns_names\":", JsonArray(r.dns_names),
                  ",\"ip_addresses\":", JsonArray(r.ip_addresses),
                  ",\"details\":");
  // The audit details: the certificate's facts, its resource type and the caller.
  std::string details_json = JsonObject(details);
  details_json.pop_back();
  absl::StrAppend(out, details_json, ",\"resource\":\"certificate\",\"actor\":",
                  AuditActorJson(ctx), "}");
  const std::pair<const char*, std::string> strings[] = {
      {"serial", ToHex(r.serial)},
      {"issuer_id", r.issuer_id},
      {"kind", CertificateKindName(r.kind)},
      {"comm_id", r.comm_id},
      {"broker_name", r.broker_name},
      {"identity_name", r.identity_name},
      {"subject", r.subject},
      {"key_algorithm", r.key_algorithm},
      {"profile", r.profile},
      {"der", ToHex(der)},
      {"request_id", r.request_id},
      {"csr_sha256", ToHex(r.csr_sha256)},
      {"requester", r.requester},
      {"renewed_from", ToHex(r.renewed_from)},
      {"actor", ctx.actor.empty() ? std::string("unknown") : ctx.actor},
      {"call_request_id", ctx.request_id},
  };
  for (const auto& [key, value] : strings) {
    absl::StrAppend(out, ",\"", key, "\":");
    AppendJsonString(out, value);
  }
  out->push_back('}');
}

}  // namespace

// One signed certificate waiting to be stored by a group commit: the request (owned) and,
// once its batch has run, the results.
struct PgCertificateStore::Pending : GroupCommitter::Item {
  CertificateRecord record;
  SignFn sign;
  RequestContext ctx;
  IssueDone done;
  absl::Status status;       // the batch's transaction
  absl::Status sign_status;  // this item's signature
  std::string der;
  std::string outcome;  // the check's or fleetca_store_certificates' outcome
  std::string serial_hex, fingerprint_hex;
  int64_t created_micros = 0;
};

PgCertificateStore::PgCertificateStore(ConnectionPool& pool, int max_stores_in_flight)
    : pool_(pool),
      stores_(max_stores_in_flight, kMaxBatch,
              [this](const std::vector<GroupCommitter::Item*>& b) { StoreBatch(b); }) {}

absl::StatusOr<IssueOutcome> PgCertificateStore::Issue(
    const CertificateRecord& r, const std::function<absl::StatusOr<std::string>()>& sign,
    const RequestContext& ctx) {
  absl::Notification finished;
  absl::StatusOr<IssueOutcome> out = absl::InternalError("not run");
  IssueAsync(r, sign, ctx, [&](absl::StatusOr<IssueOutcome> o) {
    out = std::move(o);
    finished.Notify();
  });
  finished.WaitForNotification();
  return out;
}

void PgCertificateStore::IssueAsync(CertificateRecord record, SignFn sign, RequestContext ctx,
                                    IssueDone done) {
  auto* pending = new Pending;
  pending->record = std::move(record);
  pending->sign = std::move(sign);
  pending->ctx = std::move(ctx);
  pending->done = std::move(done);
  // Checked, signed and stored with the requests of concurrent callers, one transaction per
  // batch (a group commit: StoreBatch). The DER leaves the store only once its row is
  // committed. When the batch has run: the answer, then the request id's next waiter.
  pending->on_done = [this, pending] {
    absl::StatusOr<IssueOutcome> out = Outcome(*pending);
    const std::string request_id = pending->record.request_id;
    IssueDone answer = std::move(pending->done);
    delete pending;
    Release(request_id);
    answer(std::move(out));
  };
  Admit(pending);
}

// Admit submits pending unless its request id is being issued in this process; then it
// waits behind that request and is submitted when it finishes (Release), so it finds the
// first certificate and replays it without a second signature. (Across replicas the
// database decides: two first attempts racing on two servers may both sign, but only one
// certificate is stored and returned by both; the other DER never leaves the process.)
void PgCertificateStore::Admit(Pending* pending) {
  {
    absl::MutexLock lock(&in_flight_mu_);
    auto [it, first] = in_flight_.try_emplace(pending->record.request_id);
    if (!first) {
      it->second.push_back(pending);
      return;
    }
  }
  stores_.SubmitAsync(pending);
}

void PgCertificateStore::Release(const std::string& request_id) {
  Pending* next = nullptr;
  {
    absl::MutexLock lock(&in_flight_mu_);
    auto it = in_flight_.find(request_id);
    if (it == in_flight_.end()) return;
    if (it->second.empty()) {
      in_flight_.erase(it);
      return;
    }
    next = it->second.front();  // it holds the request id now
    it->second.pop_front();
  }
  stores_.SubmitAsync(next);
}

absl::StatusOr<IssueOutcome> PgCertificateStore::Outcome(Pending& pending) {
  const CertificateRecord& r = pending.record;
  RETURN_IF_ERROR(pending.status);
  RETURN_IF_ERROR(pending.sign_status);
  if (pending.outcome == "replayed" || pending.outcome == "conflict") {
    // The request id was used before (conflict: by another server, first): that
    // certificate is the answer.
    return Replayed(kByRequestIdSql, r.request_id);
  }
  if (pending.outcome != "issued") {
    return SubjectError(r, pending.outcome);
  }
  IssueOutcome out;
  out.record = r;
  out.record.status = CertificateStatus::kIssued;
  out.record.der = std::move(pending.der);
  ASSIGN_OR_RETURN(out.record.fingerprint, FromHex(pending.fingerprint_hex));
  out.record.create_time = FromMicros(pending.created_micros);
  return out;
}

absl::StatusOr<IssueOutcome> PgCertificateStore::Replayed(const char* sql, const std::string& key) {
  IssueOutcome out;
  auto prior = GetOne(pool_, sql, key, "key");
  if (prior.status().code() == absl::StatusCode::kNotFound) {
    return absl::AbortedError("concurrent change; retry");
  }
  RETURN_IF_ERROR(prior.status());
  out.record = *std::move(prior);
  out.replayed = true;
  return out;
}

void PgCertificateStore::StoreBatch(const std::vector<GroupCommitter::Item*>& items) {
  std::vector<Pending*> batch;
  batch.reserve(items.size());
  for (GroupCommitter::Item* item : items) batch.push_back(static_cast<Pending*>(item));
  std::string check_json = "[";
  for (size_t i = 0; i < batch.size(); ++i) {
    const CertificateRecord& r = batch[i]->record;
    absl::StrAppend(&check_json, i > 0 ? "," : "", "{\"idx\":", i, ",\"kind\":");
    AppendJsonString(&check_json, CertificateKindName(r.kind));
    absl::StrAppend(&check_json, ",\"request_id\":");
    AppendJsonString(&check_json, r.request_id);
    absl::StrAppend(&check_json, ",\"comm_id\":");
    AppendJsonString(&check_json, r.comm_id);
    absl::StrAppend(&check_json, ",\"broker_name\":");
    AppendJsonString(&check_json, r.broker_name);
    check_json.push_back('}');
  }
  check_json.push_back(']');

  const absl::Status st = pool_.Transact(
      "issue certificates", TxMode::kReadWrite, [&](pqxx::transaction_base& tx) -> absl::Status {
        // 1. Retries told apart; subjects checked and locked (FOR SHARE) until commit.
        static const std::string kCheck = "fleetca_check_certificate_requests";
        const pqxx::result checked = tx.exec_prepared(Prepared(tx, kCheck, kCheckSql), check_json);
        for (Pending* p : batch) {
          p->outcome = "unchecked";
          p->sign_status = absl::OkStatus();
          p->der.clear();
        }
        // Each result row: (idx, outcome, serial_hex, ...) of one item.
        const auto item_of = [&](const pqxx::row& row) -> absl::StatusOr<Pending*> {
          const size_t idx = row[0].as<size_t>();
          if (idx >= batch.size()) return absl::InternalError("bad batch index from the database");
          Pending* p = batch[idx];
          p->outcome = row[1].as<std::string>();
          p->serial_hex = row[2].is_null() ? "" : row[2].as<std::string>();
          return p;
        };
        for (const auto& row : checked) RETURN_IF_ERROR(item_of(row).status());
        // 2. Only then signed (an item whose signature fails fails alone), and stored with
        //    the audit entries.
        std::string store_json = "[";
        size_t to_store = 0;
        for (size_t i = 0; i < batch.size(); ++i) {
          Pending* p = batch[i];
          if (p->outcome == "unchecked") return absl::InternalError("a batch item was not checked");
          if (p->outcome != "ok") continue;
          auto der = p->sign();
          if (!der.ok()) {
            p->sign_status = der.status();
            p->outcome = "sign_failed";
            continue;
          }
          p->der = *std::move(der);
          if (to_store++ > 0) store_json.push_back(',');
          AppendStoreItem(&store_json, i, p->record, p->der, p->ctx);
        }
        store_json.push_back(']');
        if (to_store == 0) return absl::OkStatus();
        static const std::string kStore = "fleetca_store_certificates";
        const pqxx::result rows = tx.exec_prepared(Prepared(tx, kStore, kStoreSql), store_json);
        for (const auto& row : rows) {
          ASSIGN_OR_RETURN(Pending* p, item_of(row));
          p->fingerprint_hex = row[3].is_null() ? "" : row[3].as<std::string>();
          p->created_micros = row[4].is_null() ? 0 : row[4].as<int64_t>();
        }
        for (Pending* p : batch) {
          if (p->outcome == "ok") return absl::InternalError("a signed certificate was not stored");
        }
        return absl::OkStatus();
      });
  if (st.ok()) {
    for (Pending* p : batch) p->status = absl::OkStatus();
    return;
  }
  for (Pending* p : batch) p->der.clear();  // never handed out: the transaction failed
  // One bad item must not fail the others: store each alone, unless the database itself is
  // the problem (then every item gets the error, and a retry with the same request id is
  // safe whatever happened).
  if (batch.size() > 1 && st.code() != absl::StatusCode::kUnavailable) {
    for (GroupCommitter::Item* item : items) StoreBatch({item});
    return;
  }
  for (Pending* p : batch) p->status = st;
}

absl::StatusOr<CertificateRecord> ReadCertificate(pqxx::transaction_base& tx,
                                                  const std::string& serial,
                                                  const std::string& issuer_id) {
  std::vector<CertificateRecord> found;
  for (const auto& row : tx.exec_params(kBySerialSql, ToHex(serial), issuer_id)) {
    ASSIGN_OR_RETURN(CertificateRecord c, FromRow(row));
    found.push_back(std::move(c));
  }
  return OneCertificate(std::move(found), serial, issuer_id);
}

absl::StatusOr<CertificateRecord> PgCertificateStore::GetBySerial(const std::string& serial,
                                                                 const std::string& issuer_id) {
  CertificateRecord out;
  RETURN_IF_ERROR(pool_.Transact("get certificate", TxMode::kReadOnly,
                                 [&](pqxx::transaction_base& tx) -> absl::Status {
                                   ASSIGN_OR_RETURN(out, ReadCertificate(tx, serial, issuer_id));
                                   return absl::OkStatus();
                                 }));
  return out;
}

absl::StatusOr<CertificateRecord> PgCertificateStore::GetByFingerprint(
    const std::string& fingerprint) {
  return GetOne(pool_, kByFingerprintSql, ToHex(fingerprint), "SHA-256 fingerprint");
}

absl::StatusOr<CertificateRecord> PgCertificateStore::GetByRequestId(
    const std::string& request_id) {
  return GetOne(pool_, kByRequestIdSql, request_id, "request id");
}

absl::StatusOr<std::vector<PgCertificateStore::ExpiringCount>> PgCertificateStore::CountExpiring(
    absl::Time now, const std::vector<absl::Duration>& windows) {
  if (windows.empty()) return std::vector<ExpiringCount>{};
  // SELECT kind, count(*) FILTER (WHERE not_after <= $1 + w1), ... over the longest window.
  const int64_t start = ToMicros(now);
  std::string sql = "SELECT kind";
  int64_t longest = 0;
  for (const absl::Duration w : windows) {
    const int64_t micros = absl::ToInt64Microseconds(w);
    longest = std::max(longest, micros);
    absl::StrAppend(&sql, ", count(*) FILTER (WHERE not_after <= to_timestamp(", start + micros,
                    " / 1000000.0))");
  }
  absl::StrAppend(&sql, " FROM certificates WHERE status = 'issued' AND not_after > to_timestamp(",
                  start, " / 1000000.0) AND not_after <= to_timestamp(", start + longest,
                  " / 1000000.0) GROUP BY kind ORDER BY kind");
  std::vector<ExpiringCount> out;
  RETURN_IF_ERROR(pool_.Transact(
      "count expiring certificates", TxMode::kReadOnly,
      [&](pqxx::transaction_base& tx) -> absl::Status {
        out.clear();
        for (const auto& row : tx.exec(sql)) {
          ExpiringCount& c = out.emplace_back();
          c.kind = row[0].as<std::string>();
          for (size_t i = 0; i < windows.size(); ++i) {
            c.within.push_back(row[static_cast<pqxx::row::size_type>(i + 1)].as<int64_t>());
          }
        }
        return absl::OkStatus();
      }));
  return out;
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
                                                             : after.create_micros,
            f.requester);
        for (const auto& row : r) {
          ASSIGN_OR_RETURN(CertificateRecord c, FromRow(row));
          out.push_back(std::move(c));
        }
        return absl::OkStatus();
      }));
  return out;
}

}  // namespace fleetca::storage
