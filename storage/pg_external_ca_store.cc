#include "storage/pg_external_ca_store.h"

#include <pqxx/pqxx>

#include <openssl/sha.h>

#include <map>

#include "absl/strings/str_cat.h"
#include "common/json.h"
#include "common/status_macros.h"
#include "storage/journal.h"
#include "storage/pg_certificate_store.h"
#include "storage/pg_errors.h"
#include "storage/pg_revocation_store.h"
#include "storage/pg_util.h"

namespace fleetca::storage {
namespace {

// An external CA row, with its last imported CRL (imported_crls, one row per CA).
#define FLEETCA_EXTERNAL_CA_COLUMNS                                                       \
  "i.id, coalesce(i.options->>'display_name', ''), i.subject, i.certificate_der, "        \
  "(extract(epoch FROM i.not_before) * 1000000)::bigint, "                               \
  "(extract(epoch FROM i.not_after) * 1000000)::bigint, i.state, "                        \
  "coalesce((i.options->>'accept_unregistered_certificates')::boolean, false), "          \
  "coalesce(least(k.crl_number, 9223372036854775807)::bigint, 0), "                       \
  "(extract(epoch FROM k.next_update) * 1000000)::bigint, i.version, "                    \
  "(extract(epoch FROM i.created_at) * 1000000)::bigint, "                                \
  "(extract(epoch FROM i.updated_at) * 1000000)::bigint"
#define FLEETCA_EXTERNAL_CA_FROM \
  " FROM issuers i LEFT JOIN imported_crls k ON k.issuer_id = i.id "
#define FLEETCA_EXTERNAL_CA_VISIBLE " i.purpose = 'external' AND i.state <> 'removed' "

constexpr char kInsertSql[] =
    "INSERT INTO issuers (id, purpose, state, algorithm, subject, certificate_der, not_before, "
    "  not_after, options, activated_at) "
    "VALUES ($1, 'external', 'active', 'external', $2, $3, "
    "  timestamptz 'epoch' + $4::bigint * interval '1 microsecond', "
    "  timestamptz 'epoch' + $5::bigint * interval '1 microsecond', "
    "  jsonb_build_object('display_name', $6::text, 'accept_unregistered_certificates', $7::boolean), "
    "  now()) "
    "ON CONFLICT (id) DO NOTHING RETURNING id";
constexpr char kGetSql[] = "SELECT " FLEETCA_EXTERNAL_CA_COLUMNS FLEETCA_EXTERNAL_CA_FROM
    "WHERE i.id = $1 AND" FLEETCA_EXTERNAL_CA_VISIBLE;
constexpr char kListSql[] = "SELECT " FLEETCA_EXTERNAL_CA_COLUMNS FLEETCA_EXTERNAL_CA_FROM
    "WHERE i.id > $1 AND" FLEETCA_EXTERNAL_CA_VISIBLE "ORDER BY i.id LIMIT $2";
// The CA locked for a change (FOR UPDATE: one change at a time, and registrations and
// imports under it wait for a disabling to commit).
constexpr char kLockSql[] =
    "SELECT i.state, i.version FROM issuers i "
    "WHERE i.id = $1 AND" FLEETCA_EXTERNAL_CA_VISIBLE "FOR UPDATE";
constexpr char kUpdateSql[] =
    "UPDATE issuers SET options = options "
    "  || CASE WHEN $2::text IS NULL THEN '{}'::jsonb ELSE jsonb_build_object('display_name', $2::text) END "
    "  || CASE WHEN $4::boolean IS NULL THEN '{}'::jsonb "
    "     ELSE jsonb_build_object('accept_unregistered_certificates', $4::boolean) END, "
    "  state = CASE WHEN $3::boolean IS NULL THEN state WHEN $3::boolean THEN 'active' "
    "               ELSE 'disabled' END, "
    "  version = version + 1, updated_at = now() WHERE id = $1";
constexpr char kRemoveSql[] =
    "UPDATE issuers SET state = 'removed', retired_at = now(), version = version + 1, "
    "updated_at = now() WHERE id = $1";

#undef FLEETCA_EXTERNAL_CA_COLUMNS
#undef FLEETCA_EXTERNAL_CA_FROM
#undef FLEETCA_EXTERNAL_CA_VISIBLE

ExternalCa FromRow(const pqxx::row& row) {
  ExternalCa ca;
  ca.id = row[0].as<std::string>();
  ca.display_name = row[1].as<std::string>();
  ca.subject = row[2].as<std::string>();
  ca.certificate_der = ByteaValue(row[3]);
  ca.not_before = FromMicros(row[4].as<int64_t>());
  ca.not_after = FromMicros(row[5].as<int64_t>());
  ca.enabled = row[6].as<std::string>() == "active";
  ca.accept_unregistered = row[7].as<bool>();
  ca.crl_number = row[8].as<int64_t>();
  if (!row[9].is_null()) ca.crl_next_update = FromMicros(row[9].as<int64_t>());
  ca.version = row[10].as<int64_t>();
  ca.create_time = FromMicros(row[11].as<int64_t>());
  ca.update_time = FromMicros(row[12].as<int64_t>());
  return ca;
}

absl::Status NotFound(const std::string& id) {
  return absl::NotFoundError(absl::StrCat("external_ca_id: no external CA \"", id, "\""));
}

// Lock: whether the CA is enabled.
absl::StatusOr<bool> Lock(pqxx::transaction_base& tx, const std::string& id,
                            std::optional<int64_t> expected_version) {
  const pqxx::result r = tx.exec_params(kLockSql, id);
  if (r.empty()) return NotFound(id);
  if (expected_version && *expected_version != r[0][1].as<int64_t>()) {
    return absl::AbortedError(absl::StrCat("etag: external CA \"", id, "\" changed since etag \"",
                                           *expected_version, "\" was read: read it again"));
  }
  return r[0][0].as<std::string>() == "active";
}

absl::StatusOr<ExternalCa> Read(pqxx::transaction_base& tx, const std::string& id) {
  const pqxx::result r = tx.exec_params(kGetSql, id);
  if (r.empty()) return NotFound(id);
  return FromRow(r[0]);
}

std::string Sha256Hex(const std::string& der) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(der.data()), der.size(), digest);
  return ToHex(std::string(reinterpret_cast<const char*>(digest), sizeof digest));
}

