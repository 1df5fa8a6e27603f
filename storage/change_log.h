#pragma once

// ChangeLogReader: the change log (migration 0001, table change_log) as followers read it:
// every committed change to a device, identity, ACL profile or assignment, certificate,
// revocation... in revision order, which is commit order (revisions are handed out under
// the log lock, held to commit), so reading "revision > N" never skips a change that
// commits later. Followers (server/policy's index, the brokers' sync stream) read the
// current state of each changed key; the log says only what changed.

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace fleetca::storage {

struct ChangeRow {
  int64_t revision = 0;
  std::string entity_type;  // change_log.entity_type: "device", "acl_profile"...
  std::string key;          // the entity's key, e.g. a comm-ID
  bool deleted = false;     // op "delete"
};

class ChangeLogReader {
 public:
  virtual ~ChangeLogReader() = default;
  // Head: the newest committed revision (0 when the log is empty). Every change up to it
  // is committed and visible to reads that start after this call.
  virtual absl::StatusOr<int64_t> Head() = 0;
  // After: the changes of up to `limit` revisions after `revision`, in revision order.
  // One revision may change several keys (an issuance batch: change_log.entity_keys); all
  // of them are returned, in a row, with the same revision.
  virtual absl::StatusOr<std::vector<ChangeRow>> After(int64_t revision, int limit) = 0;
};

}  // namespace fleetca::storage
