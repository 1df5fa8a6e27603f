#pragma once

// AuditStore: reading and verifying the hash-chained audit log (table audit_log,
// migrations/0001), on plain structs.
//
// Row conventions (written by Journal and its callers): actor is the caller's name; action
// is the RPC method name ("RegisterDevice") or a server subcommand ("fleetca-server init");
// target is the object's id; details is a JSON object that may hold the reserved keys
//   "actor": {"role": ..., "serial": ..., "issuer": ..., "peer": ...}  (each optional)
//   "resource": "<change_log entity_type>", "code": <int>, "message": "<text>"
// and any other key is an event-specific fact. Only chained rows (chain_seq set by the
// audit sequencer) are events; entries not chained yet are invisible here.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/request_context.h"

namespace fleetca::storage {

// One chained audit entry, its reserved details keys taken apart.
struct AuditEntry {
  int64_t sequence = 0;  // chain_seq
  absl::Time time;       // created_at
  std::string actor;     // the caller's name
  // From details.actor (empty when absent): role as written ("admin", "mqtt_client"...),
  // client certificate serial (hex) and issuer id, network peer.
  std::string actor_role;
  std::string actor_serial;
  std::string actor_issuer;
  std::string actor_peer;
  std::string action;         // RPC method name or subcommand, as written
  std::string resource_type;  // details.resource: a change_log entity_type, or ""
  std::string resource_id;    // target
  std::string request_id;
  int32_t code = 0;     // details.code (0 when absent)
  std::string message;  // details.message
  // Every other details key: string values as they are, other JSON values as compact JSON
  // text. A reserved key of an unexpected JSON type ("code": "7") is kept here instead.
  std::map<std::string, std::string> details;
  std::string previous_hash;  // lowercase hex; empty for the first event
  std::string hash;           // lowercase hex
};

// Filters of List; empty members match everything; they combine with AND.
struct AuditFilter {
  std::optional<absl::Time> start_time;  // created_at >= start_time
  std::optional<absl::Time> end_time;    // created_at < end_time
  std::string actor;
  std::vector<std::string> actions;  // action is any of these
  std::vector<std::string> resource_types;  // details.resource is any of these
  std::string resource_id;           // target
  std::string request_id;
  bool failures_only = false;  // details.code is a number other than 0
};

// What VerifyAuditChain asks; the fields mean what they mean in
// fleetca.v1.VerifyAuditChainRequest (0: unset).
struct AuditVerifyRequest {
  int64_t from_sequence = 0;
  int64_t to_sequence = 0;
  int64_t anchor_sequence = 0;
  std::string anchor_hash;  // hex, 64 digits
};

struct AuditVerification {
  bool intact = true;
  // Events verified good (up to the break when there is one).
  int64_t events_checked = 0;
  // The first event that does not fit (0 when intact); for missing events, the first
  // sequence that should have been there and was not.
  int64_t first_break_sequence = 0;
  // "hash mismatch", "previous_hash mismatch", "sequence gap after N", "hash differs from
  // the anchor", ...; empty when intact.
  std::string break_reason;
  // The last event verified good (0 and "" when none): record it as an anchor.
  int64_t last_sequence = 0;
  std::string last_hash;  // lowercase hex
};

class AuditStore {
 public:
  virtual ~AuditStore() = default;

  // List returns up to `limit` events matching filter, ordered by sequence: increasing, with
  // sequence > after (after 0: from the first), or, with newest_first, decreasing, with
  // sequence < after (after 0: from the newest).
  virtual absl::StatusOr<std::vector<AuditEntry>> List(const AuditFilter& filter, int64_t after,
                                                       bool newest_first, int limit) = 0;

  // Verify recomputes the hashes of the events in the requested range, in C++, and reports
  // the first break (a result, not an error). INVALID_ARGUMENT naming the request field
  // (from_sequence, to_sequence, anchor_sequence, anchor_hash) for a negative sequence,
  // to < from, an anchor outside the range, or a malformed anchor hash. `request` (may be
  // null) stops a long verification once its caller has gone (CANCELLED).
  virtual absl::StatusOr<AuditVerification> Verify(const AuditVerifyRequest& verify,
                                                   const RequestContext* request) = 0;
};

}  // namespace fleetca::storage
