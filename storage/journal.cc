#include "storage/journal.h"

#include <pqxx/pqxx>

#include <map>

#include "common/json.h"

namespace fleetca::storage {

namespace {
constexpr char kJournalSql[] =
    "SELECT CASE WHEN $9 THEN fleetca_append_changes($1, $2::text[], $3) ELSE 0 END, "
    "fleetca_append_audit($4, $5, $6, $7, $8::jsonb || "
    "jsonb_build_object('resource', $1::text, 'actor', $10::jsonb))";
}  // namespace

std::string AuditActorJson(const RequestContext& ctx) {
  std::map<std::string, std::string> actor;
  if (!ctx.role.empty()) actor["role"] = ctx.role;
  if (!ctx.actor_serial.empty()) actor["serial"] = ctx.actor_serial;
  if (!ctx.actor_issuer.empty()) actor["issuer"] = ctx.actor_issuer;
  if (!ctx.peer.empty()) actor["peer"] = ctx.peer;
  return JsonObject(actor);
}

std::string PgTextArray(const std::vector<std::string>& values) {
  std::string out = "{";
  for (size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out.push_back(',');
    out.push_back('"');
    for (char c : values[i]) {
      if (c == '"' || c == '\\') out.push_back('\\');
      out.push_back(c);
    }
    out.push_back('"');
  }
  out.push_back('}');
  return out;
}

int64_t Journal(pqxx::transaction_base& tx, const RequestContext& ctx, const JournalEntry& entry) {
  if (entry.keys.empty()) return 0;
  const pqxx::row row = tx.exec_params1(
      kJournalSql, entry.entity_type, PgTextArray(entry.keys), entry.deleted ? "delete" : "upsert",
      ctx.actor.empty() ? std::string("unknown") : ctx.actor, entry.action,
      entry.keys.size() == 1 ? entry.keys[0] : std::string(), ctx.request_id, entry.details_json,
      entry.record_change, AuditActorJson(ctx));
  return row[0].as<int64_t>();
}

int ChainAudit(pqxx::transaction_base& tx, int limit) {
  return tx.exec_params1("SELECT fleetca_chain_audit($1)", limit)[0].as<int>();
}

}  // namespace fleetca::storage