std::string CaDetails(const ExternalCa& ca) {
  return absl::StrCat("{\"display_name\":", JsonString(ca.display_name),
                      ",\"enabled\":", ca.enabled ? "true" : "false",
                      ",\"accept_unregistered_certificates\":",
                      ca.accept_unregistered ? "true" : "false",
                      ",\"subject\":", JsonString(ca.subject),
                      ",\"sha256\":", JsonString(Sha256Hex(ca.certificate_der)), "}");
}

}  // namespace

absl::StatusOr<std::vector<ExternalCa>> AllExternalCas(ExternalCaStore& store) {
  constexpr int kPage = 1000;
  std::vector<ExternalCa> all;
  for (std::string after;;) {
    ASSIGN_OR_RETURN(std::vector<ExternalCa> page, store.List(after, kPage));
    for (ExternalCa& ca : page) all.push_back(std::move(ca));
    if (page.size() < static_cast<size_t>(kPage)) break;
    after = all.back().id;
  }
  return all;
}

absl::StatusOr<ExternalCa> PgExternalCaStore::Create(const ExternalCa& ca,
                                                     const RequestContext& ctx) {
  ExternalCa out;
  absl::Status st = pool_.Transact(
      "register external CA", TxMode::kReadWrite,
      [&](pqxx::transaction_base& tx) -> absl::Status {
        const pqxx::result r = tx.exec_params(
            kInsertSql, ca.id, ca.subject, pqxx::binarystring(ca.certificate_der),
            ToMicros(ca.not_before), ToMicros(ca.not_after), ca.display_name,
            ca.accept_unregistered);
        if (r.empty()) {
          return absl::AlreadyExistsError(absl::StrCat(
              "external_ca_id: \"", ca.id, "\" is taken (by an issuer or an external CA, "
              "possibly one deleted: ids are never reused)"));
        }
        ASSIGN_OR_RETURN(out, Read(tx, ca.id));
        Journal(tx, ctx, {"RegisterExternalCa", "issuer", {ca.id}, false, CaDetails(out)});
        return absl::OkStatus();
      },
      &ctx);
  if (st.code() == absl::StatusCode::kAlreadyExists &&
      ConstraintName(st) == "issuers_external_certificate") {
    return absl::AlreadyExistsError(
        "certificate_pem: this certificate is already registered as an external CA");
  }
  RETURN_IF_ERROR(st);
  return out;
}

absl::StatusOr<ExternalCa> PgExternalCaStore::Get(const std::string& id) {
  ExternalCa out;
  RETURN_IF_ERROR(pool_.Transact("get external CA", TxMode::kReadOnly,
                                 [&](pqxx::transaction_base& tx) -> absl::Status {
                                   ASSIGN_OR_RETURN(out, Read(tx, id));
                                   return absl::OkStatus();
                                 }));
  return out;
}

