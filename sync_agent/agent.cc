#include "sync_agent/agent.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "sync_client/connection.h"

namespace fleetca::sync_agent {
namespace {

// At most this many new render notes are logged per render (a policy with many devices
// lacking an attribute would otherwise log one line per device).
constexpr size_t kMaxNotesLogged = 50;
// How often a failed SIGHUP is retried.
constexpr absl::Duration kReloadRetry = absl::Seconds(1);

// The object types fleetca-sync asks for: every type but CERTIFICATE.
const std::vector<v1::SyncObjectType>& ObjectTypes() {
  static const auto* types = new std::vector<v1::SyncObjectType>{
      v1::SYNC_OBJECT_TYPE_ISSUER,   v1::SYNC_OBJECT_TYPE_CRL,
      v1::SYNC_OBJECT_TYPE_DEVICE,   v1::SYNC_OBJECT_TYPE_IDENTITY,
      v1::SYNC_OBJECT_TYPE_ACL_PROFILE, v1::SYNC_OBJECT_TYPE_ACL_ASSIGNMENT};
  return *types;
}

sync_client::FollowOptions FollowOptionsFor(const AgentOptions& o) {
  sync_client::FollowOptions f;
  f.broker_id = o.broker_id;
  f.heartbeat_interval = o.heartbeat_interval;
  f.object_types = ObjectTypes();
  f.initial_backoff = o.initial_backoff;
  f.max_backoff = o.max_backoff;
  f.slow_retry = o.slow_retry;
  return f;
}

const PolicyState& StateOf(const sync_client::StreamApplier& applier) {
  return static_cast<const PolicyState&>(*applier.state());
}

}  // namespace

Agent::Agent(v1::BrokerSyncService::StubInterface& stub, Publisher& publisher,
             AgentOptions options)
    : publisher_(publisher),
      options_(std::move(options)),
      follower_([&stub]() -> absl::StatusOr<v1::BrokerSyncService::StubInterface*> {
                  return &stub;
                },
                FollowOptionsFor(options_), [] { return std::make_unique<PolicyState>(); },
                *this) {}

v1::WatchRequest Agent::WatchRequestFor(const AgentOptions& options, int64_t since_revision) {
  return sync_client::WatchRequestFor(options.broker_id, since_revision,
                                      options.heartbeat_interval, ObjectTypes());
}

AgentStats Agent::stats() const {
  AgentStats stats;
  follower_.WithLock(
      [&](sync_client::StreamApplier& applier) {
        stats = stats_;
        stats.resume_revision = applier.resume_revision();
        stats.has_state = applier.has_state();
      });
  const sync_client::FollowStats follow = follower_.stats();
  stats.streams_opened = follow.streams_opened;
  stats.messages = follow.messages;
  return stats;
}

void Agent::Applied(sync_client::StreamApplier::Outcome outcome, sync_client::StreamApplier&) {
  dirty_ = true;
  if (outcome == sync_client::StreamApplier::Outcome::kSnapshotSwapped) urgent_ = true;
}

bool Agent::RenderDue(absl::Time now) const {
  return dirty_ && (urgent_ || now >= last_render_ + options_.min_write_interval);
}

absl::Time Agent::Work(absl::Time now, sync_client::StreamApplier& applier, absl::Mutex& mu) {
  if (RenderDue(now)) Publish(applier, mu);
  now = absl::Now();
  if (publisher_.reload_pending() && now >= next_reload_retry_) {
    std::vector<std::string> errors;
    if (publisher_.RetryReload(&errors)) {
      ++stats_.signals;
      LogInfo("broker signalled (retry)");
    }
    next_reload_retry_ = now + kReloadRetry;
  }
  absl::Time next = absl::InfiniteFuture();
  if (dirty_) next = std::min(next, urgent_ ? now : last_render_ + options_.min_write_interval);
  if (publisher_.reload_pending()) next = std::min(next, next_reload_retry_);
  return next;
}

void Agent::StreamEnded(sync_client::StreamApplier& applier, absl::Mutex& mu) {
  if (dirty_) Publish(applier, mu);
}

void Agent::Publish(sync_client::StreamApplier& applier, absl::Mutex& mu) {
  dirty_ = false;
  urgent_ = false;
  if (!applier.has_state()) return;  // never render the empty state before a snapshot
  RenderedFiles files = Render(StateOf(applier));
  last_render_ = absl::Now();
  ++stats_.renders;
  const int64_t revision = applier.resume_revision();

  // Notes: each logged when it first appears, not at every render.
  size_t logged = 0;
  size_t more = 0;
  for (const RenderNote& note : files.notes) {
    if (std::find(logged_notes_.begin(), logged_notes_.end(), note) != logged_notes_.end()) {
      continue;
    }
    if (logged++ >= kMaxNotesLogged) {
      ++more;
      continue;
    }
    Log(note.severity == RenderNote::Severity::kError ? LogLevel::kError : LogLevel::kWarning,
        note.message);
  }
  if (more > 0) LogWarning("more render notes not logged", {{"count", absl::StrCat(more)}});
  logged_notes_ = files.notes;

  // Validation, file writes and the signal, outside the lock: the reader thread goes on.
  mu.Unlock();
  const PublishResult result = publisher_.Publish(files);
  mu.Lock();
  if (result.signalled) ++stats_.signals;
  for (const std::string& error : result.errors) LogError(error);
  for (const std::string& warning : result.warnings) LogError(warning);
  if (result.any_written() || result.signalled) {
    LogInfo("files published", {{"revision", absl::StrCat(revision)},
                                {"cafile", result.cafile_written ? "replaced" : "unchanged"},
                                {"crlfile", result.crlfile_written ? "replaced" : "unchanged"},
                                {"acl_file", result.acl_file_written ? "replaced" : "unchanged"},
                                {"broker_signalled", result.signalled ? "yes" : "no"}});
  }
}

}  // namespace fleetca::sync_agent
