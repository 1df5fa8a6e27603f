#include "storage/pg_identity_store.h"

#include <pqxx/pqxx>

#include <map>

#include "absl/strings/str_cat.h"
#include "common/json.h"
#include "common/status_macros.h"
#include "storage/journal.h"
#include "storage/pg_revocation_store.h"
#include "storage/pg_util.h"

namespace fleetca::storage {
namespace {

// An identity with its newest certificate and its count of usable certificates.
#define FLEETCA_IDENTITY_COLUMNS                                                              \
  "i.name, i.role, i.status, i.description, "                                                 \
  "(extract(epoch FROM i.created_at) * 1000000)::bigint, "                                    \
  "(extract(epoch FROM i.updated_at) * 1000000)::bigint, "                                    \
  "coalesce((SELECT encode(c.serial, 'hex') FROM certificates c WHERE c.identity_name = "     \
  "i.name AND c.status <> 'reserved' ORDER BY c.created_at DESC, c.serial DESC LIMIT 1), ''), " \
  "(SELECT count(*) FROM certificates c WHERE c.identity_name = i.name AND c.status = "       \
  "'issued' AND c.not_after > now())::int"

constexpr char kInsertIdentitySql[] =
    "INSERT INTO identities (name, role, description) VALUES ($1, $2, $3) "
    "ON CONFLICT (name) DO NOTHING RETURNING name";
constexpr char kGetSql[] =
    "SELECT " FLEETCA_IDENTITY_COLUMNS " FROM identities i WHERE i.name = $1";
constexpr char kListSql[] =
    "SELECT " FLEETCA_IDENTITY_COLUMNS " FROM identities i WHERE i.name > $1 "
    "AND ($2 = '' OR i.role = $2) AND ($3 = '' OR i.status = $3) ORDER BY i.name LIMIT $4";
constexpr char kLockSql[] = "SELECT status, role FROM identities WHERE name = $1 FOR UPDATE";
constexpr char kInsertCertificateSql[] =
    "INSERT INTO certificates (serial, issuer_id, kind, identity_name, subject, key_algorithm, "
    "status, profile, not_before, not_after, der, fingerprint_sha256, requester) "
    "VALUES (decode($1, 'hex'), $2, 'identity', $3, $4, $5, 'issued', $6, "
    "timestamptz 'epoch' + $7 * interval '1 microsecond', "
    "timestamptz 'epoch' + $8 * interval '1 microsecond', decode($9, 'hex'), "
    "sha256(decode($9, 'hex')), $10) "
    "RETURNING encode(fingerprint_sha256, 'hex'), (extract(epoch FROM created_at) * 1000000)::bigint";
// Revokes the identity's issued certificates except $2 (hex; '' for none): one change-log
// revision covers them (the revision CRLs and brokers follow).

#undef FLEETCA_IDENTITY_COLUMNS

// RevokeCertificates revokes the identity's live certificates but keep_serial_hex, under
// one change-log revision (the audit entry is the caller's), and returns their serials.
std::vector<std::string> RevokeCertificates(pqxx::transaction_base& tx, const std::string& name,
                                            const std::string& keep_serial_hex, int reason) {
  std::vector<std::string> serials_hex;
  for (const pqxx::row& row : tx.exec_params(
           "SELECT encode(serial, 'hex') FROM certificates WHERE identity_name = $1 "
           "AND status IN ('issued', 'on_hold') AND serial <> decode($2, 'hex') "
           "ORDER BY serial FOR UPDATE",
           name, keep_serial_hex)) {
    serials_hex.push_back(row[0].as<std::string>());
  }
  if (serials_hex.empty()) return serials_hex;
  const int64_t revision =
      tx.exec_params1("SELECT fleetca_append_changes('revocation', $1::text[], 'upsert')",
                      PgTextArray(serials_hex))[0]
          .as<int64_t>();
  RevokeLocked(tx, serials_hex, reason, std::nullopt, "", revision);
  return serials_hex;
}

std::string Hex(const std::string& bytes) {
  static const char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 15]);
  }
  return out;
}

std::string Unhex(const std::string& hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  }
  return out;
}

