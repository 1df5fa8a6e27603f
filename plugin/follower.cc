#include "plugin/follower.h"

#include <grpcpp/grpcpp.h>
#include <pthread.h>

#include <algorithm>
#include <utility>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "common/logging.h"

namespace fleetca::plugin {
namespace {

std::string Seconds(absl::Duration d) { return absl::StrCat(absl::ToDoubleSeconds(d), "s"); }

// The plugin needs no CRL objects: revoked serials arrive as certificates.
const std::vector<v1::SyncObjectType>& ObjectTypes() {
  static const auto* types = new std::vector<v1::SyncObjectType>{
      v1::SYNC_OBJECT_TYPE_ISSUER,      v1::SYNC_OBJECT_TYPE_DEVICE,
      v1::SYNC_OBJECT_TYPE_IDENTITY,    v1::SYNC_OBJECT_TYPE_CERTIFICATE,
      v1::SYNC_OBJECT_TYPE_ACL_PROFILE, v1::SYNC_OBJECT_TYPE_ACL_ASSIGNMENT};
  return *types;
}

}  // namespace

sigset_t BlockAllSignals() {
  sigset_t all;
  sigset_t previous;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &previous);
  return previous;
}

void RestoreSignals(const sigset_t& previous) {
  pthread_sigmask(SIG_SETMASK, &previous, nullptr);
}

Follower::Follower(FollowerOptions options, SnapshotBox& box)
    : options_(std::move(options)),
      box_(box),
      applier_([] { return std::make_unique<Policy>(); }) {}

Follower::~Follower() { Stop(); }

void Follower::Restore(LoadedCache cache) {
  absl::MutexLock lock(&mu_);
  applier_.Restore(std::move(cache.policy), cache.revision);
  PolicyLocked().MarkAllTouched();
  PublishLocked();
  cache_dirty_ = false;  // what was loaded is what is on disk
}

void Follower::Start() {
  const sigset_t previous = BlockAllSignals();
  thread_ = std::thread([this] { Run(); });
  RestoreSignals(previous);
}

void Follower::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    cv_.SignalAll();
  }
  if (thread_.joinable()) thread_.join();
}

FollowerStats Follower::stats() const {
  absl::MutexLock lock(&mu_);
  FollowerStats stats = stats_;
  stats.resume_revision = applier_.resume_revision();
  stats.has_state = applier_.has_state();
  return stats;
}

void Follower::PublishLocked() {
  Policy& policy = PolicyLocked();
  Touched touched = policy.TakeTouched();
  box_.Publish(std::make_shared<const Policy>(policy), applier_.resume_revision(),
               std::move(touched));
  ++stats_.snapshots_published;
  cache_dirty_ = true;
  publish_pending_ = false;
  last_publish_ = absl::Now();
}

bool Follower::CacheDueLocked(absl::Time now) const {
  return !options_.cache_path.empty() && cache_dirty_ &&
         (cache_urgent_ || now >= last_save_ + options_.cache_interval);
}

void Follower::WriteCache() {
  auto [policy, revision] = box_.Latest();
  {
    absl::MutexLock lock(&mu_);
    cache_dirty_ = false;
    cache_urgent_ = false;
    last_save_ = absl::Now();
  }
  if (policy == nullptr || options_.cache_path.empty()) return;
  const absl::Time start = absl::Now();
  if (absl::Status status = SaveCache(options_.cache_path, *policy, revision); !status.ok()) {
    LogError("cannot write the policy cache", {{"path", options_.cache_path},
                                                {"error", status.ToString()}});
    absl::MutexLock lock(&mu_);
    cache_dirty_ = true;  // tried again after cache_interval
    return;
  }
  absl::MutexLock lock(&mu_);
  ++stats_.cache_writes;
  LogDebug("policy cache written", {{"revision", absl::StrCat(revision)},
                                     {"took", Seconds(absl::Now() - start)}});
}

