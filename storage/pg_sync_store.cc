#include "storage/pg_sync_store.h"

#include <pqxx/pqxx>

#include <algorithm>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/numbers.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/json.h"
#include "common/status_macros.h"
#include "storage/journal.h"
#include "storage/pg_certificate_store.h"
#include "storage/pg_util.h"

namespace fleetca::storage {
namespace {

// Each kind's statement: "$1::text[]" holds the keys of a Read (NULL for a page), "$2" the
// key after which a page starts, "$3" the page size. A row is (key, visible, columns...):
// invisible rows are read as deletions. The certificate statement reads certificates of
// every kind; Read and List leave out those brokers never see.
// A disabled external CA stays in view (enabled = false: brokers refuse its certificates);
// a removed one leaves it.
#define FLEETCA_ISSUER_VISIBLE                                                    \
  "(state NOT IN ('pending', 'removed') AND certificate_der IS NOT NULL AND " \
  "(not_after IS NULL OR not_after > now()))"
constexpr char kIssuersSql[] =
    "SELECT id, " FLEETCA_ISSUER_VISIBLE ", purpose, certificate_der, "
    "       (extract(epoch FROM not_after) * 1000000)::bigint, state, "
    "       coalesce((options->>'accept_unregistered_certificates')::boolean, false) "
    "FROM issuers "
    "WHERE CASE WHEN $1::text[] IS NULL THEN id > $2 AND " FLEETCA_ISSUER_VISIBLE
    "           ELSE id = ANY($1::text[]) END "
    "ORDER BY id LIMIT $3";
#undef FLEETCA_ISSUER_VISIBLE

// The newest complete CRL whose DER is stored (crl_ders is filled right after crls), and
// the customer CRL last imported for each external CA that is not removed.
constexpr char kCrlsSql[] =
    "SELECT * FROM ("
    "  SELECT DISTINCT ON (k.issuer_id) k.issuer_id, true, k.crl_number, "
    "         (extract(epoch FROM k.this_update) * 1000000)::bigint, "
    "         (extract(epoch FROM k.next_update) * 1000000)::bigint, d.der, false "
    "  FROM crls k JOIN crl_ders d USING (issuer_id, crl_number) "
    "  WHERE k.base_crl_number IS NULL AND "
    "        CASE WHEN $1::text[] IS NULL THEN k.issuer_id > $2 "
    "             ELSE k.issuer_id = ANY($1::text[]) END "
    "  ORDER BY k.issuer_id, k.crl_number DESC) own "
    "UNION ALL "
    "SELECT m.issuer_id, true, least(coalesce(m.crl_number, 0), 9223372036854775807)::bigint, "
    "       (extract(epoch FROM m.this_update) * 1000000)::bigint, "
    "       (extract(epoch FROM coalesce(m.next_update, m.this_update)) * 1000000)::bigint, "
    "       m.der, true "
    "FROM imported_crls m JOIN issuers i ON i.id = m.issuer_id AND i.state <> 'removed' "
    "WHERE CASE WHEN $1::text[] IS NULL THEN m.issuer_id > $2 "
    "           ELSE m.issuer_id = ANY($1::text[]) END "
    "ORDER BY 1 LIMIT $3";

constexpr char kDevicesSql[] =
    "SELECT comm_id, true, status, attributes::text, groups FROM devices "
    "WHERE CASE WHEN $1::text[] IS NULL THEN comm_id > $2 ELSE comm_id = ANY($1::text[]) END "
    "ORDER BY comm_id LIMIT $3";

constexpr char kIdentitiesSql[] =
    "SELECT name, true, role, status FROM identities "
    "WHERE CASE WHEN $1::text[] IS NULL THEN name > $2 ELSE name = ANY($1::text[]) END "
    "ORDER BY name LIMIT $3";

// Keys are CertificateChangeKey's. Certificates are only ever read by key (List scans
// them: ScanCertificates); $2 is unused (named only so that it has a type).
#define FLEETCA_CERTIFICATE_SYNC_COLUMNS                                                    \
  "c.kind, c.issuer_id, coalesce(c.comm_id, ''), coalesce(c.identity_name, ''), c.status, " \
  "CASE WHEN c.status = 'issued' THEN -1 ELSE (SELECT r.reason FROM revocations r "          \
  "  WHERE r.serial = c.serial AND r.issuer_id = c.issuer_id) END, "                         \
  "c.fingerprint_sha256, (extract(epoch FROM c.not_after) * 1000000)::bigint, "              \
  "encode(c.serial, 'hex')"
constexpr char kCertificatesSql[] =
    "SELECT " FLEETCA_CERTIFICATE_KEY_SQL ", c.not_after > now(), "
    FLEETCA_CERTIFICATE_SYNC_COLUMNS " "
    "FROM certificates c "
    "WHERE c.status <> 'reserved' AND $2::text IS NOT NULL AND "
    FLEETCA_CERTIFICATE_KEY_IN_SQL("$1::text[]") " LIMIT $3";

// A range of the certificates table's blocks, in physical order (a TID range scan: a
// sequential read), for snapshots and loads; the columns of kCertificatesSql.
constexpr char kScanCertificatesSql[] =
    "SELECT " FLEETCA_CERTIFICATE_KEY_SQL ", true, " FLEETCA_CERTIFICATE_SYNC_COLUMNS " "
    "FROM certificates c "
    "WHERE c.ctid >= ('(' || $1::bigint || ',0)')::tid "
    "  AND c.ctid < ('(' || $2::bigint || ',0)')::tid "
    "  AND c.status <> 'reserved' AND c.kind IN ('device', 'identity', 'external_device') "
    "  AND c.not_after > now()";
#undef FLEETCA_CERTIFICATE_SYNC_COLUMNS

// Serials listed in imported customer CRLs that the inventory does not track: revoked
// certificates known only by (issuer, serial). By key ($1), or a page in key order after
// $2 (a snapshot's last phase).
constexpr char kImportedRevocationsSql[] =
    "SELECT v.issuer_id || '/' || encode(v.serial, 'hex'), v.issuer_id, encode(v.serial, 'hex'), "
    "       coalesce(v.reason, 0) "
    "FROM imported_revocations v JOIN issuers i ON i.id = v.issuer_id AND i.state <> 'removed' "
    "WHERE NOT EXISTS (SELECT 1 FROM certificates c "
    "                  WHERE c.serial = v.serial AND c.issuer_id = v.issuer_id) AND "
    "      CASE WHEN $1::text[] IS NULL "
    "           THEN (v.issuer_id, v.serial) > (split_part($2, '/', 1), "
    "                                           decode(split_part($2, '/', 2), 'hex')) "
    "           ELSE (v.issuer_id, v.serial) IN (SELECT split_part(k, '/', 1), "
    "                 decode(split_part(k, '/', 2), 'hex') FROM unnest($1::text[]) k) END "
    "ORDER BY v.issuer_id, v.serial LIMIT $3";

// The imported-CRL phase of a certificate listing: its cursors start with this.
constexpr char kImportedCursor[] = "imported:";

absl::StatusOr<std::vector<SyncObject>> ImportedRevocations(pqxx::transaction_base& tx,
                                                            const std::optional<std::string>& keys,
                                                            const std::string& after, int limit) {
  std::vector<SyncObject> out;
  for (const pqxx::row& row :
       tx.exec_params(kImportedRevocationsSql, NullableParam(keys), after, limit)) {
    SyncObject obj;
    obj.kind = SyncKind::kCertificate;
    obj.key = row[0].as<std::string>();
    SyncCertificate c;
    c.kind = CertificateKind::kExternalDevice;
    c.issuer_id = row[1].as<std::string>();
    ASSIGN_OR_RETURN(c.serial, FromHex(row[2].as<std::string>()));
    c.status = CertificateStatus::kRevoked;
    c.reason = row[3].as<int>();
    c.from_imported_crl_only = true;
    obj.value = std::move(c);
    out.push_back(std::move(obj));
  }
  return out;
}

const char* SqlOf(SyncKind kind) {
  switch (kind) {
    case SyncKind::kIssuer:
      return kIssuersSql;
    case SyncKind::kCrl:
      return kCrlsSql;
    case SyncKind::kDevice:
      return kDevicesSql;
    case SyncKind::kIdentity:
      return kIdentitiesSql;
    case SyncKind::kCertificate:
      return kCertificatesSql;
    default:
      return nullptr;
  }
}

bool IsClientCertificate(CertificateKind kind) {
  return kind == CertificateKind::kDevice || kind == CertificateKind::kIdentity ||
         kind == CertificateKind::kExternalDevice;
}

// FromRow fills obj from a row of SqlOf(obj->kind); false when the object is left out.
absl::StatusOr<bool> FromRow(const pqxx::row& row, SyncObject* obj) {
  obj->key = row[0].as<std::string>();
  obj->deleted = !row[1].as<bool>();
  switch (obj->kind) {
    case SyncKind::kIssuer: {
      SyncIssuer i;
      i.id = obj->key;
      if (row[2].as<std::string>() == "external") {
        i.purpose = IssuerPurpose::kDevices;  // external CAs issue device certificates
        i.external = true;
        i.enabled = row[5].as<std::string>() == "active";
        i.accept_unregistered = row[6].as<bool>();
      } else {
        ASSIGN_OR_RETURN(i.purpose, IssuerPurposeFromName(row[2].as<std::string>()));
      }
      if (!obj->deleted) {
        i.certificate_der = ByteaValue(row[3]);
        if (!row[4].is_null()) i.not_after = FromMicros(row[4].as<int64_t>());
      }
      obj->value = std::move(i);
      return true;
    }
    case SyncKind::kCrl: {
      SyncCrl c;
      c.issuer_id = obj->key;
      c.crl_number = row[2].as<int64_t>();
      c.this_update = FromMicros(row[3].as<int64_t>());
      c.next_update = FromMicros(row[4].as<int64_t>());
      c.der = ByteaValue(row[5]);
      c.imported = row[6].as<bool>();
      obj->value = std::move(c);
      return true;
    }
    case SyncKind::kDevice: {
      SyncDevice d;
      d.comm_id = obj->key;
      ASSIGN_OR_RETURN(d.status, DeviceStatusFromName(row[2].as<std::string>()));
      ASSIGN_OR_RETURN(d.attributes, ParseFlatJsonObject(row[3].as<std::string>()));
      d.groups = ParseTextArray(row[4]);
      obj->value = std::move(d);
      return true;
    }
    case SyncKind::kIdentity: {
      SyncIdentity i;
      i.name = obj->key;
      i.role = row[2].as<std::string>();
      i.active = row[3].as<std::string>() == "active";
      obj->value = std::move(i);
      return true;
    }
    case SyncKind::kCertificate: {
      SyncCertificate c;
      ASSIGN_OR_RETURN(c.kind, CertificateKindFromName(row[2].as<std::string>()));
      if (!IsClientCertificate(c.kind)) return false;
      ASSIGN_OR_RETURN(c.serial, FromHex(row[10].as<std::string>()));
      c.issuer_id = row[3].as<std::string>();
      c.comm_id = row[4].as<std::string>();
      c.identity_name = row[5].as<std::string>();
      ASSIGN_OR_RETURN(c.status, CertificateStatusFromName(row[6].as<std::string>()));
      c.reason = row[7].is_null() ? -1 : row[7].as<int>();
      c.fingerprint = ByteaValue(row[8]);
      c.not_after = FromMicros(row[9].as<int64_t>());
      obj->value = std::move(c);
      return true;
    }
    default:
      return absl::InternalError("no statement for this kind");
  }
}

}  // namespace

std::optional<SyncKind> SyncKindOfChange(const std::string& entity_type) {
  if (entity_type == "issuer") return SyncKind::kIssuer;
  if (entity_type == "crl") return SyncKind::kCrl;
  if (entity_type == "device") return SyncKind::kDevice;
  if (entity_type == "identity") return SyncKind::kIdentity;
  if (entity_type == "certificate" || entity_type == "revocation") return SyncKind::kCertificate;
  if (entity_type == "acl_profile") return SyncKind::kAclProfile;
  if (entity_type == "acl_assignment") return SyncKind::kAclAssignment;
  return std::nullopt;
}

absl::StatusOr<std::vector<SyncObject>> PgSyncStore::Query(SyncKind kind,
                                                           const std::vector<std::string>* keys,
                                                           const std::string& after, int limit) {
  std::vector<SyncObject> out;
  const char* sql = SqlOf(kind);
  if (sql == nullptr) return absl::InternalError("no statement for this kind");
  std::optional<std::string> key_array;
  if (keys != nullptr) key_array = PgTextArray(*keys);
  RETURN_IF_ERROR(pool_.Transact(
      "read objects for brokers", TxMode::kReadOnly,
      [&](pqxx::transaction_base& tx) -> absl::Status {
        out.clear();
        const pqxx::result rows = tx.exec_params(sql, NullableParam(key_array), after, limit);
        out.reserve(rows.size());
        for (const pqxx::row& row : rows) {
          SyncObject obj;
          obj.kind = kind;
          ASSIGN_OR_RETURN(const bool keep, FromRow(row, &obj));
          if (keep) out.push_back(std::move(obj));
        }
        return absl::OkStatus();
      }));
  return out;
}

absl::StatusOr<std::vector<SyncObject>> PgSyncStore::Read(SyncKind kind,
                                                          const std::vector<std::string>& keys) {
  if (kind == SyncKind::kAclProfile || kind == SyncKind::kAclAssignment) {
    return ReadAcl(kind, keys);
  }
  ASSIGN_OR_RETURN(std::vector<SyncObject> found,
                   Query(kind, &keys, "", static_cast<int>(keys.size())));
  if (kind == SyncKind::kCertificate) {
    // External keys the inventory does not hold: serials of imported CRLs, perhaps.
    absl::flat_hash_map<std::string, bool> held;
    for (const SyncObject& o : found) held.emplace(o.key, true);
    std::vector<std::string> rest;
    for (const std::string& key : keys) {
      if (key.find('/') != std::string::npos && !held.contains(key)) rest.push_back(key);
    }
    if (!rest.empty()) {
      const std::string array = PgTextArray(rest);
      RETURN_IF_ERROR(pool_.Transact(
          "read imported revocations for brokers", TxMode::kReadOnly,
          [&](pqxx::transaction_base& tx) -> absl::Status {
            ASSIGN_OR_RETURN(std::vector<SyncObject> imported,
                             ImportedRevocations(tx, array, "", static_cast<int>(rest.size())));
            for (SyncObject& o : imported) found.push_back(std::move(o));
            return absl::OkStatus();
          }));
    }
  }
  absl::flat_hash_map<std::string, size_t> index;
  for (size_t i = 0; i < found.size(); ++i) index.emplace(found[i].key, i);
  // In the order asked for, each key once; a key not found is a deletion (certificates are
  // never deleted: a serial not found is one brokers never see).
  std::vector<SyncObject> out;
  out.reserve(keys.size());
  absl::flat_hash_map<std::string, bool> seen;
  for (const std::string& key : keys) {
    if (!seen.emplace(key, true).second) continue;
    auto it = index.find(key);
    if (it != index.end()) {
      out.push_back(found[it->second]);
    } else if (kind != SyncKind::kCertificate) {
      SyncObject gone;
      gone.kind = kind;
      gone.key = key;
      gone.deleted = true;
      out.push_back(std::move(gone));
    }
  }
  return out;
}

absl::StatusOr<std::vector<SyncObject>> PgSyncStore::ReadAcl(SyncKind kind,
                                                             const std::vector<std::string>& keys) {
  std::vector<SyncObject> out;
  for (const std::string& key : keys) {
    SyncObject obj;
    obj.kind = kind;
    obj.key = key;
    if (kind == SyncKind::kAclProfile) {
      absl::StatusOr<AclProfileRow> p = acls_.GetProfile(key);
      if (p.ok()) {
        obj.value = *std::move(p);
      } else if (p.status().code() == absl::StatusCode::kNotFound) {
        obj.deleted = true;
      } else {
        return p.status();
      }
    } else {
      std::optional<AclAssignmentRow> parsed = ParseAssignmentKey(key);
      if (!parsed) continue;  // not a key AclStore writes
      AclAssignmentFilter filter;
      filter.subject_type = parsed->subject_type;
      filter.subject_id = parsed->subject_id;
      filter.profile_name = parsed->profile_name;
      ASSIGN_OR_RETURN(std::vector<AclAssignmentRow> found,
                       acls_.ListAssignments(filter, std::nullopt, 1));
      obj.deleted = found.empty();
      obj.value = found.empty() ? *std::move(parsed) : std::move(found[0]);
    }
    out.push_back(std::move(obj));
  }
  return out;
}

absl::StatusOr<SyncPage> PgSyncStore::List(SyncKind kind, const std::string& cursor, int limit) {
  if (kind == SyncKind::kCertificate) return ScanCertificates(cursor, limit);
  SyncPage page;
  if (kind == SyncKind::kAclProfile || kind == SyncKind::kAclAssignment) {
    ASSIGN_OR_RETURN(page.objects, ListAcl(kind, cursor, limit));
  } else {
    ASSIGN_OR_RETURN(page.objects, Query(kind, nullptr, cursor, limit));
  }
  if (page.objects.size() >= static_cast<size_t>(limit)) page.next = page.objects.back().key;
  return page;
}

absl::StatusOr<SyncPage> PgSyncStore::ScanCertificates(const std::string& cursor, int limit) {
  if (absl::StartsWith(cursor, kImportedCursor)) {
    // The last phase: serials known only from imported CRLs, in key order.
    const std::string after(absl::StripPrefix(cursor, kImportedCursor));
    SyncPage page;
    RETURN_IF_ERROR(pool_.Transact(
        "read imported revocations for brokers", TxMode::kReadOnly,
        [&](pqxx::transaction_base& tx) -> absl::Status {
          ASSIGN_OR_RETURN(page.objects,
                           ImportedRevocations(tx, std::nullopt, after.empty() ? "/" : after, limit));
          return absl::OkStatus();
        }));
    if (page.objects.size() >= static_cast<size_t>(limit)) {
      page.next = absl::StrCat(kImportedCursor, page.objects.back().key);
    }
    return page;
  }
  int64_t block = 0;
  if (!cursor.empty() && !absl::SimpleAtoi(cursor, &block)) {
    return absl::InvalidArgumentError("malformed certificate cursor");
  }
  // About 25 certificate rows fit a block: a page of `limit` rows is limit / 25 blocks.
  const int64_t blocks = std::max<int64_t>(1, limit / 25);
  SyncPage page;
  int64_t size = 0;
  RETURN_IF_ERROR(pool_.Transact(
      "read certificates for brokers", TxMode::kReadOnly,
      [&](pqxx::transaction_base& tx) -> absl::Status {
        page.objects.clear();
        size = tx.exec1("SELECT pg_relation_size('certificates') / "
                        "current_setting('block_size')::bigint")[0]
                   .as<int64_t>();
        const pqxx::result rows = tx.exec_params(kScanCertificatesSql, block, block + blocks);
        page.objects.reserve(rows.size());
        for (const pqxx::row& row : rows) {
          SyncObject obj;
          obj.kind = SyncKind::kCertificate;
          ASSIGN_OR_RETURN(const bool keep, FromRow(row, &obj));
          if (keep) page.objects.push_back(std::move(obj));
        }
        return absl::OkStatus();
      }));
  page.next = block + blocks < size ? absl::StrCat(block + blocks) : kImportedCursor;
  return page;
}

absl::StatusOr<std::vector<SyncObject>> PgSyncStore::ListAcl(SyncKind kind,
                                                             const std::string& after, int limit) {
  std::vector<SyncObject> out;
  if (kind == SyncKind::kAclProfile) {
    ASSIGN_OR_RETURN(std::vector<AclProfileRow> rows, acls_.ListProfiles(after, limit));
    for (AclProfileRow& p : rows) {
      SyncObject obj;
      obj.kind = kind;
      obj.key = p.name;
      obj.value = std::move(p);
      out.push_back(std::move(obj));
    }
    return out;
  }
  std::optional<AclAssignmentRow> from;
  if (!after.empty()) {
    from = ParseAssignmentKey(after);
    if (!from) return absl::InvalidArgumentError("malformed assignment key");
  }
  ASSIGN_OR_RETURN(std::vector<AclAssignmentRow> rows,
                   acls_.ListAssignments(AclAssignmentFilter{}, from, limit));
  for (AclAssignmentRow& a : rows) {
    SyncObject obj;
    obj.kind = kind;
    obj.key = AssignmentKey(a);
    obj.value = std::move(a);
    out.push_back(std::move(obj));
  }
  return out;
}

absl::StatusOr<int64_t> PgSyncStore::OldestRevision() {
  int64_t oldest = 0;
  RETURN_IF_ERROR(pool_.Transact("read change-log start", TxMode::kReadOnly,
                                 [&](pqxx::transaction_base& tx) -> absl::Status {
                                   oldest = tx.exec1("SELECT coalesce(min(revision), 0) FROM "
                                                     "change_log")[0]
                                                .as<int64_t>();
                                   return absl::OkStatus();
                                 }));
  return oldest;
}

}  // namespace fleetca::storage
