// plugin_threads_test (TSan build only, tests/sanitizers/CMakeLists.txt): the mosquitto
// plugin's threads together, as fleetca_auth.so runs them inside mosquitto, so that
// ThreadSanitizer sees them interact. plugin_test drives each piece on one thread; here
//
//   - the Follower's control thread and its per-stream reader thread follow a real gRPC
//     Watch stream (an in-process BrokerSyncService that keeps changing the policy and ends
//     its streams now and then, so that the follower reconnects and resumes), apply it to a
//     Policy, publish snapshots to the SnapshotBox and write the cache file;
//   - a "broker thread" does what mosquitto's thread does through plugin.cc: OnTick (takes
//     snapshots, rechecks clients, retires old snapshots to the sync thread), CONNECTs with
//     real certificates, ACL checks and disconnects;
//   - another thread reads the follower's stats and the box's latest snapshot (as the cache
//     writer and the tests do);
//
// and then a second follower restores the cache file the first one wrote and goes on.
// CowMapThreadsTest isolates the hand-off of a CowMap shard from a reader to the owner.

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "fleetca/v1/broker_sync.grpc.pb.h"
#include "plugin/cache.h"
#include "plugin/cow_map.h"
#include "plugin/enforcer.h"
#include "plugin/follower.h"
#include "tests/plugin/plugin_test_util.h"

namespace fleetca::plugin {
namespace {

using testing::DeviceChange;
using testing::Fleet;
using testing::kDev1;
using testing::kDev2;
using testing::kWatcher;

// The revisions a fake fleetca has committed: each one change. A stream resumes from its
// since_revision when the log still has it, else gets a snapshot of the current state.
class FakeFleetca final : public v1::BrokerSyncService::Service {
 public:
  explicit FakeFleetca(std::vector<v1::SyncChange> initial) : state_(std::move(initial)) {
    Commit();  // revision 1: the first snapshot's
  }

  grpc::Status Watch(grpc::ServerContext* context, const v1::WatchRequest* request,
                     grpc::ServerWriter<v1::WatchResponse>* writer) override {
    int64_t sent = request->since_revision();
    int stream;
    {
      absl::MutexLock lock(&mu_);
      stream = ++streams_;
      // Every third stream is refused a resume: a snapshot then.
      if (sent == 0 || stream % 3 == 0 || sent > head_) {
        if (!WriteSnapshot(writer)) return grpc::Status::CANCELLED;
        sent = head_;
      }
    }
    // Deltas as they "commit", then the first kEndedStreams streams end (UNAVAILABLE); the
    // others send heartbeats until the client goes away.
    for (int i = 0; !context->IsCancelled() && !stopping_.load(); ++i) {
      if (i < kDeltasPerStream) Commit();
      std::vector<v1::WatchResponse> out;
      {
        absl::MutexLock lock(&mu_);
        for (int64_t r = sent + 1; r <= head_; ++r) out.push_back(Delta(r, log_[r - 1]));
        if (out.empty()) out.push_back(Heartbeat());
        sent = head_;
      }
      for (const v1::WatchResponse& m : out) {
        if (!writer->Write(m)) return grpc::Status::CANCELLED;
      }
      if (i == kDeltasPerStream && stream <= kEndedStreams) {
        return grpc::Status(grpc::StatusCode::UNAVAILABLE, "stream ended by the test");
      }
      absl::SleepFor(absl::Milliseconds(i < kDeltasPerStream ? 2 : 20));
    }
    return grpc::Status::CANCELLED;
  }

  void Stop() { stopping_.store(true); }
  int64_t head() {
    absl::MutexLock lock(&mu_);
    return head_;
  }
  int streams() {
    absl::MutexLock lock(&mu_);
    return streams_;
  }

  static constexpr int kDeltasPerStream = 40;
  static constexpr int kEndedStreams = 5;

 private:
  // Commit: one more revision, a change among the devices (dev2 suspended and back, new
  // devices, an attribute).
  void Commit() {
    absl::MutexLock lock(&mu_);
    const int64_t r = head_ + 1;
    v1::SyncChange change;
    switch (r % 4) {
      case 0:
        change = DeviceChange(kDev2, v1::DEVICE_STATUS_SUSPENDED);
        break;
      case 1:
        change = DeviceChange(kDev2, v1::DEVICE_STATUS_ACTIVE);
        break;
      case 2:
        change = DeviceChange(absl::StrCat("dev-", r), v1::DEVICE_STATUS_ACTIVE, {"g1"});
        break;
      default:
        change = DeviceChange(kDev1, v1::DEVICE_STATUS_ACTIVE, {},
                              {{"site", absl::StrCat("s", r)}});
        break;
    }
    log_.push_back(change);
    state_.push_back(change);
    head_ = r;
  }

