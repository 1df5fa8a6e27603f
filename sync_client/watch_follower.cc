#include "sync_client/watch_follower.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <thread>
#include <utility>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "sync_client/connection.h"

namespace fleetca::sync_client {
namespace {

std::string Seconds(absl::Duration d) { return absl::StrCat(absl::ToDoubleSeconds(d), "s"); }

}  // namespace

void WatchFollower::WithLock(const std::function<void(StreamApplier&)>& f) {
  absl::MutexLock lock(&mu_);
  f(applier_);
}

FollowStats WatchFollower::stats() const {
  absl::MutexLock lock(&mu_);
  return stats_;
}

void WatchFollower::Stop() {
  absl::MutexLock lock(&mu_);
  stopping_ = true;
  cv_.SignalAll();
}

void WatchFollower::Run() {
  absl::BitGen random;
  absl::Duration backoff = options_.initial_backoff;
  v1::BrokerSyncService::StubInterface* stub = nullptr;
  for (;;) {
    absl::Status status;
    bool heard = false;
    if (stub == nullptr) {
      absl::StatusOr<v1::BrokerSyncService::StubInterface*> connected = connect_();
      if (connected.ok()) {
        stub = *connected;
      } else {
        status = connected.status();
      }
    }
    if (stub != nullptr) status = RunStream(*stub, &heard);
    absl::MutexLock lock(&mu_);
    // What a broken stream left half-received is dropped; what was applied is flushed now
    // rather than after the reconnect.
    applier_.StreamEnded();
    consumer_.StreamEnded(applier_, mu_);
    if (stopping_) break;
    if (heard) backoff = options_.initial_backoff;
    absl::Duration delay;
    if (SlowRetry(status.code())) {
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
    while (!stopping_ && absl::Now() < until) cv_.WaitWithDeadline(&mu_, until);
    if (stopping_) break;
  }
  absl::MutexLock lock(&mu_);
  LogInfo("stopped", {{"resume_revision", absl::StrCat(applier_.resume_revision())}});
}

absl::Status WatchFollower::RunStream(v1::BrokerSyncService::StubInterface& stub, bool* heard) {
  grpc::ClientContext context;
  v1::WatchRequest request;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return absl::CancelledError("stopping");
    request = WatchRequestFor(options_.broker_id, applier_.resume_revision(),
                              options_.heartbeat_interval, options_.object_types);
    stream_done_ = false;
    protocol_error_ = absl::OkStatus();
    last_heard_ = absl::Now();
    ++stats_.streams_opened;
  }
  LogInfo("opening Watch", {{"broker_id", options_.broker_id},
                            {"since_revision", absl::StrCat(request.since_revision())}});
  std::unique_ptr<grpc::ClientReaderInterface<v1::WatchResponse>> reader =
      stub.Watch(&context, request);

  // The reader thread: applies each message under the lock and wakes the loop below.
  grpc::Status final_status;
  std::thread thread([&] {
    v1::WatchResponse response;
    while (reader->Read(&response)) {
      absl::MutexLock lock(&mu_);
      last_heard_ = absl::Now();
      if (!*heard) {
        LogInfo("Watch stream established",
                {{"since_revision", absl::StrCat(request.since_revision())}});
      }
      *heard = true;
      ++stats_.messages;
      absl::StatusOr<StreamApplier::Outcome> outcome = applier_.Apply(response);
      if (!outcome.ok()) {
        protocol_error_ = outcome.status();
        context.TryCancel();
        break;
      }
      if (*outcome != StreamApplier::Outcome::kNothing) {
        consumer_.Applied(*outcome, applier_);
        cv_.SignalAll();
      }
    }
    while (reader->Read(&response)) {
      // Drained after a cancellation, so that Finish does not wait.
    }
    final_status = reader->Finish();
    absl::MutexLock lock(&mu_);
    stream_done_ = true;
    cv_.SignalAll();
  });

  // This thread: abandons a silent stream, cancels on Stop, does the consumer's work.
  const absl::Duration silence = 3 * options_.heartbeat_interval;
  bool cancelled = false;
  bool silent = false;
  {
    absl::MutexLock lock(&mu_);
    while (!stream_done_) {
      const absl::Time now = absl::Now();
      if (!cancelled && (stopping_ || now - last_heard_ > silence)) {
        silent = !stopping_;
        context.TryCancel();
        cancelled = true;
      }
      const absl::Time next = consumer_.Work(now, applier_, mu_);
      if (stream_done_) break;
      // Work may have released the mutex: a Stop meanwhile found nobody waiting.
      if (!cancelled && stopping_) continue;
      absl::Time deadline = cancelled ? absl::InfiniteFuture() : last_heard_ + silence;
      deadline = std::min(deadline, next);
      if (deadline <= absl::Now()) continue;
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

}  // namespace fleetca::sync_client
