#pragma once

// Agent: follows BrokerSyncService.Watch for one broker (sync_client::WatchFollower) and
// keeps mosquitto's files in step with it: the state is rendered and published
// (Publisher) at most once per min_write_interval, at once after a snapshot is swapped in,
// and never later than min_write_interval after a change was applied. The stream is
// reopened after any error, with since_revision = the last resume point, after a backoff.
//
// Threads: Run's thread drives the stream and publishes; one reader thread per stream
// receives messages. Stop may be called from any thread.

#include <cstdint>
#include <memory>
#include <string>

#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "fleetca/v1/broker_sync.grpc.pb.h"
#include "sync_agent/publisher.h"
#include "sync_agent/render.h"
#include "sync_agent/state.h"
#include "sync_client/watch_follower.h"

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

class Agent final : private sync_client::WatchConsumer {
 public:
  // stub and publisher are borrowed and must outlive the agent.
  Agent(v1::BrokerSyncService::StubInterface& stub, Publisher& publisher, AgentOptions options);

  // Run follows the stream until Stop: opens it, applies what arrives, publishes, and
  // reopens it after errors. Returns after Stop, once changes already applied are
  // published.
  void Run() { follower_.Run(); }

  // Stop makes Run return soon (cancels the open stream, interrupts a backoff wait).
  void Stop() { follower_.Stop(); }

  AgentStats stats() const;

  // WatchRequestFor is the request Run sends: the broker, since_revision, the heartbeat
  // interval, and every object type but CERTIFICATE (revocations reach mosquitto through
  // the crlfile).
  static v1::WatchRequest WatchRequestFor(const AgentOptions& options, int64_t since_revision);

 private:
  // WatchConsumer, called with the follower's mutex held (which guards the members below).
  void Applied(sync_client::StreamApplier::Outcome outcome,
               sync_client::StreamApplier& applier) override;
  absl::Time Work(absl::Time now, sync_client::StreamApplier& applier, absl::Mutex& mu) override;
  void StreamEnded(sync_client::StreamApplier& applier, absl::Mutex& mu) override;

  // Publish renders the state and publishes it (the mutex released meanwhile).
  void Publish(sync_client::StreamApplier& applier, absl::Mutex& mu);
  bool RenderDue(absl::Time now) const;

  Publisher& publisher_;
  const AgentOptions options_;
  mutable sync_client::WatchFollower follower_;

  // Guarded by the follower's mutex.
  // dirty_: changes applied and not rendered; urgent_: a snapshot was swapped in.
  bool dirty_ = false;
  bool urgent_ = false;
  absl::Time last_render_ = absl::InfinitePast();
  absl::Time next_reload_retry_ = absl::InfinitePast();
  // The notes logged by the last render: a note is logged when it first appears.
  std::vector<RenderNote> logged_notes_;
  AgentStats stats_;
};

}  // namespace fleetca::sync_agent
