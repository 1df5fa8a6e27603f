#pragma once

// The brokers' sync stream (BrokerSyncService.Watch, proto/fleetca/v1/broker_sync.proto).
//
// SyncFeed follows the change log (woken by NOTIFY fleetca_changes) and keeps the newest
// changes, already read and converted to their stream form, in a bounded window shared by
// every stream: a change is read from PostgreSQL once, however many brokers watch. A stream
// (RunWatch) reads from the window; one whose position is older than the window (a broker
// reconnecting, or one too slow for the window) reads from the database instead, and one
// too far behind for that is sent a snapshot. A stream never waits for another: the feed
// never waits for streams, each stream waits only for its own broker.
//
// Order and replicas: changes are sent in revision order, which is commit order (the
// change log hands out revisions under its lock, held to commit). Each change carries its
// object's state when the server read it, which may be newer than its revision (never
// older): a broker applying the changes in order converges on the database's state, on any
// replica, and the same revision means the same point in that sequence everywhere.

#include <cstdint>
#include <deque>
#include <memory>
#include <set>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "fleetca/v1/broker_sync.pb.h"
#include "storage/broker_store.h"
#include "storage/change_log.h"
#include "storage/sync_store.h"

namespace fleetca::api {

// One change as streams send it, built once and shared.
struct FeedChange {
  int64_t revision = 0;
  storage::SyncKind kind = storage::SyncKind::kDevice;
  v1::SyncChange message;
  size_t bytes = 0;  // message.ByteSizeLong()
};
using FeedChangePtr = std::shared_ptr<const FeedChange>;

// ToSyncChange converts an object read for brokers to its stream form (revision 0 inside a
// snapshot).
void ToSyncChange(const storage::SyncObject& object, int64_t revision, v1::SyncChange* out);

// ReadChanges reads the changes of up to `max_revisions` revisions after `after` from the
// database: one change per change-log key, at its revision, with the object's state as read
// (each object read once, one statement per kind). `revision` is the last revision read, which may be past the last
// change returned (changes brokers do not see are skipped); `after` when nothing is new.
struct ChangeBatch {
  std::vector<FeedChangePtr> changes;
  int64_t revision = 0;
};
absl::StatusOr<ChangeBatch> ReadChanges(storage::ChangeLogReader& log, storage::SyncStore& store,
                                        int64_t after, int max_revisions);

class SyncFeed {
 public:
  struct Options {
    size_t max_changes = 200000;       // the window's bounds: changes...
    size_t max_bytes = 64 << 20;       // ... and bytes of messages
    int revisions_per_read = 1000;     // change-log rows read per statement
  };
  SyncFeed(storage::ChangeLogReader& log, storage::SyncStore& store, Options options);

  // Poll reads what committed after the window's head into the window (the first call
  // starts an empty window at the log's head) and wakes the streams; returns how many
  // changes it added.
  absl::StatusOr<int> Poll();

  // Read copies the changes with revision > after into out, in order, whole revisions, about
  // `max` of them (more when the last revision holds more), and sets *reached to the
  // revision through which out holds every change (the window's head when it took all).
  // False, with nothing copied and *reached the head, when `after` is older than the window
  // (or the feed has not polled yet): read from the database instead.
  bool Read(int64_t after, size_t max, std::vector<FeedChangePtr>* out, int64_t* reached) const;
  // WaitBeyond waits until the head passes `after`, the feed shuts down, or timeout.
  void WaitBeyond(int64_t after, absl::Duration timeout) const;
  int64_t head() const;
  // Shutdown wakes every stream and makes them end (UNAVAILABLE).
  void Shutdown();
  bool shutting_down() const;

  storage::ChangeLogReader& log() { return log_; }
  storage::SyncStore& store() { return store_; }

 private:
  storage::ChangeLogReader& log_;
  storage::SyncStore& store_;
  const Options options_;

  mutable absl::Mutex mu_;
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  bool shutdown_ ABSL_GUARDED_BY(mu_) = false;
  int64_t start_ ABSL_GUARDED_BY(mu_) = 0;  // the window holds (start_, head_]
  int64_t head_ ABSL_GUARDED_BY(mu_) = 0;
  std::deque<FeedChangePtr> window_ ABSL_GUARDED_BY(mu_);
  size_t bytes_ ABSL_GUARDED_BY(mu_) = 0;
};

// StreamTracker: this replica's Watch streams per broker, which a thread of the caller's
// records for the other replicas (storage::BrokerStore::RecordStreams) every few seconds:
// GetBroker's sync state.
class StreamTracker {
 public:
  void Opened(const std::string& broker);
  void Sent(const std::string& broker, int64_t revision);
  void Closed(const std::string& broker);
  // Take: every broker with open streams or a change since the last call (a broker whose
  // last stream closed is reported once more, with 0 streams, then forgotten).
  std::vector<storage::BrokerStreams> Take();

  // Open: the brokers with streams open here now, with the revision sent to each (the
  // metrics' watchers and lag). Does not disturb Take.
  struct OpenBroker {
    std::string broker;
    int streams = 0;
    int64_t sent_revision = 0;
  };
  std::vector<OpenBroker> Open();

 private:
  struct State {
    int streams = 0;
    int64_t sent_revision = 0;
    absl::Time last_seen;
    bool changed = false;
  };
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, State> brokers_ ABSL_GUARDED_BY(mu_);
};

// A Watch stream's output: the gRPC writer, or a test's.
class WatchSink {
 public:
  virtual ~WatchSink() = default;
  // Write sends one message; false when the stream is broken.
  virtual bool Write(const v1::WatchResponse& message) = 0;
  virtual bool Cancelled() = 0;
};

struct WatchOptions {
  std::string broker_id;
  StreamTracker* tracker = nullptr;  // told of the stream and of what it sends, if set
  int64_t since_revision = 0;
  absl::Duration heartbeat_interval = absl::Seconds(10);
  std::set<storage::SyncKind> kinds;  // empty: every kind
  // A stream more revisions behind the head than this is sent a snapshot rather than
  // everything it missed.
  int64_t max_catch_up_revisions = 1000000;
  size_t max_message_bytes = 1 << 20;
  size_t max_message_changes = 2000;
  int snapshot_page = 5000;
};

// RunWatch streams to sink until the sink breaks or is cancelled (OK: nobody is listening),
// or the feed shuts down (UNAVAILABLE); a database error ends it too (UNAVAILABLE: the
// broker reconnects with its last revision).
absl::Status RunWatch(SyncFeed& feed, const WatchOptions& options, WatchSink& sink);

}  // namespace fleetca::api
