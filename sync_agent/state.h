#pragma once

// The policy a broker enforces, as fleetca-sync holds it in memory, and the application of
// BrokerSyncService.Watch messages to it (proto/fleetca/v1/broker_sync.proto, the comment
// on Watch is the contract): snapshots built apart and swapped in whole, deltas applied a
// message (or a `continued` run of messages) at a time, and the resume revision.
//
// Nothing here is persisted: an agent that starts asks for a snapshot (since_revision 0).

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "fleetca/v1/broker_sync.pb.h"

namespace fleetca::sync_agent {

// PolicyState: every object of the stream, keyed as SyncChange says. Plain maps (ordered):
// rendering walks them in key order, so its output is deterministic.
struct PolicyState {
  std::map<std::string, v1::SyncIssuer> issuers;       // issuer_id
  std::map<std::string, v1::SyncCrl> crls;             // issuer_id
  std::map<std::string, v1::SyncDevice> devices;       // comm_id
  std::map<std::string, v1::SyncIdentity> identities;  // name
  std::map<std::pair<std::string, std::string>, v1::SyncCertificate>
      certificates;                                        // (issuer_id, serial)
  std::map<std::string, v1::SyncAclProfile> acl_profiles;  // name
  // (subject_type, subject_id, profile_name)
  std::map<std::tuple<int, std::string, std::string>, v1::AclAssignment> acl_assignments;

  // ObjectCount is the number of objects held, all kinds together.
  size_t ObjectCount() const;
};

// ValidateChange checks that a change can be applied: its object is set (OK for an object
// kind this build does not know: ApplyChange skips it) and its key fields are not empty
// (subject_id may be empty for ALL_DEVICES). INVALID_ARGUMENT naming the object otherwise.
absl::Status ValidateChange(const v1::SyncChange& change);

// ApplyChange upserts the change's object into state, or removes it when `deleted`. The
// change must have passed ValidateChange. Returns false when the object's kind is unknown
// to this build (nothing applied).
bool ApplyChange(const v1::SyncChange& change, PolicyState* state);

// StreamApplier applies the messages of one Watch stream after another (and of the
// streams that follow it after a reconnect) to a PolicyState. Not thread-safe: the caller
// serialises calls.
class StreamApplier {
 public:
  // Outcome of one message.
  enum class Outcome {
    kNothing,          // a heartbeat, or changes held back (a snapshot or a `continued` run)
    kChanged,          // deltas applied: the state changed
    kSnapshotSwapped,  // a complete snapshot replaced the state
  };

  // Apply applies one message. On error the stream must be abandoned (reconnect): the
  // state and resume revision are left as they were before the snapshot or `continued`
  // run the message belongs to. DATA_LOSS when a snapshot's object count disagrees with
  // snapshot_end (the snapshot is discarded); INVALID_ARGUMENT for a message that breaks
  // the protocol (no event, snapshot_end without snapshot_begin or with another revision,
  // deltas before any snapshot, a change failing ValidateChange).
  absl::StatusOr<Outcome> Apply(const v1::WatchResponse& response);

  // StreamEnded discards what a broken stream left half-received: a snapshot being built
  // and changes of an unfinished `continued` run. The state and resume revision stay.
  void StreamEnded();

  // state is the current policy (the last snapshot with the deltas applied since).
  const PolicyState& state() const { return state_; }
  // has_state is true once a snapshot has been swapped in: before that the state is empty
  // and must not be rendered (it would deny everything).
  bool has_state() const { return has_state_; }
  // resume_revision is the since_revision of the next Watch request: 0 until a snapshot is
  // swapped in.
  int64_t resume_revision() const { return resume_revision_; }
  // in_snapshot is true between snapshot_begin and snapshot_end.
  bool in_snapshot() const { return building_.has_value(); }

 private:
  absl::StatusOr<Outcome> ApplyChanges(const v1::SyncChanges& changes);
  absl::StatusOr<Outcome> EndSnapshot(const v1::SnapshotEnd& end);

  PolicyState state_;
  bool has_state_ = false;
  int64_t resume_revision_ = 0;

  // The snapshot being received: its revision, objects and how many changes it carried.
  struct Building {
    int64_t revision = 0;
    PolicyState state;
    int64_t count = 0;
  };
  std::optional<Building> building_;
  // Changes of a `continued` run, applied when the run's last message arrives.
  std::vector<v1::SyncChange> pending_;
};

}  // namespace fleetca::sync_agent
