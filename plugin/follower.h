#pragma once

// Follower: the plugin's sync thread. It follows BrokerSyncService.Watch for the broker
// (sync_client::WatchFollower: mutual TLS with the broker's identity, resume, backoff,
// silence), keeps the stream's objects in a Policy, publishes a snapshot to the SnapshotBox
// after every snapshot swapped in and after deltas (at most every min_publish_interval),
// and keeps the cache file current (at once after a snapshot, at most every
// cache_interval after deltas, and when a stream ends or the plugin stops).
//
// Threads: Start runs the control thread (reconnects, silence, publications due, the
// cache) and, per stream, a reader thread. Both start with every signal blocked, and gRPC,
// first touched on the control thread (the channel is made there), starts its own threads
// from them: mosquitto's signals (SIGHUP reload, SIGINT, SIGTERM, SIGUSR1) reach
// mosquitto's thread only.

#include <signal.h>

#include <cstdint>
#include <memory>
#include <string>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "fleetca/v1/broker_sync.grpc.pb.h"
#include "plugin/cache.h"
#include "plugin/enforcer.h"
#include "plugin/policy.h"
#include "sync_client/connection.h"
#include "sync_client/watch_follower.h"

namespace fleetca::plugin {

struct FollowerOptions {
  sync_client::ConnectionConfig connection;
  absl::Duration heartbeat_interval = absl::Seconds(10);
  std::string cache_path;  // empty: no cache
  absl::Duration cache_interval = absl::Seconds(60);
  // Deltas are published at most this often (a burst shares one snapshot; the broker
  // thread looks every 100 ms anyway); a snapshot swapped in is published at once.
  absl::Duration min_publish_interval = absl::Milliseconds(10);
  absl::Duration initial_backoff = absl::Milliseconds(100);
  absl::Duration max_backoff = absl::Seconds(10);
  absl::Duration slow_retry = absl::Seconds(30);
};

struct FollowerStats {
  int64_t streams_opened = 0;
  int64_t messages = 0;
  int64_t snapshots_published = 0;
  int64_t cache_writes = 0;
  int64_t resume_revision = 0;
  bool has_state = false;
};

class Follower final : private sync_client::WatchConsumer {
 public:
  Follower(FollowerOptions options, SnapshotBox& box);
  ~Follower() override;  // Stop()

  // Restore starts from a loaded cache: published at once; the first Watch resumes from its
  // revision. Call before Start.
  void Restore(LoadedCache cache);

  // Start starts the control thread. The channel is made there; an error reading the TLS
  // files is logged and retried slowly (the files may be replaced).
  void Start();

  // Stop cancels the stream, writes the cache if changes are unsaved, joins the threads.
  void Stop();

  FollowerStats stats() const;

 private:
  // WatchConsumer, called with the follower's mutex held (which guards the members below).
  void Applied(sync_client::StreamApplier::Outcome outcome,
               sync_client::StreamApplier& applier) override;
  absl::Time Work(absl::Time now, sync_client::StreamApplier& applier, absl::Mutex& mu) override;
  void StreamEnded(sync_client::StreamApplier& applier, absl::Mutex& mu) override;

  void Publish(sync_client::StreamApplier& applier);
  // WriteCache writes the newest published snapshot (the mutex released meanwhile).
  void WriteCache(absl::Mutex& mu);
  bool CacheDue(absl::Time now) const;

  const FollowerOptions options_;
  SnapshotBox& box_;
  std::unique_ptr<v1::BrokerSyncService::Stub> stub_;  // the control thread's
  mutable sync_client::WatchFollower follower_;
  std::thread thread_;

  // Guarded by the follower's mutex.
  // cache_dirty_: published and not saved; cache_urgent_: a snapshot not saved yet.
  bool cache_dirty_ = false;
  bool cache_urgent_ = false;
  absl::Time last_save_ = absl::InfinitePast();
  // publish_pending_: deltas applied and not published yet.
  bool publish_pending_ = false;
  absl::Time last_publish_ = absl::InfinitePast();
  int64_t snapshots_published_ = 0;
  int64_t cache_writes_ = 0;
};

// BlockAllSignals blocks every signal in the calling thread and returns the previous mask,
// for RestoreSignals (threads started in between inherit the blocked mask).
sigset_t BlockAllSignals();
void RestoreSignals(const sigset_t& previous);

}  // namespace fleetca::plugin
