// GroupCommitter without a database: every item runs exactly once, batches stay within
// max_batch, no more than max_in_flight run at once, a lone caller runs at once, and
// asynchronous items are answered on the worker after their batch ran.
#include "storage/group_commit.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"

namespace fleetca::storage {
namespace {

struct Counted : GroupCommitter::Item {
  int runs = 0;  // written by the batch that ran it
};

TEST(GroupCommitterTest, EveryItemRunsOnceWithinTheLimits) {
  constexpr int kThreads = 16;
  constexpr int kPerThread = 200;
  constexpr size_t kMaxBatch = 5;
  constexpr int kMaxInFlight = 2;
  std::atomic<int> in_flight{0}, most_in_flight{0}, batches{0};
  std::atomic<size_t> largest{0};
  GroupCommitter committer(kMaxInFlight, kMaxBatch, [&](const std::vector<GroupCommitter::Item*>& b) {
    const int now = ++in_flight;
    int seen = most_in_flight.load();
    while (now > seen && !most_in_flight.compare_exchange_weak(seen, now)) {
    }
    size_t big = largest.load();
    while (b.size() > big && !largest.compare_exchange_weak(big, b.size())) {
    }
    ++batches;
    for (GroupCommitter::Item* item : b) ++static_cast<Counted*>(item)->runs;
    absl::SleepFor(absl::Microseconds(200));  // let the queue fill
    --in_flight;
  });
  std::vector<std::vector<Counted>> items(kThreads, std::vector<Counted>(kPerThread));
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (Counted& item : items[t]) {
        committer.Submit(&item);
        EXPECT_TRUE(item.done);
        EXPECT_EQ(item.runs, 1) << "Submit returned before its item ran, or it ran twice";
      }
    });
  }
  for (auto& t : threads) t.join();
  for (const auto& per_thread : items) {
    for (const Counted& item : per_thread) EXPECT_EQ(item.runs, 1);
  }
  EXPECT_LE(largest.load(), kMaxBatch);
  EXPECT_LE(most_in_flight.load(), kMaxInFlight);
  EXPECT_LT(batches.load(), kThreads * kPerThread) << "concurrent items never shared a batch";
}

TEST(GroupCommitterTest, ALoneCallerRunsItsItemAtOnce) {
  std::vector<size_t> sizes;
  GroupCommitter committer(1, 256, [&](const std::vector<GroupCommitter::Item*>& b) {
    sizes.push_back(b.size());
  });
  Counted a, b;
  committer.Submit(&a);
  committer.Submit(&b);
  EXPECT_TRUE(a.done && b.done);
  EXPECT_EQ(sizes, (std::vector<size_t>{1, 1}));
}

TEST(GroupCommitterTest, AsyncItemsAreAnsweredAfterTheirBatchRan) {
  constexpr int kItems = 500;
  std::atomic<int> answered{0};
  absl::Mutex mu;
  std::vector<size_t> sizes;
  {
    GroupCommitter committer(1, 64, [&](const std::vector<GroupCommitter::Item*>& b) {
      for (GroupCommitter::Item* item : b) ++static_cast<Counted*>(item)->runs;
      absl::MutexLock lock(&mu);
      sizes.push_back(b.size());
    });
    for (int i = 0; i < kItems; ++i) {
      auto* item = new Counted;
      item->on_done = [item, &answered] {
        EXPECT_EQ(item->runs, 1) << "answered before its batch ran, or ran twice";
        delete item;  // the committer must not touch it after on_done
        ++answered;
      };
      committer.SubmitAsync(item);
    }
    // A synchronous caller shares the queue with them.
    Counted sync;
    committer.Submit(&sync);
    EXPECT_TRUE(sync.done);
    EXPECT_EQ(sync.runs, 1);
  }  // the destructor runs what is still queued
  EXPECT_EQ(answered.load(), kItems);
  absl::MutexLock lock(&mu);
  size_t total = 0;
  for (size_t n : sizes) {
    EXPECT_LE(n, 64u);
    total += n;
  }
  EXPECT_EQ(total, static_cast<size_t>(kItems + 1));
}

}  // namespace
}  // namespace fleetca::storage