  bool WriteSnapshot(grpc::ServerWriter<v1::WatchResponse>* writer)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    v1::WatchResponse begin;
    begin.mutable_snapshot_begin()->set_revision(head_);
    begin.mutable_snapshot_begin()->set_reason(v1::SNAPSHOT_REASON_REQUESTED);
    if (!writer->Write(begin)) return false;
    // The state as one object per key: later changes of a key replace earlier ones.
    std::vector<v1::SyncChange> objects;
    for (const v1::SyncChange& c : state_) {
      bool replaced = false;
      for (v1::SyncChange& o : objects) {
        if (o.object_case() == c.object_case() && o.object_case() == v1::SyncChange::kDevice &&
            o.device().comm_id() == c.device().comm_id()) {
          o = c;
          replaced = true;
        }
      }
      if (!replaced) objects.push_back(c);
    }
    for (size_t i = 0; i < objects.size(); i += 4) {
      v1::WatchResponse part;
      part.mutable_changes()->set_revision(head_);
      for (size_t j = i; j < objects.size() && j < i + 4; ++j) {
        *part.mutable_changes()->add_changes() = objects[j];
      }
      if (!writer->Write(part)) return false;
    }
    v1::WatchResponse end;
    end.mutable_snapshot_end()->set_revision(head_);
    end.mutable_snapshot_end()->set_object_count(static_cast<int64_t>(objects.size()));
    return writer->Write(end);
  }

  static v1::WatchResponse Delta(int64_t revision, const v1::SyncChange& change) {
    v1::WatchResponse r;
    r.mutable_changes()->set_revision(revision);
    *r.mutable_changes()->add_changes() = change;
    return r;
  }

  v1::WatchResponse Heartbeat() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    v1::WatchResponse r;
    r.mutable_heartbeat()->set_revision(head_);
    r.mutable_heartbeat()->set_head_revision(head_);
    return r;
  }

  absl::Mutex mu_;
  std::vector<v1::SyncChange> state_ ABSL_GUARDED_BY(mu_);
  std::vector<v1::SyncChange> log_ ABSL_GUARDED_BY(mu_);  // log_[r - 1]: revision r
  int64_t head_ ABSL_GUARDED_BY(mu_) = 0;
  int streams_ ABSL_GUARDED_BY(mu_) = 0;
  std::atomic<bool> stopping_{false};
};

class PluginThreadsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    service_ = std::make_unique<FakeFleetca>(fleet_.Changes());
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    char dir[] = "/tmp/plugin_threads_XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    dir_ = dir;
    options_.connection.server = absl::StrCat("127.0.0.1:", port);
    options_.connection.insecure_plaintext = true;
    options_.connection.broker_id = "broker-1";
    options_.heartbeat_interval = absl::Seconds(1);
    options_.cache_path = dir_ + "/policy.cache";
    options_.cache_interval = absl::Milliseconds(30);
    options_.min_publish_interval = absl::Milliseconds(5);
    options_.initial_backoff = absl::Milliseconds(5);
    options_.max_backoff = absl::Milliseconds(20);
    options_.slow_retry = absl::Milliseconds(100);
  }

  void TearDown() override {
    service_->Stop();
    server_->Shutdown(absl::ToChronoTime(absl::Now() + absl::Seconds(2)));
    std::remove(options_.cache_path.c_str());
    rmdir(dir_.c_str());
  }

  // RunBroker plays mosquitto's thread against `box` until `done`: ticks, connects and
  // disconnects the fleet's three clients, and checks their topics.
  struct BrokerCounts {
    int ticks = 0;
    int connects_allowed = 0;
    int checks = 0;
    int kicks = 0;
  };
  BrokerCounts RunBroker(SnapshotBox& box, const std::function<bool()>& done) {
    Enforcer enforcer(box, EnforcerOptions());
    BrokerCounts counts;
    int handles[3] = {};
    const testing::TestLeaf* leaves[3] = {&fleet_.dev1, &fleet_.dev2, &fleet_.watcher};
    const char* ids[3] = {kDev1, kDev2, kWatcher};
    bool connected[3] = {};
    for (int round = 0; !done(); ++round) {
      counts.kicks += static_cast<int>(enforcer.OnTick().size());
      ++counts.ticks;
      const int i = round % 3;
      if (connected[i] && round % 7 == 0) {
        enforcer.OnDisconnect(&handles[i]);
        connected[i] = false;
      } else if (!connected[i]) {
        const Decision d = enforcer.OnConnect(&handles[i], ids[i], leaves[i]->cert.get());
        connected[i] = d.allowed();
        if (d.allowed()) ++counts.connects_allowed;
      }
      for (int k = 0; k < 3; ++k) {
        enforcer.Allowed(&handles[k], ids[k], acl::Operation::kPublish,
                         absl::StrCat("devices/", ids[k], "/up"));
        enforcer.Allowed(&handles[k], ids[k], acl::Operation::kReceive, "fleet/broadcast");
        counts.checks += 2;
      }
      // An offline session's queued message, decided by client id.
      enforcer.Allowed(nullptr, kDev2, acl::Operation::kReceive, "fleet/broadcast");
      absl::SleepFor(absl::Milliseconds(1));
    }
    return counts;
  }

  Fleet fleet_;
  std::unique_ptr<FakeFleetca> service_;
  std::unique_ptr<grpc::Server> server_;
  std::string dir_;
  FollowerOptions options_;
};

