#include "server/app/verify_audit.h"

#include <cinttypes>
#include <cstdio>

#include "absl/strings/numbers.h"
#include "absl/strings/string_view.h"
#include "storage/pg_audit_store.h"

namespace fleetca::app {
namespace {

// ParseAnchor splits "SEQ:HEX"; the store checks the values themselves (range, hex).
bool ParseAnchor(const std::string& anchor, storage::AuditVerifyRequest* verify) {
  const size_t colon = anchor.find(':');
  if (colon == std::string::npos) return false;
  if (!absl::SimpleAtoi(absl::string_view(anchor).substr(0, colon), &verify->anchor_sequence) ||
      verify->anchor_sequence <= 0) {
    return false;
  }
  verify->anchor_hash = anchor.substr(colon + 1);
  return !verify->anchor_hash.empty();
}

}  // namespace

int RunVerifyAudit(storage::ConnectionPool& pool, int64_t from, int64_t to,
                   const std::string& anchor) {
  storage::AuditVerifyRequest verify;
  verify.from_sequence = from;
  verify.to_sequence = to;
  if (!anchor.empty() && !ParseAnchor(anchor, &verify)) {
    std::fprintf(stderr,
                 "verify-audit: anchor: must be SEQUENCE:HASH (as printed by an earlier "
                 "verification), got \"%s\"\n",
                 anchor.c_str());
    return 1;
  }
  storage::PgAuditStore store(pool);
  auto result = store.Verify(verify, nullptr);
  if (!result.ok()) {
    std::fprintf(stderr, "verify-audit: %s\n", std::string(result.status().message()).c_str());
    return 1;
  }
  if (result->intact) {
    std::printf("audit chain intact\n");
  } else {
    std::printf("audit chain BROKEN at sequence %" PRId64 ": %s\n", result->first_break_sequence,
                result->break_reason.c_str());
  }
  std::printf("events checked: %" PRId64 "\n", result->events_checked);
  if (result->last_sequence == 0) {
    std::printf("no event verified\n");
  } else {
    std::printf("last %s sequence: %" PRId64 "\n", result->intact ? "verified" : "good",
                result->last_sequence);
    std::printf("last hash: %s\n", result->last_hash.c_str());
    // Only an intact chain's end is worth recording: after a break, find out what happened
    // first.
    if (result->intact) {
      std::printf("anchor for a later verification: %" PRId64 ":%s\n", result->last_sequence,
                  result->last_hash.c_str());
    }
  }
  std::fflush(stdout);
  return result->intact ? 0 : 3;
}

}  // namespace fleetca::app