void Follower::Run() {
  absl::BitGen random;
  absl::Duration backoff = options_.initial_backoff;
  std::unique_ptr<v1::BrokerSyncService::Stub> stub;
  for (;;) {
    absl::Status status;
    bool heard = false;
    if (stub == nullptr) {
      auto credentials = sync_client::ChannelCredentialsFor(options_.connection);
      if (credentials.ok()) {
        stub = v1::BrokerSyncService::NewStub(
            sync_client::NewChannel(options_.connection, *std::move(credentials)));
      } else {
        status = absl::FailedPreconditionError(
            absl::StrCat("cannot load the TLS files: ", credentials.status().message()));
      }
    }
    if (stub != nullptr) status = RunStream(*stub, &heard);
    bool save = false;
    {
      absl::MutexLock lock(&mu_);
      applier_.StreamEnded();
      if (publish_pending_) PublishLocked();
      save = cache_dirty_ && !options_.cache_path.empty();
    }
    if (save) WriteCache();
    absl::MutexLock lock(&mu_);
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
      LogWarning("Watch stream ended; reconnecting; enforcing the last policy meanwhile",
                 {{"error", status.ToString()},
                  {"retry_in", Seconds(delay)},
                  {"since_revision", absl::StrCat(applier_.resume_revision())}});
    }
    const absl::Time until = absl::Now() + delay;
    while (!stopping_ && absl::Now() < until) cv_.WaitWithDeadline(&mu_, until);
    if (stopping_) break;
  }
  bool save = false;
  {
    absl::MutexLock lock(&mu_);
    save = cache_dirty_ && !options_.cache_path.empty();
  }
  if (save) WriteCache();
}

absl::Status Follower::RunStream(v1::BrokerSyncService::Stub& stub, bool* heard) {
  grpc::ClientContext context;
  v1::WatchRequest request;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return absl::CancelledError("stopping");
    request = sync_client::WatchRequestFor(options_.connection.broker_id,
                                           applier_.resume_revision(),
                                           options_.heartbeat_interval, ObjectTypes());
    stream_done_ = false;
    protocol_error_ = absl::OkStatus();
    last_heard_ = absl::Now();
    ++stats_.streams_opened;
  }
  LogInfo("opening Watch", {{"broker_id", options_.connection.broker_id},
                            {"since_revision", absl::StrCat(request.since_revision())}});
  std::unique_ptr<grpc::ClientReader<v1::WatchResponse>> reader = stub.Watch(&context, request);

  // The reader: applies each message and publishes what changed.
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
      absl::StatusOr<sync_client::StreamApplier::Outcome> outcome = applier_.Apply(response);
      if (!outcome.ok()) {
        protocol_error_ = outcome.status();
        context.TryCancel();
        break;
      }
      if (*outcome == sync_client::StreamApplier::Outcome::kSnapshotSwapped) {
        PolicyLocked().MarkAllTouched();
        PublishLocked();
        cache_urgent_ = true;
        cv_.SignalAll();
      } else if (*outcome == sync_client::StreamApplier::Outcome::kChanged) {
        publish_pending_ = true;
        if (absl::Now() >= last_publish_ + options_.min_publish_interval) PublishLocked();
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

  // This thread: abandons a silent stream, cancels on Stop, writes the cache when due.
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
      if (publish_pending_ && now >= last_publish_ + options_.min_publish_interval) {
        PublishLocked();
      }
      if (CacheDueLocked(now)) {
        mu_.Unlock();
        WriteCache();
        mu_.Lock();
        continue;
      }
      absl::Time deadline = cancelled ? absl::InfiniteFuture() : last_heard_ + silence;
      if (publish_pending_) {
        deadline = std::min(deadline, last_publish_ + options_.min_publish_interval);
      }
      if (cache_dirty_ && !options_.cache_path.empty()) {
        deadline = std::min(deadline, cache_urgent_ ? now : last_save_ + options_.cache_interval);
      }
      cv_.WaitWithDeadline(&mu_, deadline);
    }
  }
  thread.join();

  absl::MutexLock lock(&mu_);
  if (!protocol_error_.ok()) {
    return absl::UnavailableError(absl::StrCat("stream abandoned: ", protocol_error_.message()));
  }
  if (silent) {
    return absl::UnavailableError(
        absl::StrCat("nothing heard for ", Seconds(silence), " (three heartbeat intervals)"));
  }
  return absl::Status(static_cast<absl::StatusCode>(final_status.error_code()),
                      final_status.error_message());
}

}  // namespace fleetca::plugin
