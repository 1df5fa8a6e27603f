#include "storage/pg_audit_store.h"

#include <openssl/sha.h>

#include <algorithm>
#include <limits>
#include <pqxx/pqxx>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "storage/journal.h"
#include "storage/pg_util.h"

namespace fleetca::storage {
namespace {

// Columns read by FromListRow, in order. The reserved details keys are taken apart here;
// the details object also comes back whole as three parallel arrays (keys, JSON types,
// values: strings unquoted, other values as jsonb text), sorted by key, so that C++ decides
// what is reserved without a JSON parser of its own.
#define FLEETCA_AUDIT_COLUMNS                                                                \
  "chain_seq, (extract(epoch FROM created_at) * 1000000)::bigint, actor, action, target, "  \
  "request_id, coalesce(encode(prev_hash, 'hex'), ''), encode(hash, 'hex'), "               \
  "coalesce(details->'actor'->>'role', ''), coalesce(details->'actor'->>'serial', ''), "    \
  "coalesce(details->'actor'->>'issuer', ''), coalesce(details->'actor'->>'peer', ''), "    \
  "ARRAY(SELECT key FROM jsonb_each(details) ORDER BY key), "                               \
  "ARRAY(SELECT jsonb_typeof(value) FROM jsonb_each(details) ORDER BY key), "               \
  "ARRAY(SELECT CASE WHEN jsonb_typeof(value) = 'string' THEN value #>> '{}' "              \
  "ELSE value::text END FROM jsonb_each(details) ORDER BY key)"

// Filters: NULL / '' / '{}' / false match everything. Times compare as epoch microseconds,
// exactly (extract returns numeric); there is no index on created_at to lose. failures_only
// matches the rule FromListRow applies to "code": a JSON number other than 0.
#define FLEETCA_AUDIT_FILTERS                                                                 \
  "WHERE chain_seq IS NOT NULL "                                                             \
  "AND ($1::bigint IS NULL OR (extract(epoch FROM created_at) * 1000000)::bigint >= $1) "   \
  "AND ($2::bigint IS NULL OR (extract(epoch FROM created_at) * 1000000)::bigint < $2) "    \
  "AND ($3 = '' OR actor = $3) "                                                             \
  "AND ($4::text[] = '{}' OR action = ANY($4::text[])) "                                     \
  "AND ($5::text[] = '{}' OR details->>'resource' = ANY($5::text[])) "                     \
  "AND ($6 = '' OR target = $6) "                                                            \
  "AND ($7 = '' OR request_id = $7) "                                                        \
  "AND (NOT $8::boolean OR CASE WHEN jsonb_typeof(details->'code') = 'number' "             \
  "THEN details->'code' <> '0'::jsonb ELSE false END) "

// Keyset pagination on chain_seq (unique index), in either direction.
constexpr char kListAscSql[] = "SELECT " FLEETCA_AUDIT_COLUMNS " FROM audit_log "
    FLEETCA_AUDIT_FILTERS "AND chain_seq > $9 ORDER BY chain_seq LIMIT $10";
constexpr char kListDescSql[] = "SELECT " FLEETCA_AUDIT_COLUMNS " FROM audit_log "
    FLEETCA_AUDIT_FILTERS "AND chain_seq < $9 ORDER BY chain_seq DESC LIMIT $10";

#undef FLEETCA_AUDIT_COLUMNS
#undef FLEETCA_AUDIT_FILTERS

// Where verification starts: the newest sequence (bounds a verification "to the newest
// event", so entries chained meanwhile are left for the next one) and the hash of the event
// before the range, which the range's first event must name.
constexpr char kVerifyStartSql[] =
    "SELECT (SELECT coalesce(max(chain_seq), 0) FROM audit_log), "
    "(SELECT encode(hash, 'hex') FROM audit_log WHERE chain_seq = $1)";

// One page of the chain, every value as the text fleetca_chain_audit hashed: numbers in
// decimal, the timestamp by the same expression, details in jsonb's canonical text form.
constexpr char kVerifyPageSql[] =
    "SELECT chain_seq::text, id::text, "
    "(extract(epoch FROM created_at) * 1000000)::bigint::text, actor, action, target, "
    "request_id, details::text, encode(prev_hash, 'hex'), encode(hash, 'hex') "
    "FROM audit_log WHERE chain_seq >= $1 AND chain_seq <= $2 "
    // Qualified: the bare name would sort by the text output column (1, 10, 11, 2, ...).
    "ORDER BY audit_log.chain_seq LIMIT $3";

// CompactJson drops the whitespace jsonb's text form puts after ':' and ',' (outside
// strings), so a non-string details value reads {"a":[1,2]}.
std::string CompactJson(const std::string& json) {
  std::string out;
  out.reserve(json.size());
  bool in_string = false;
  bool escaped = false;
  for (char c : json) {
    if (in_string) {
      out.push_back(c);
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
      out.push_back(c);
    } else if (c != ' ' && c != '\n' && c != '\t' && c != '\r') {
      out.push_back(c);
    }
  }
  return out;
}

absl::StatusOr<AuditEntry> FromListRow(const pqxx::row& row) {
  AuditEntry e;
  e.sequence = row[0].as<int64_t>();
  e.time = FromMicros(row[1].as<int64_t>());
  e.actor = row[2].as<std::string>();
  e.action = row[3].as<std::string>();
  e.resource_id = row[4].as<std::string>();
  e.request_id = row[5].as<std::string>();
  e.previous_hash = row[6].as<std::string>();
  e.hash = row[7].as<std::string>();
  e.actor_role = row[8].as<std::string>();
  e.actor_serial = row[9].as<std::string>();
  e.actor_issuer = row[10].as<std::string>();
  e.actor_peer = row[11].as<std::string>();
  const std::vector<std::string> keys = ParseTextArray(row[12]);
  const std::vector<std::string> types = ParseTextArray(row[13]);
  const std::vector<std::string> values = ParseTextArray(row[14]);
  if (keys.size() != types.size() || keys.size() != values.size()) {
    return absl::InternalError("unreadable audit details in the database");
  }
  for (size_t i = 0; i < keys.size(); ++i) {
    const std::string& key = keys[i];
    const std::string& type = types[i];
    // A reserved key is taken only in its documented shape; otherwise it stays a detail,
    // so nothing written is ever hidden from a reader.
    if (key == "actor" && type == "object") continue;
    if (key == "resource" && type == "string") {
      e.resource_type = values[i];
      continue;
    }
    if (key == "message" && type == "string") {
      e.message = values[i];
      continue;
    }
    if (key == "code" && type == "number" && absl::SimpleAtoi(values[i], &e.code)) continue;
    e.details[key] = type == "string" ? values[i] : CompactJson(values[i]);
  }
  return e;
}

bool IsHex(const std::string& s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return absl::ascii_isxdigit(c); });
}

