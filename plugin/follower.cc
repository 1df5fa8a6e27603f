#include "plugin/follower.h"

#include <grpcpp/grpcpp.h>
#include <pthread.h>

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/logging.h"

namespace fleetca::plugin {
namespace {

std::string Seconds(absl::Duration d) { return absl::StrCat(absl::ToDoubleSeconds(d), "s"); }

sync_client::FollowOptions FollowOptionsFor(const FollowerOptions& o) {
  sync_client::FollowOptions f;
  f.broker_id = o.connection.broker_id;
  f.heartbeat_interval = o.heartbeat_interval;
  // No CRL objects: revoked serials arrive as certificates.
  f.object_types = {v1::SYNC_OBJECT_TYPE_ISSUER,      v1::SYNC_OBJECT_TYPE_DEVICE,
                    v1::SYNC_OBJECT_TYPE_IDENTITY,    v1::SYNC_OBJECT_TYPE_CERTIFICATE,
                    v1::SYNC_OBJECT_TYPE_ACL_PROFILE, v1::SYNC_OBJECT_TYPE_ACL_ASSIGNMENT};
  f.initial_backoff = o.initial_backoff;
  f.max_backoff = o.max_backoff;
  f.slow_retry = o.slow_retry;
  return f;
}

Policy& PolicyOf(sync_client::StreamApplier& applier) {
  return *static_cast<Policy*>(applier.state());
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
      follower_(
          [this]() -> absl::StatusOr<v1::BrokerSyncService::StubInterface*> {
            if (stub_ == nullptr) {
              auto credentials = sync_client::ChannelCredentialsFor(options_.connection);
              if (!credentials.ok()) {
                return absl::FailedPreconditionError(absl::StrCat(
                    "cannot load the TLS files: ", credentials.status().message()));
              }
              stub_ = v1::BrokerSyncService::NewStub(
                  sync_client::NewChannel(options_.connection, *std::move(credentials)));
            }
            return stub_.get();
          },
          FollowOptionsFor(options_), [] { return std::make_unique<Policy>(); }, *this) {}

Follower::~Follower() { Stop(); }

void Follower::Restore(LoadedCache cache) {
  follower_.WithLock([&](sync_client::StreamApplier& applier) {
    applier.Restore(std::move(cache.policy), cache.revision);
    PolicyOf(applier).MarkAllTouched();
    Publish(applier);
    cache_dirty_ = false;  // what was loaded is what is on disk
  });
}

void Follower::Start() {
  const sigset_t previous = BlockAllSignals();
  thread_ = std::thread([this] { follower_.Run(); });
  RestoreSignals(previous);
}

void Follower::Stop() {
  follower_.Stop();
  if (thread_.joinable()) thread_.join();
}

FollowerStats Follower::stats() const {
  FollowerStats stats;
  follower_.WithLock([&](sync_client::StreamApplier& applier) {
    stats.snapshots_published = snapshots_published_;
    stats.cache_writes = cache_writes_;
    stats.resume_revision = applier.resume_revision();
    stats.has_state = applier.has_state();
  });
  const sync_client::FollowStats follow = follower_.stats();
  stats.streams_opened = follow.streams_opened;
  stats.messages = follow.messages;
  return stats;
}

void Follower::Publish(sync_client::StreamApplier& applier) {
  Policy& policy = PolicyOf(applier);
  Touched touched = policy.TakeTouched();
  box_.Publish(std::make_shared<const Policy>(policy), applier.resume_revision(),
               std::move(touched));
  ++snapshots_published_;
  cache_dirty_ = true;
  publish_pending_ = false;
  last_publish_ = absl::Now();
}

void Follower::Applied(sync_client::StreamApplier::Outcome outcome,
                       sync_client::StreamApplier& applier) {
  if (outcome == sync_client::StreamApplier::Outcome::kSnapshotSwapped) {
    PolicyOf(applier).MarkAllTouched();
    Publish(applier);
    cache_urgent_ = true;
    return;
  }
  publish_pending_ = true;
  if (absl::Now() >= last_publish_ + options_.min_publish_interval) Publish(applier);
}

bool Follower::CacheDue(absl::Time now) const {
  return !options_.cache_path.empty() && cache_dirty_ &&
         (cache_urgent_ || now >= last_save_ + options_.cache_interval);
}

absl::Time Follower::Work(absl::Time now, sync_client::StreamApplier& applier, absl::Mutex& mu) {
  if (publish_pending_ && now >= last_publish_ + options_.min_publish_interval) {
    Publish(applier);
  }
  if (CacheDue(now)) WriteCache(mu);
  absl::Time next = absl::InfiniteFuture();
  if (publish_pending_) next = std::min(next, last_publish_ + options_.min_publish_interval);
  if (cache_dirty_ && !options_.cache_path.empty()) {
    next = std::min(next, cache_urgent_ ? absl::Now() : last_save_ + options_.cache_interval);
  }
  return next;
}

void Follower::StreamEnded(sync_client::StreamApplier& applier, absl::Mutex& mu) {
  if (publish_pending_) Publish(applier);
  if (cache_dirty_ && !options_.cache_path.empty()) WriteCache(mu);
}

void Follower::WriteCache(absl::Mutex& mu) {
  cache_dirty_ = false;
  cache_urgent_ = false;
  last_save_ = absl::Now();
  auto [policy, revision] = box_.Latest();
  if (policy == nullptr) return;
  mu.Unlock();
  const absl::Time start = absl::Now();
  const absl::Status status = SaveCache(options_.cache_path, *policy, revision);
  const absl::Duration took = absl::Now() - start;
  policy.reset();
  mu.Lock();
  if (!status.ok()) {
    LogError("cannot write the policy cache", {{"path", options_.cache_path},
                                                {"error", status.ToString()}});
    cache_dirty_ = true;  // tried again after cache_interval
    return;
  }
  ++cache_writes_;
  LogDebug("policy cache written",
           {{"revision", absl::StrCat(revision)}, {"took", Seconds(took)}});
}

}  // namespace fleetca::plugin
