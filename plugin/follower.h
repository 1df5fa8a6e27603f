#pragma once

// Follower: the plugin's sync thread. It follows BrokerSyncService.Watch for the broker
// (mutual TLS with the broker's identity), applies the stream to a Policy, publishes a
// snapshot to the SnapshotBox after every snapshot swapped in and every delta, and keeps
// the cache file current (at once after a snapshot, at most every cache_interval after
// deltas, and when stopping). The stream is reopened after any error, from the last
// resume revision, after a backoff. Deltas are published at most every
// min_publish_interval.
//
// Threads: Start runs a control thread (reconnects, watches for silence, writes the cache)
// and, per stream, a reader thread. Both start with every signal blocked, and gRPC, which
// is first touched on the control thread, starts its own threads from them: mosquitto's
// signals (SIGHUP reload, SIGINT, SIGTERM, SIGUSR1) reach mosquitto's thread only.

#include <signal.h>

#include <cstdint>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "fleetca/v1/broker_sync.grpc.pb.h"
#include "plugin/cache.h"
#include "plugin/enforcer.h"
#include "plugin/policy.h"
#include "sync_client/connection.h"
#include "sync_client/stream_applier.h"

namespace fleetca::plugin {

struct FollowerOptions {
  sync_client::ConnectionConfig connection;
  absl::Duration heartbeat_interval = absl::Seconds(10);
  std::string cache_path;  // empty: no cache
  absl::Duration cache_interval = absl::Seconds(10);
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

class Follower {
 public:
  Follower(FollowerOptions options, SnapshotBox& box);
  ~Follower();  // Stop()

  // Restore starts from a loaded cache: published at once; the first Watch resumes from its
  // revision. Call before Start.
  void Restore(LoadedCache cache);

  // Start starts the threads. The channel is made on the control thread; an error reading
  // the TLS files is logged and retried slowly (the files may be replaced).
  void Start();

  // Stop cancels the stream, writes the cache if changes are unsaved, joins the threads.
  void Stop();

  FollowerStats stats() const;

 private:
  void Run();
  absl::Status RunStream(v1::BrokerSyncService::Stub& stub, bool* heard);
  void PublishLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void WriteCache() ABSL_LOCKS_EXCLUDED(mu_);
  bool CacheDueLocked(absl::Time now) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Policy& PolicyLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return *static_cast<Policy*>(applier_.state());
  }

  const FollowerOptions options_;
  SnapshotBox& box_;
  std::thread thread_;

  mutable absl::Mutex mu_;
  absl::CondVar cv_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  sync_client::StreamApplier applier_ ABSL_GUARDED_BY(mu_);
  bool stream_done_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status protocol_error_ ABSL_GUARDED_BY(mu_);
  absl::Time last_heard_ ABSL_GUARDED_BY(mu_);
  // cache_dirty_: published and not saved; cache_urgent_: a snapshot not saved yet.
  bool cache_dirty_ ABSL_GUARDED_BY(mu_) = false;
  // publish_pending_: deltas applied and not published yet.
  bool publish_pending_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time last_publish_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  bool cache_urgent_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time last_save_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  FollowerStats stats_ ABSL_GUARDED_BY(mu_);
};

// BlockAllSignals blocks every signal in the calling thread and returns the previous mask,
// for RestoreSignals (threads started in between inherit the blocked mask).
sigset_t BlockAllSignals();
void RestoreSignals(const sigset_t& previous);

}  // namespace fleetca::plugin