IdentityRecord FromRow(const pqxx::row& row) {
  IdentityRecord r;
  r.name = row[0].as<std::string>();
  r.role = row[1].as<std::string>();
  r.status = row[2].as<std::string>();
  r.description = row[3].as<std::string>();
  r.create_time = FromMicros(row[4].as<int64_t>());
  r.update_time = FromMicros(row[5].as<int64_t>());
  r.latest_serial = Unhex(row[6].as<std::string>());
  r.active_certificate_count = row[7].as<int>();
  return r;
}

absl::Status NotFound(const std::string& name) {
  return absl::NotFoundError(absl::StrCat("identity \"", name, "\" does not exist"));
}

// StoreCertificate signs and inserts one identity certificate inside tx; fills the
// fingerprint and creation time into *out.
absl::Status StoreCertificate(pqxx::transaction_base& tx, const std::string& name,
                              const CertificateRecord& c,
                              const std::function<absl::StatusOr<std::string>()>& sign,
                              const RequestContext& ctx, CertificateRecord* out) {
  ASSIGN_OR_RETURN(std::string der, sign());
  const pqxx::row row = tx.exec_params1(
      kInsertCertificateSql, Hex(c.serial), c.issuer_id, name, c.subject, c.key_algorithm,
      c.profile, ToMicros(c.not_before), ToMicros(c.not_after), Hex(der), ctx.actor);
  // A certificate change, as the issuance batches log theirs (brokers learn of it).
  tx.exec_params("SELECT fleetca_append_changes('certificate', ARRAY[$1], 'upsert')", Hex(c.serial));
  *out = c;
  out->kind = CertificateKind::kIdentity;
  out->identity_name = name;
  out->status = CertificateStatus::kIssued;
  out->der = der;
  out->fingerprint = Unhex(row[0].as<std::string>());
  out->create_time = FromMicros(row[1].as<int64_t>());
  out->requester = ctx.actor;
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<IdentityRecord> PgIdentityStore::Create(
    const IdentityRecord& identity, const CertificateRecord& certificate,
    const std::function<absl::StatusOr<std::string>()>& sign, const RequestContext& ctx,
    CertificateRecord* stored_certificate) {
  IdentityRecord out;
  RETURN_IF_ERROR(pool_.Transact(
      "issue identity", TxMode::kReadWrite,
      [&](pqxx::transaction_base& tx) -> absl::Status {
        if (tx.exec_params(kInsertIdentitySql, identity.name, identity.role, identity.description)
                .empty()) {
          return absl::AlreadyExistsError(absl::StrCat(
              "name: identity \"", identity.name,
              "\" exists already (names of revoked identities are not reused)"));
        }
        CertificateRecord stored;
        RETURN_IF_ERROR(StoreCertificate(tx, identity.name, certificate, sign, ctx, &stored));
        Journal(tx, ctx,
                {"IssueIdentity", "identity", {identity.name}, false,
                 JsonObject({{"role", identity.role},
                             {"certificate_serial", Hex(stored.serial)},
                             {"issuer", stored.issuer_id}})});
        out = FromRow(tx.exec_params1(kGetSql, identity.name));
        *stored_certificate = std::move(stored);
        return absl::OkStatus();
      },
      &ctx));
  return out;
}

absl::StatusOr<CertificateRecord> PgIdentityStore::AddCertificate(
    const std::string& name, const CertificateRecord& certificate,
    const std::function<absl::StatusOr<std::string>()>& sign, bool revoke_previous,
    const RequestContext& ctx, std::vector<std::string>* revoked_serials_hex) {
  CertificateRecord out;
  RETURN_IF_ERROR(pool_.Transact(
      "renew identity", TxMode::kReadWrite,
      [&](pqxx::transaction_base& tx) -> absl::Status {
        const pqxx::result lock = tx.exec_params(kLockSql, name);
        if (lock.empty()) return NotFound(name);
        if (lock[0][0].as<std::string>() != "active") {
          return absl::FailedPreconditionError(
              absl::StrCat("identity \"", name, "\" is revoked"));
        }
        RETURN_IF_ERROR(StoreCertificate(tx, name, certificate, sign, ctx, &out));
        std::map<std::string, std::string> details = {{"certificate_serial", Hex(out.serial)},
                                                      {"issuer", out.issuer_id}};
        if (revoke_previous) {
          *revoked_serials_hex =
              RevokeCertificates(tx, name, Hex(out.serial), 4 /* superseded */);
          details["revoked_certificates"] = std::to_string(revoked_serials_hex->size());
        }
        Journal(tx, ctx, {"RenewIdentity", "identity", {name}, false, JsonObject(details)});
        return absl::OkStatus();
      },
      &ctx));
  return out;
}

absl::StatusOr<IdentityRecord> PgIdentityStore::Get(const std::string& name) {
  IdentityRecord out;
  RETURN_IF_ERROR(pool_.Transact("get identity", TxMode::kReadOnly,
                                 [&](pqxx::transaction_base& tx) -> absl::Status {
                                   const pqxx::result r = tx.exec_params(kGetSql, name);
                                   if (r.empty()) return NotFound(name);
                                   out = FromRow(r[0]);
                                   return absl::OkStatus();
                                 }));
  return out;
}

absl::StatusOr<std::vector<IdentityRecord>> PgIdentityStore::List(const IdentityFilter& filter,
                                                                  const std::string& after,
                                                                  int limit) {
  std::vector<IdentityRecord> out;
  RETURN_IF_ERROR(pool_.Transact(
      "list identities", TxMode::kReadOnly, [&](pqxx::transaction_base& tx) -> absl::Status {
        out.clear();
        for (const pqxx::row& row :
             tx.exec_params(kListSql, after, filter.role, filter.status, limit)) {
          out.push_back(FromRow(row));
        }
        return absl::OkStatus();
      }));
  return out;
}

absl::StatusOr<RevokeIdentityResult> PgIdentityStore::Revoke(const std::string& name, int reason,
                                                             const std::string& comment,
                                                             const RequestContext& ctx) {
  RevokeIdentityResult out;
  RETURN_IF_ERROR(pool_.Transact(
      "revoke identity", TxMode::kReadWrite,
      [&](pqxx::transaction_base& tx) -> absl::Status {
        out.revoked_serials.clear();
        const pqxx::result lock = tx.exec_params(kLockSql, name);
        if (lock.empty()) return NotFound(name);
        if (lock[0][0].as<std::string>() == "active") {
          if (lock[0][1].as<std::string>() == "admin") {
            // Serialize admin revocations so two cannot each leave the other as the last.
            tx.exec("SELECT pg_advisory_xact_lock(7318262781330071555)");
            const int64_t admins = tx.exec1("SELECT count(*) FROM identities WHERE role = "
                                            "'admin' AND status = 'active'")[0]
                                       .as<int64_t>();
            if (admins <= 1) {
              return absl::FailedPreconditionError(absl::StrCat(
                  "name: \"", name, "\" is the last active admin: issue another admin first"));
            }
          }
          tx.exec_params("UPDATE identities SET status = 'revoked', updated_at = now() "
                         "WHERE name = $1",
                         name);
          for (const std::string& hex : RevokeCertificates(tx, name, "", reason)) {
            out.revoked_serials.push_back(Unhex(hex));
          }
          Journal(tx, ctx,
                  {"RevokeIdentity", "identity", {name}, false,
                   JsonObject({{"reason", std::to_string(reason)},
                               {"comment", comment},
                               {"revoked_certificates",
                                std::to_string(out.revoked_serials.size())}})});
        }
        out.identity = FromRow(tx.exec_params1(kGetSql, name));
        return absl::OkStatus();
      },
      &ctx));
  return out;
}

absl::StatusOr<int64_t> PgIdentityStore::CountActive(const std::string& role) {
  int64_t n = 0;
  RETURN_IF_ERROR(pool_.Transact(
      "count identities", TxMode::kReadOnly, [&](pqxx::transaction_base& tx) -> absl::Status {
        n = tx.exec_params1("SELECT count(*) FROM identities WHERE status = 'active' AND "
                            "($1 = '' OR role = $1)",
                            role)[0]
                .as<int64_t>();
        return absl::OkStatus();
      }));
  return n;
}

absl::StatusOr<std::vector<std::string>> PgIdentityStore::LoadRevokedNames() {
  std::vector<std::string> out;
  RETURN_IF_ERROR(pool_.Transact(
      "load revoked identities", TxMode::kReadOnly,
      [&](pqxx::transaction_base& tx) -> absl::Status {
        out.clear();
        for (const pqxx::row& row : tx.exec("SELECT name FROM identities WHERE status = 'revoked'")) {
          out.push_back(row[0].as<std::string>());
        }
        return absl::OkStatus();
      }));
  return out;
}

}  // namespace fleetca::storage