absl::StatusOr<std::vector<ExternalCa>> PgExternalCaStore::List(const std::string& after,
                                                                int limit) {
  std::vector<ExternalCa> out;
  RETURN_IF_ERROR(pool_.Transact("list external CAs", TxMode::kReadOnly,
                                 [&](pqxx::transaction_base& tx) -> absl::Status {
                                   out.clear();
                                   for (const auto& row : tx.exec_params(kListSql, after, limit)) {
                                     out.push_back(FromRow(row));
                                   }
                                   return absl::OkStatus();
                                 }));
  return out;
}

absl::StatusOr<ExternalCa> PgExternalCaStore::Update(const std::string& id,
                                                     const ExternalCaUpdate& u,
                                                     std::optional<int64_t> expected_version,
                                                     const RequestContext& ctx) {
  ExternalCa out;
  std::optional<std::string> enabled, accept;
  if (u.enabled) enabled = *u.enabled ? "true" : "false";
  if (u.accept_unregistered) accept = *u.accept_unregistered ? "true" : "false";
  RETURN_IF_ERROR(pool_.Transact(
      "update external CA", TxMode::kReadWrite,
      [&](pqxx::transaction_base& tx) -> absl::Status {
        RETURN_IF_ERROR(Lock(tx, id, expected_version).status());
        tx.exec_params(kUpdateSql, id, NullableParam(u.display_name), NullableParam(enabled),
                       NullableParam(accept));
        ASSIGN_OR_RETURN(out, Read(tx, id));
        Journal(tx, ctx, {"UpdateExternalCa", "issuer", {id}, false, CaDetails(out)});
        return absl::OkStatus();
      },
      &ctx));
  return out;
}

absl::Status PgExternalCaStore::Remove(const std::string& id,
                                       std::optional<int64_t> expected_version,
                                       const RequestContext& ctx) {
  return pool_.Transact(
      "delete external CA", TxMode::kReadWrite,
      [&](pqxx::transaction_base& tx) -> absl::Status {
        ASSIGN_OR_RETURN(const bool enabled, Lock(tx, id, expected_version));
        if (enabled) {
          return absl::FailedPreconditionError(absl::StrCat(
              "external CA \"", id, "\" is enabled: disable it first (UpdateExternalCa), so "
              "that brokers stop trusting it before it disappears"));
        }
        tx.exec_params(kRemoveSql, id);
        Journal(tx, ctx, {"DeleteExternalCa", "issuer", {id}, true, "{}"});
        return absl::OkStatus();
      },
      &ctx);
}