absl::Status ValidateVerifyRequest(const AuditVerifyRequest& v) {
  if (v.from_sequence < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("from_sequence: must not be negative, got ", v.from_sequence));
  }
  if (v.to_sequence < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("to_sequence: must not be negative, got ", v.to_sequence));
  }
  if (v.to_sequence != 0 && v.to_sequence < v.from_sequence) {
    return absl::InvalidArgumentError(absl::StrCat("to_sequence: must not be below from_sequence (",
                                                   v.from_sequence, "), got ", v.to_sequence));
  }
  if (v.anchor_sequence < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("anchor_sequence: must not be negative, got ", v.anchor_sequence));
  }
  if (v.anchor_sequence == 0 && !v.anchor_hash.empty()) {
    return absl::InvalidArgumentError("anchor_sequence: is required with anchor_hash");
  }
  if (v.anchor_sequence == 0) return absl::OkStatus();
  if (v.anchor_hash.empty()) {
    return absl::InvalidArgumentError("anchor_hash: is required with anchor_sequence");
  }
  if (v.anchor_hash.size() != 2 * SHA256_DIGEST_LENGTH || !IsHex(v.anchor_hash)) {
    return absl::InvalidArgumentError(
        "anchor_hash: must be a SHA-256 hash in hexadecimal (64 digits)");
  }
  const int64_t from = std::max<int64_t>(v.from_sequence, 1);
  if (v.anchor_sequence < from || (v.to_sequence != 0 && v.anchor_sequence > v.to_sequence)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "anchor_sequence: ", v.anchor_sequence, " is outside the range verified (", from, " to ",
        v.to_sequence == 0 ? std::string("the newest event") : absl::StrCat(v.to_sequence), ")"));
  }
  return absl::OkStatus();
}

}  // namespace

std::string AuditEntryHash(const std::string& prev_hash, const std::string& chain_seq,
                           const std::string& id, const std::string& epoch_us,
                           const std::string& actor, const std::string& action,
                           const std::string& target, const std::string& request_id,
                           const std::string& details_text) {
  const std::string input = absl::StrCat(prev_hash, chain_seq, "|", id, "|", epoch_us, "|", actor,
                                         "|", action, "|", target, "|", request_id, "|",
                                         details_text);
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(input.data()), input.size(), digest);
  return std::string(reinterpret_cast<const char*>(digest), sizeof(digest));
}

absl::StatusOr<std::vector<AuditEntry>> PgAuditStore::List(const AuditFilter& filter,
                                                           int64_t after, bool newest_first,
                                                           int limit) {
  std::optional<std::string> start, end;
  if (filter.start_time) start = absl::StrCat(ToMicros(*filter.start_time));
  if (filter.end_time) end = absl::StrCat(ToMicros(*filter.end_time));
  // Newest first from the newest: no upper bound.
  if (newest_first && after <= 0) after = std::numeric_limits<int64_t>::max();
  const std::string actions = PgTextArray(filter.actions);
  const std::string resource_types = PgTextArray(filter.resource_types);
  std::vector<AuditEntry> out;
  RETURN_IF_ERROR(pool_.Transact(
      "list audit events", TxMode::kReadOnly, [&](pqxx::transaction_base& tx) -> absl::Status {
        out.clear();
        const pqxx::result r = tx.exec_params(
            newest_first ? kListDescSql : kListAscSql, NullableParam(start), NullableParam(end),
            filter.actor, actions, resource_types, filter.resource_id, filter.request_id,
            filter.failures_only, after, limit);
        out.reserve(r.size());
        for (const auto& row : r) {
          ASSIGN_OR_RETURN(AuditEntry e, FromListRow(row));
          out.push_back(std::move(e));
        }
        return absl::OkStatus();
      }));
  return out;
}

