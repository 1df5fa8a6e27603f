#pragma once

// The consumer's side of BrokerSyncService.Watch (proto/fleetca/v1/broker_sync.proto, the
// comment on Watch is the contract), whatever the consumer keeps: snapshots built apart
// and swapped in whole, deltas applied a message (or a `continued` run of messages) at a
// time, and the resume revision. fleetca-sync keeps protobuf maps it renders into files;
// the mosquitto plugin keeps a compact index its callbacks read.

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "fleetca/v1/broker_sync.pb.h"

namespace fleetca::sync_client {

// SyncState is what a consumer keeps of the stream's objects.
class SyncState {
 public:
  virtual ~SyncState() = default;
  // Apply upserts the change's object, or removes it when `deleted`. The change passed
  // ValidateChange. Returns false when the object's kind is unknown to this build or not
  // kept by this consumer (nothing applied).
  virtual bool Apply(const v1::SyncChange& change) = 0;
};

// ValidateChange checks that a change can be applied: its object is set (OK for an object
// kind this build does not know: Apply skips it) and its key fields are not empty
// (subject_id may be empty for ALL_DEVICES). INVALID_ARGUMENT naming the object otherwise.
absl::Status ValidateChange(const v1::SyncChange& change);

// StreamApplier applies the messages of one Watch stream after another (and of the
// streams that follow it after a reconnect) to a SyncState. Not thread-safe: the caller
// serialises calls.
class StreamApplier {
 public:
  // Outcome of one message.
  enum class Outcome {
    kNothing,          // a heartbeat, or changes held back (a snapshot or a `continued` run)
    kChanged,          // deltas applied: the state changed
    kSnapshotSwapped,  // a complete snapshot replaced the state
  };

  // new_state makes an empty state: the initial one, and one per snapshot received.
  // log_snapshots: log a line when a snapshot begins and when it is swapped in (off when
  // replaying a persisted copy).
  explicit StreamApplier(std::function<std::unique_ptr<SyncState>()> new_state,
                         bool log_snapshots = true);

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

  // Restore installs a state obtained otherwise (a persisted copy) as if a snapshot at
  // `revision` had been swapped in: the next Watch resumes from it.
  void Restore(std::unique_ptr<SyncState> state, int64_t revision);

  // ReleaseState hands the current state over; the applier starts again empty (as if new).
  std::unique_ptr<SyncState> ReleaseState();

  // state is the current state (the last snapshot with the deltas applied since; empty
  // before the first snapshot). Never null.
  SyncState* state() { return state_.get(); }
  const SyncState* state() const { return state_.get(); }
  // has_state is true once a snapshot has been swapped in (or a state restored): before
  // that the state is empty and must not be enforced (it would deny everything).
  bool has_state() const { return has_state_; }
  // resume_revision is the since_revision of the next Watch request: 0 until a snapshot is
  // swapped in.
  int64_t resume_revision() const { return resume_revision_; }
  // in_snapshot is true between snapshot_begin and snapshot_end.
  bool in_snapshot() const { return building_.has_value(); }

 private:
  absl::StatusOr<Outcome> ApplyChanges(const v1::SyncChanges& changes);
  absl::StatusOr<Outcome> EndSnapshot(const v1::SnapshotEnd& end);

  std::function<std::unique_ptr<SyncState>()> new_state_;
  const bool log_snapshots_;
  std::unique_ptr<SyncState> state_;
  bool has_state_ = false;
  int64_t resume_revision_ = 0;

  // The snapshot being received: its revision, objects and how many changes it carried.
  struct Building {
    int64_t revision = 0;
    std::unique_ptr<SyncState> state;
    int64_t count = 0;
  };
  std::optional<Building> building_;
  // Changes of a `continued` run, applied when the run's last message arrives.
  std::vector<v1::SyncChange> pending_;
};

}  // namespace fleetca::sync_client