absl::StatusOr<RegisteredCertificate> PgExternalCaStore::RegisterCertificate(
    const CertificateRecord& r, const RequestContext& ctx) {
  RegisteredCertificate out;
  const std::string key = CertificateChangeKey(CertificateKind::kExternalDevice, r.issuer_id, r.serial);
  RETURN_IF_ERROR(pool_.Transact(
      "RegisterExternalCertificate", TxMode::kReadWrite,
      [&](pqxx::transaction_base& tx) -> absl::Status {
        out = {};
        // The CA first (FOR SHARE: a disabling waits for this registration, or this
        // registration sees it), then the device.
        const pqxx::result ca = tx.exec_params(
            "SELECT state FROM issuers WHERE id = $1 AND purpose = 'external' "
            "AND state <> 'removed' FOR SHARE",
            r.issuer_id);
        if (ca.empty()) return NotFound(r.issuer_id);
        if (ca[0][0].as<std::string>() != "active") {
          return absl::FailedPreconditionError(absl::StrCat(
              "certificate_pem: it chains to external CA \"", r.issuer_id, "\", which is disabled"));
        }
        const pqxx::result device =
            tx.exec_params("SELECT status FROM devices WHERE comm_id = $1 FOR SHARE", r.comm_id);
        if (device.empty()) {
          return absl::NotFoundError(
              absl::StrCat("comm_id: device \"", r.comm_id, "\" is not registered"));
        }
        const std::string status = device[0][0].as<std::string>();
        if (status != "active") {
          return absl::FailedPreconditionError(absl::StrCat(
              "comm_id: device \"", r.comm_id, "\" is ", status,
              ": only active devices get certificates"));
        }
        const pqxx::result prior = tx.exec_params(
            "SELECT der = $3 FROM certificates WHERE serial = $1 AND issuer_id = $2",
            pqxx::binarystring(r.serial), r.issuer_id, pqxx::binarystring(r.der));
        if (!prior.empty()) {
          if (!prior[0][0].as<bool>()) {
            return absl::AlreadyExistsError(absl::StrCat(
                "certificate_pem: another certificate with serial ", ToHex(r.serial),
                " of external CA \"", r.issuer_id, "\" is registered already"));
          }
          out.already_registered = true;
        } else {
          tx.exec_params(
              "INSERT INTO certificates (serial, issuer_id, kind, comm_id, subject, key_algorithm, "
              "  dns_names, ip_addresses, status, not_before, not_after, der, fingerprint_sha256, "
              "  requester) "
              "VALUES ($1, $2, 'external_device', $3, $4, $5, '{}', '{}', 'issued', "
              "  timestamptz 'epoch' + $6::bigint * interval '1 microsecond', "
              "  timestamptz 'epoch' + $7::bigint * interval '1 microsecond', $8, sha256($8), $9)",
              pqxx::binarystring(r.serial), r.issuer_id, r.comm_id, r.subject, r.key_algorithm,
              ToMicros(r.not_before), ToMicros(r.not_after), pqxx::binarystring(r.der),
              r.requester);
          Journal(tx, ctx,
                  {"RegisterExternalCertificate", "certificate", {key}, false,
                   JsonObject({{"issuer", r.issuer_id},
                               {"comm_id", r.comm_id},
                               {"subject", r.subject},
                               {"serial", ToHex(r.serial)}})});
        }
        // As stored (revoked already, when registered and revoked before).
        ASSIGN_OR_RETURN(out.record, ReadCertificate(tx, r.serial, r.issuer_id));
        return absl::OkStatus();
      },
      &ctx));
  return out;
}

