#pragma once

// WatchFollower: following BrokerSyncService.Watch for one broker, whatever is done with it
// (fleetca-sync renders files; the mosquitto plugin publishes snapshots to the broker
// thread). It opens the stream from the applier's resume revision, applies every message
// (StreamApplier), abandons a stream silent for three heartbeat intervals or breaking the
// protocol, and reopens it after a backoff (initial_backoff doubling to max_backoff, each
// drawn between half and all of it; slow_retry after an error retrying soon will not fix).
// A WatchConsumer is told what was applied and gets the control thread for its own work.
//
// Threads: Run's thread (the control thread) opens streams, watches for silence and calls
// the consumer's Work; one reader thread per stream receives and applies messages. Every
// consumer call is made with the follower's mutex held; the consumer guards its own state
// with it too, and may release it around slow work (file writes) in Work and StreamEnded.

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "fleetca/v1/broker_sync.grpc.pb.h"
#include "sync_client/stream_applier.h"

namespace fleetca::sync_client {

struct FollowOptions {
  std::string broker_id;
  // heartbeat_interval is asked of the server (1 s to 60 s).
  absl::Duration heartbeat_interval = absl::Seconds(10);
  std::vector<v1::SyncObjectType> object_types;  // empty: all
  absl::Duration initial_backoff = absl::Milliseconds(100);
  absl::Duration max_backoff = absl::Seconds(10);
  absl::Duration slow_retry = absl::Seconds(30);
};

class WatchConsumer {
 public:
  virtual ~WatchConsumer() = default;
  // Applied: a message changed the applier's state (kChanged or kSnapshotSwapped). On the
  // reader thread, the mutex held: keep it short.
  virtual void Applied(StreamApplier::Outcome outcome, StreamApplier& applier) = 0;
  // Work: do what is due at `now` on the control thread, the mutex held (it may be released
  // around slow work and must be held again on return); returns when Work next wants to be
  // called (it is also called after every Applied).
  virtual absl::Time Work(absl::Time now, StreamApplier& applier, absl::Mutex& mu) = 0;
  // StreamEnded: a stream ended (error, silence, Stop): flush what is pending. As Work.
  virtual void StreamEnded(StreamApplier& applier, absl::Mutex& mu) = 0;
};

struct FollowStats {
  int64_t streams_opened = 0;
  int64_t messages = 0;
};

class WatchFollower {
 public:
  // Connect returns the stub to call (made on the control thread, as late as possible: the
  // plugin must make its channel there); an error is retried slowly. The stub is borrowed.
  using Connect = std::function<absl::StatusOr<v1::BrokerSyncService::StubInterface*>()>;

  WatchFollower(Connect connect, FollowOptions options,
                std::function<std::unique_ptr<SyncState>()> new_state, WatchConsumer& consumer)
      : connect_(std::move(connect)),
        options_(std::move(options)),
        consumer_(consumer),
        applier_(std::move(new_state)) {}

  // Run follows the stream until Stop; returns after the consumer's last StreamEnded.
  void Run();
  // Stop makes Run return soon (cancels the open stream, interrupts a backoff wait).
  void Stop();

  // WithLock runs f with the mutex held and the applier (for stats and for restoring a
  // persisted state before Run).
  void WithLock(const std::function<void(StreamApplier&)>& f);
  FollowStats stats() const;

 private:
  absl::Status RunStream(v1::BrokerSyncService::StubInterface& stub, bool* heard);

  Connect connect_;
  const FollowOptions options_;
  WatchConsumer& consumer_;

  mutable absl::Mutex mu_;
  absl::CondVar cv_;
  StreamApplier applier_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool stream_done_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status protocol_error_ ABSL_GUARDED_BY(mu_);
  absl::Time last_heard_ ABSL_GUARDED_BY(mu_);
  FollowStats stats_ ABSL_GUARDED_BY(mu_);
};

}  // namespace fleetca::sync_client