TEST_F(PluginThreadsTest, FollowerBrokerThreadAndCacheTogether) {
  SnapshotBox box;
  std::atomic<bool> stop{false};
  auto follower = std::make_unique<Follower>(options_, box);
  follower->Start();

  // Stats and the latest snapshot, read from another thread meanwhile.
  std::atomic<int> reads{0};
  std::thread reader([&] {
    while (!stop.load()) {
      const FollowerStats stats = follower->stats();
      auto [policy, revision] = box.Latest();
      if (policy != nullptr && revision > 0 && stats.has_state) ++reads;
      absl::SleepFor(absl::Milliseconds(3));
    }
  });

  // Until the service has ended its streams a few times and the follower resumed after.
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  BrokerCounts counts = RunBroker(box, [&] {
    return absl::Now() > deadline ||
           (service_->streams() > FakeFleetca::kEndedStreams && follower->stats().resume_revision >=
                                                                     service_->head() - 2);
  });
  stop.store(true);
  reader.join();
  const FollowerStats stats = follower->stats();
  follower->Stop();
  follower.reset();

  EXPECT_LT(absl::Now(), deadline) << "the follower did not keep up";
  EXPECT_GT(stats.streams_opened, FakeFleetca::kEndedStreams);
  EXPECT_GT(stats.snapshots_published, 3);
  EXPECT_GT(stats.cache_writes, 0);
  EXPECT_GT(reads.load(), 0);
  EXPECT_GT(counts.connects_allowed, 3);
  EXPECT_GT(counts.checks, 100);

  // A second follower starts from the cache the first one wrote, then follows the stream.
  absl::StatusOr<LoadedCache> cache = LoadCache(options_.cache_path);
  ASSERT_TRUE(cache.ok()) << cache.status();
  EXPECT_GT(cache->revision, 0);
  SnapshotBox box2;
  follower = std::make_unique<Follower>(options_, box2);
  follower->Restore(*std::move(cache));
  follower->Start();
  const int streams_before = service_->streams();
  const absl::Time deadline2 = absl::Now() + absl::Seconds(60);
  counts = RunBroker(box2, [&] {
    return absl::Now() > deadline2 ||
           (service_->streams() > streams_before && follower->stats().messages > 50);
  });
  follower->Stop();
  EXPECT_LT(absl::Now(), deadline2);
  EXPECT_GT(counts.connects_allowed, 0);
}

// A snapshot's last reader drops its copy on its own thread; the owner, seeing the shard
// unshared (CowMap::Unshared: the count read relaxed, then an acquire fence), writes it in
// place. Nothing else orders the reader's reads before those writes: the flag below is
// relaxed on purpose. Correct C++ (the count's release decrement and the fence), and it must
// be clean under TSan too.
TEST(CowMapThreadsTest, OwnerWritesInPlaceAfterAnotherThreadDropsItsCopy) {
  for (int round = 0; round < 20; ++round) {
    CowMap<std::string> owner;
    for (int k = 0; k < 64; ++k) owner.Put(absl::StrCat("key-", k), absl::StrCat("value-", k));
    auto copy = std::make_unique<CowMap<std::string>>(owner);  // shares everything
    std::atomic<bool> dropped{false};
    std::thread reader([&] {
      size_t total = 0;
      for (int k = 0; k < 64; ++k) {
        const std::string* v = copy->Find(absl::StrCat("key-", k));
        total += v != nullptr ? v->size() : 0;
      }
      EXPECT_GT(total, 0u);
      copy.reset();
      dropped.store(true, std::memory_order_relaxed);
    });
    while (!dropped.load(std::memory_order_relaxed)) std::this_thread::yield();
    // Unshared now: written in place.
    for (int k = 0; k < 64; ++k) owner.Put(absl::StrCat("key-", k), "changed");
    EXPECT_EQ(*owner.Find("key-3"), "changed");
    reader.join();
  }
}

}  // namespace
}  // namespace fleetca::plugin