absl::StatusOr<ImportCrlOutcome> PgExternalCaStore::ImportCrl(const std::string& id,
                                                              const ImportedCrl& crl,
                                                              const RequestContext& ctx) {
  ImportCrlOutcome out;
  RETURN_IF_ERROR(pool_.Transact(
      "ImportCrl", TxMode::kReadWrite,
      [&](pqxx::transaction_base& tx) -> absl::Status {
        out = {};
        RETURN_IF_ERROR(Lock(tx, id, std::nullopt).status());
        // The previous import: the same CRL again changes nothing; an older one is refused.
        const pqxx::result prev = tx.exec_params(
            "SELECT der = $2, crl_number::text, "
            "(extract(epoch FROM this_update) * 1000000)::bigint FROM imported_crls "
            "WHERE issuer_id = $1",
            id, pqxx::binarystring(crl.der));
        if (!prev.empty()) {
          if (prev[0][0].as<bool>()) {
            out.already_imported = true;
            return absl::OkStatus();
          }
          const absl::Time prev_this_update = FromMicros(prev[0][2].as<int64_t>());
          int64_t prev_number = -1;
          if (!prev[0][1].is_null()) prev_number = prev[0][1].as<int64_t>();
          const bool newer = crl.crl_number && prev_number >= 0
                                 ? *crl.crl_number > prev_number
                                 : crl.this_update > prev_this_update;
          if (!newer) {
            return absl::FailedPreconditionError(absl::StrCat(
                "crl: not newer than the CRL imported before (",
                prev_number >= 0 ? absl::StrCat("number ", prev_number, ", ") : "",
                "thisUpdate ", absl::FormatTime(absl::RFC3339_sec, prev_this_update, absl::UTCTimeZone()),
                ")"));
          }
        }
        std::optional<std::string> number, next_update;
        if (crl.crl_number) number = std::to_string(*crl.crl_number);
        if (crl.next_update) next_update = std::to_string(ToMicros(*crl.next_update));
        tx.exec_params(
            "INSERT INTO imported_crls AS k (issuer_id, crl_number, this_update, next_update, der) "
            "VALUES ($1, $2::numeric, timestamptz 'epoch' + $3::bigint * interval '1 microsecond', "
            "  timestamptz 'epoch' + $4::bigint * interval '1 microsecond', $5) "
            "ON CONFLICT (issuer_id) DO UPDATE SET crl_number = excluded.crl_number, "
            "  this_update = excluded.this_update, next_update = excluded.next_update, "
            "  der = excluded.der, imported_at = now()",
            id, NullableParam(number), ToMicros(crl.this_update), NullableParam(next_update),
            pqxx::binarystring(crl.der));
        // The listed serials, as JSON for one statement.
        std::string entries = "[";
        std::vector<std::string> keys;
        keys.reserve(crl.entries.size());
        for (const ImportedCrl::Entry& e : crl.entries) {
          if (entries.size() > 1) entries.push_back(',');
          absl::StrAppend(&entries, "{\"s\":\"", ToHex(e.serial), "\",\"r\":", e.reason,
                          ",\"t\":", ToMicros(e.revoke_time), "}");
          keys.push_back(CertificateChangeKey(CertificateKind::kExternalDevice, id, e.serial));
        }
        entries.push_back(']');
        tx.exec_params("DELETE FROM imported_revocations WHERE issuer_id = $1", id);
        tx.exec_params(
            "INSERT INTO imported_revocations (issuer_id, serial, reason, revoked_at) "
            "SELECT $1, decode(x.s, 'hex'), CASE WHEN x.r < 0 THEN NULL ELSE x.r END, "
            "  timestamptz 'epoch' + x.t * interval '1 microsecond' "
            "FROM jsonb_to_recordset($2::jsonb) AS x (s text, r int, t bigint) "
            "ON CONFLICT DO NOTHING",
            id, entries);
        // The tracked certificates it revokes (live ones: a revocation is final, and one
        // revoked in fleetca keeps its own reason), by the entry's reason: unspecified (0)
        // when it has none; certificateHold stays a hold.
        std::map<int, std::vector<std::string>> by_reason;
        size_t newly_revoked = 0;
        for (const pqxx::row& row : tx.exec_params(
                 "SELECT " FLEETCA_CERTIFICATE_KEY_SQL ", coalesce(v.reason, 0) FROM certificates c "
                 "JOIN imported_revocations v ON v.issuer_id = c.issuer_id AND v.serial = c.serial "
                 "WHERE c.issuer_id = $1 AND c.status IN ('issued', 'on_hold') "
                 "ORDER BY c.serial FOR UPDATE OF c",
                 id)) {
          by_reason[row[1].as<int>()].push_back(row[0].as<std::string>());
          ++newly_revoked;
        }
        std::map<std::string, std::string> details = {
            {"crl_number", number.value_or("")},
            {"entries", std::to_string(crl.entries.size())},
            {"newly_revoked", std::to_string(newly_revoked)}};
        Journal(tx, ctx, {"ImportCrl", "crl", {id}, false, JsonObject(details)});
        // One revision for every listed serial (brokers refuse them all), tracked or not.
        if (!keys.empty()) {
          tx.exec("SELECT fleetca_log_lock()");
          const int64_t revision =
              tx.exec_params1("INSERT INTO change_log (entity_type, entity_key, op, entity_keys) "
                              "VALUES ('revocation', $1, 'upsert', $2::text[]) RETURNING revision",
                              keys[0], PgTextArray(keys))[0]
                  .as<int64_t>();
          for (const auto& [reason, group] : by_reason) {
            RevokeLocked(tx, group, reason, std::nullopt, "listed in an imported CRL", revision,
                         /*from_imported_crl=*/true);
          }
        }
        out.newly_revoked = static_cast<int>(newly_revoked);
        return absl::OkStatus();
      },
      &ctx));
  return out;
}

absl::StatusOr<ImportedCrl> PgExternalCaStore::GetImportedCrl(const std::string& id) {
  ImportedCrl out;
  RETURN_IF_ERROR(pool_.Transact(
      "get imported CRL", TxMode::kReadOnly, [&](pqxx::transaction_base& tx) -> absl::Status {
        const pqxx::result r = tx.exec_params(
            "SELECT k.der, k.crl_number::text, "
            "(extract(epoch FROM k.this_update) * 1000000)::bigint, "
            "(extract(epoch FROM k.next_update) * 1000000)::bigint "
            "FROM imported_crls k JOIN issuers i ON i.id = k.issuer_id "
            "WHERE k.issuer_id = $1 AND i.state <> 'removed'",
            id);
        if (r.empty()) {
          return absl::NotFoundError(
              absl::StrCat("issuer_id: no CRL was imported for external CA \"", id, "\""));
        }
        out.der = ByteaValue(r[0][0]);
        if (!r[0][1].is_null()) out.crl_number = r[0][1].as<int64_t>();
        out.this_update = FromMicros(r[0][2].as<int64_t>());
        if (!r[0][3].is_null()) out.next_update = FromMicros(r[0][3].as<int64_t>());
        return absl::OkStatus();
      }));
  return out;
}

}  // namespace fleetca::storage
