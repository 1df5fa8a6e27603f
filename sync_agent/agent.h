#pragma once

// Agent: follows BrokerSyncService.Watch for one broker and keeps mosquitto's files in step
// with it: every message goes to a StreamApplier; the state is rendered and published
// (Publisher) at most once per min_write_interval, at once after a snapshot is swapped in,
// and never later than min_write_interval after a change was applied. The stream is
// reopened after any error, with since_revision = the last resume point, after a backoff.
//
// Threads: Run's thread drives the stream and publishes; one reader thread per stream
// receives messages. Stop may be called from any thread.

#include <cstdint>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "fleetca/v1/broker_sync.grpc.pb.h"
#include "sync_agent/publisher.h"
#include "sync_agent/state.h"

namespace fleetca::sync_agent {

struct AgentOptions {
  std::string broker_id;
  // heartbeat_interval is asked of the server (1 s to 60 s); the stream is abandoned when
  // nothing was heard for three intervals.
  absl::Duration heartbeat_interval = absl::Seconds(10);
  // min_write_interval: the least time between two renders of changes (0: every change).
  absl::Duration min_write_interval = absl::Milliseconds(200);
  // Reconnection delays after a failed stream: initial_backoff doubling up to max_backoff,
  // each drawn at random between half and all of it; slow_retry after an error that
  // retrying soon will not fix (INVALID_ARGUMENT, PERMISSION_DENIED, NOT_FOUND,
  // UNAUTHENTICATED, UNIMPLEMENTED, FAILED_PRECONDITION).
  absl::Duration initial_backoff = absl::Milliseconds(100);
  absl::Duration max_backoff = absl::Seconds(10);
  absl::Duration slow_retry = absl::Seconds(30);
};

// AgentStats: counters, for logs and tests.
struct AgentStats {
  int64_t streams_opened = 0;
  int64_t messages = 0;
  int64_t renders = 0;
  int64_t signals = 0;
  int64_t resume_revision = 0;
  bool has_state = false;
};

class Agent {
 public:
  // stub and publisher are borrowed and must outlive the agent.
  Agent(v1::BrokerSyncService::StubInterface& stub, Publisher& publisher, AgentOptions options)
      : stub_(stub), publisher_(publisher), options_(std::move(options)) {}

  // Run follows the stream until Stop: opens it, applies what arrives, publishes, and
  // reopens it after errors. Returns after Stop, once changes already applied are
  // published.
  void Run();

  // Stop makes Run return soon (cancels the open stream, interrupts a backoff wait).
  void Stop();

  AgentStats stats() const;

  // WatchRequestFor is the request Run sends: the broker, since_revision, the heartbeat
  // interval, and every object type but CERTIFICATE (revocations reach mosquitto through
  // the crlfile).
  static v1::WatchRequest WatchRequestFor(const AgentOptions& options, int64_t since_revision);

 private:
  // RunStream opens one stream and follows it until it ends (error, silence, protocol
  // violation, Stop). Returns the status to decide the next delay by, and sets
  // *heard when the stream delivered at least one message.
  absl::Status RunStream(bool* heard);
  // PublishLocked renders the state and publishes it (outside the lock).
  void PublishLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Whether a render is due now, and when the next one will be.
  bool RenderDueLocked(absl::Time now) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  v1::BrokerSyncService::StubInterface& stub_;
  Publisher& publisher_;
  const AgentOptions options_;

  mutable absl::Mutex mu_;
  absl::CondVar cv_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  StreamApplier applier_ ABSL_GUARDED_BY(mu_);
  // dirty_: changes applied and not rendered; urgent_: a snapshot was swapped in.
  bool dirty_ ABSL_GUARDED_BY(mu_) = false;
  bool urgent_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time last_render_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  absl::Time last_heard_ ABSL_GUARDED_BY(mu_);
  // The notes logged by the last render: a note is logged when it first appears.
  std::vector<RenderNote> logged_notes_ ABSL_GUARDED_BY(mu_);
  AgentStats stats_ ABSL_GUARDED_BY(mu_);
  // Set by the reader thread.
  bool stream_done_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status protocol_error_ ABSL_GUARDED_BY(mu_);
};

}  // namespace fleetca::sync_agent
