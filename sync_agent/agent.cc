#include "sync_agent/agent.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <thread>
#include <utility>

#include "absl/random/random.h"
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

std::string Seconds(absl::Duration d) { return absl::StrCat(absl::ToDoubleSeconds(d), "s"); }

}  // namespace

v1::WatchRequest Agent::WatchRequestFor(const AgentOptions& options, int64_t since_revision) {
  return sync_client::WatchRequestFor(
      options.broker_id, since_revision, options.heartbeat_interval,
      {v1::SYNC_OBJECT_TYPE_ISSUER, v1::SYNC_OBJECT_TYPE_CRL, v1::SYNC_OBJECT_TYPE_DEVICE,
       v1::SYNC_OBJECT_TYPE_IDENTITY, v1::SYNC_OBJECT_TYPE_ACL_PROFILE,
       v1::SYNC_OBJECT_TYPE_ACL_ASSIGNMENT});
}

AgentStats Agent::stats() const {
  absl::MutexLock lock(&mu_);
  AgentStats stats = stats_;
  stats.resume_revision = applier_.resume_revision();
  stats.has_state = applier_.has_state();
  return stats;
}

void Agent::Stop() {
  absl::MutexLock lock(&mu_);
  stopping_ = true;
  cv_.SignalAll();
}

void Agent::Run() {
  absl::BitGen random;
  absl::Duration backoff = options_.initial_backoff;
  for (;;) {
    bool heard = false;
    const absl::Status status = RunStream(&heard);
    absl::MutexLock lock(&mu_);
    // What a broken stream left half-received is dropped; what was applied is published
    // now rather than after the reconnect.
    applier_.StreamEnded();
    if (dirty_) PublishLocked();
    if (stopping_) break;
    if (heard) backoff = options_.initial_backoff;
    absl::Duration delay;
    if (sync_client::SlowRetry(status.code())) {
      delay = options_.slow_retry;
      LogError("Watch refused; retrying slowly",
               {{"error", status.ToString()}, {"retry_in", Seconds(delay)}});
    } else {
      delay = backoff * absl::Uniform(random, 0.5, 1.0);
      backoff = std::min(backoff * 2, options_.max_backoff);
      LogWarning("Watch stream ended; reconnecting",
                 {{"error", status.ToString()},
                  {"retry_in", Seconds(delay)},
                  {"since_revision", absl::StrCat(applier_.resume_revision())}});
    }
    const absl::Time until = absl::Now() + delay;
    while (!stopping_ && absl::Now() < until) {
      cv_.WaitWithDeadline(&mu_, until);
    }
    if (stopping_) break;
  }
  absl::MutexLock lock(&mu_);
  LogInfo("stopped", {{"resume_revision", absl::StrCat(applier_.resume_revision())}});
}

absl::Status Agent::RunStream(bool* heard) {
  grpc::ClientContext context;
  v1::WatchRequest request;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return absl::CancelledError("stopping");
    request = WatchRequestFor(options_, applier_.resume_revision());
    stream_done_ = false;
    protocol_error_ = absl::OkStatus();
    last_heard_ = absl::Now();
    ++stats_.streams_opened;
  }
  LogInfo("opening Watch", {{"broker_id", options_.broker_id},
                            {"since_revision", absl::StrCat(request.since_revision())}});
  std::unique_ptr<grpc::ClientReaderInterface<v1::WatchResponse>> reader =
      stub_.Watch(&context, request);

  // The reader thread: applies each message under the lock and wakes the loop below.
  grpc::Status final_status;
  std::thread thread([&] {
    v1::WatchResponse response;
    while (reader->Read(&response)) {
      absl::MutexLock lock(&mu_);
      last_heard_ = absl::Now();
      *heard = true;
      ++stats_.messages;
      absl::StatusOr<StreamApplier::Outcome> outcome = applier_.Apply(response);
      if (!outcome.ok()) {
        protocol_error_ = outcome.status();
        context.TryCancel();
        break;
      }
      if (*outcome == StreamApplier::Outcome::kChanged) dirty_ = true;
      if (*outcome == StreamApplier::Outcome::kSnapshotSwapped) {
        dirty_ = true;
        urgent_ = true;
      }
      cv_.SignalAll();
    }
    while (reader->Read(&response)) {
      // Drained after a cancellation, so that Finish does not wait.
    }
    final_status = reader->Finish();
    absl::MutexLock lock(&mu_);
    stream_done_ = true;
    cv_.SignalAll();
  });

  // This thread: renders when due, abandons a silent stream, and cancels on Stop.
  const absl::Duration silence = 3 * options_.heartbeat_interval;
  bool cancelled = false;
  bool silent = false;
  absl::Time next_reload_retry = absl::InfinitePast();
  {
    absl::MutexLock lock(&mu_);
    while (!stream_done_) {
      const absl::Time now = absl::Now();
      if (!cancelled && (stopping_ || now - last_heard_ > silence)) {
        silent = !stopping_;
        context.TryCancel();
        cancelled = true;
      }
      if (RenderDueLocked(now)) {
        PublishLocked();
        continue;
      }
      if (publisher_.reload_pending() && now >= next_reload_retry) {
        std::vector<std::string> errors;
        if (publisher_.RetryReload(&errors)) {
          ++stats_.signals;
          LogInfo("broker signalled (retry)");
        }
        next_reload_retry = now + kReloadRetry;
      }
      absl::Time deadline = cancelled ? absl::InfiniteFuture() : last_heard_ + silence;
      if (dirty_) deadline = std::min(deadline, last_render_ + options_.min_write_interval);
      if (publisher_.reload_pending()) deadline = std::min(deadline, next_reload_retry);
      cv_.WaitWithDeadline(&mu_, deadline);
    }
  }
  thread.join();

  absl::MutexLock lock(&mu_);
  if (!protocol_error_.ok()) {
    // A stream that breaks the protocol is retried like a network error.
    return absl::UnavailableError(absl::StrCat("stream abandoned: ", protocol_error_.message()));
  }
  if (silent) {
    return absl::UnavailableError(
        absl::StrCat("nothing heard for ", Seconds(silence), " (three heartbeat intervals)"));
  }
  return absl::Status(static_cast<absl::StatusCode>(final_status.error_code()),
                      final_status.error_message());
}

bool Agent::RenderDueLocked(absl::Time now) const {
  return dirty_ && (urgent_ || now >= last_render_ + options_.min_write_interval);
}

void Agent::PublishLocked() {
  dirty_ = false;
  urgent_ = false;
  if (!applier_.has_state()) return;  // never render the empty state before a snapshot
  RenderedFiles files = Render(applier_.state());
  last_render_ = absl::Now();
  ++stats_.renders;
  const int64_t revision = applier_.resume_revision();

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
  mu_.Unlock();
  const PublishResult result = publisher_.Publish(files);
  mu_.Lock();
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