absl::StatusOr<AuditVerification> PgAuditStore::Verify(const AuditVerifyRequest& verify,
                                                       const RequestContext* request) {
  RETURN_IF_ERROR(ValidateVerifyRequest(verify));
  const int64_t from = std::max<int64_t>(verify.from_sequence, 1);
  const std::string anchor_hash = absl::AsciiStrToLower(verify.anchor_hash);

  int64_t newest = 0;
  std::optional<std::string> before_hash;  // hash of event from - 1, when it exists
  RETURN_IF_ERROR(pool_.Transact(
      "verify audit chain", TxMode::kReadOnly,
      [&](pqxx::transaction_base& tx) -> absl::Status {
        const pqxx::row row = tx.exec_params1(kVerifyStartSql, from - 1);
        newest = row[0].as<int64_t>();
        before_hash.reset();
        if (!row[1].is_null()) before_hash = row[1].as<std::string>();
        return absl::OkStatus();
      },
      request));
  const int64_t end = verify.to_sequence != 0 ? verify.to_sequence : newest;

  AuditVerification out;
  auto set_break = [&out](int64_t sequence, std::string reason) {
    out.intact = false;
    out.first_break_sequence = sequence;
    out.break_reason = std::move(reason);
  };
  // The next event expected, and the hash it must name as previous_hash: "" (none) for the
  // first event of the log; unknown (nullopt) when the event before the range is missing,
  // which is outside the range and so not a break of it.
  int64_t expected = from;
  std::optional<std::string> prev = from == 1 ? std::optional<std::string>("") : before_hash;

  int64_t cursor = from;
  while (out.intact && cursor <= end) {
    pqxx::result page;
    RETURN_IF_ERROR(pool_.Transact(
        "verify audit chain", TxMode::kReadOnly,
        [&](pqxx::transaction_base& tx) -> absl::Status {
          page = tx.exec_params(kVerifyPageSql, cursor, end, verify_page_rows_);
          return absl::OkStatus();
        },
        request));
    for (const auto& row : page) {
      const int64_t seq = row[0].as<int64_t>();
      if (seq != expected) {
        set_break(seq, absl::StrCat("sequence gap after ", expected - 1));
        break;
      }
      const std::string stored_prev = row[8].is_null() ? "" : row[8].as<std::string>();
      if (seq == 1 && !stored_prev.empty()) {
        set_break(seq, "previous_hash set on the first event");
        break;
      }
      if (seq > 1 && stored_prev.empty()) {
        set_break(seq, "previous_hash missing");
        break;
      }
      if (prev.has_value() && *prev != stored_prev) {
        set_break(seq, "previous_hash mismatch");
        break;
      }
      ASSIGN_OR_RETURN(const std::string prev_bytes, FromHex(stored_prev));
      const std::string computed = ToHex(AuditEntryHash(
          prev_bytes, row[0].as<std::string>(), row[1].as<std::string>(),
          row[2].as<std::string>(), row[3].as<std::string>(), row[4].as<std::string>(),
          row[5].as<std::string>(), row[6].as<std::string>(), row[7].as<std::string>()));
      if (row[9].is_null() || computed != row[9].as<std::string>()) {
        set_break(seq, "hash mismatch");
        break;
      }
      if (seq == verify.anchor_sequence && computed != anchor_hash) {
        set_break(seq, "hash differs from the anchor");
        break;
      }
      ++out.events_checked;
      out.last_sequence = seq;
      out.last_hash = computed;
      prev = computed;
      ++expected;
    }
    if (page.size() < static_cast<size_t>(verify_page_rows_)) break;
    cursor = expected;
  }

  // Events that should exist and were not found: a deleted (or rewritten shorter) tail. The
  // furthest one asked for is named: to_sequence, else the anchor, else from_sequence.
  if (out.intact) {
    int64_t must_reach = 0;
    const char* what = "";
    if (verify.to_sequence != 0) {
      must_reach = verify.to_sequence;
      what = "to_sequence";
    } else if (verify.anchor_sequence != 0) {
      must_reach = verify.anchor_sequence;
      what = "anchor_sequence";
    } else if (verify.from_sequence > 1) {
      must_reach = verify.from_sequence;
      what = "from_sequence";
    }
    if (expected <= must_reach) {
      const int64_t last_present = std::min(expected - 1, newest);
      set_break(last_present + 1, absl::StrCat("sequence gap after ", last_present, ": ", what,
                                               " ", must_reach, " not found"));
    }
  }
  return out;
}

}  // namespace fleetca::storage
