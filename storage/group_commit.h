#pragma once

// GroupCommitter: flat combining for database work that many threads do at once. Each
// caller submits an item and blocks; whenever fewer than max_in_flight batches are running,
// a waiting caller takes everything queued (up to max_batch items, its own or not) and runs
// it as one batch, then marks those items done. Under load batches grow by themselves (the
// next one fills while one runs); with one caller a batch is that caller's item alone, run
// at once. No thread of its own: the work runs on the callers' threads.

#include <cstddef>
#include <deque>
#include <functional>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace fleetca::storage {

class GroupCommitter {
 public:
  // Item: what a caller submits; callers derive their own item type from it.
  struct Item {
    bool done = false;  // set (under the committer's lock) once its batch has run
  };
  // BatchFn runs one batch and fills in each item's results. It must not throw.
  using BatchFn = std::function<void(const std::vector<Item*>& batch)>;

  GroupCommitter(int max_in_flight, size_t max_batch, BatchFn run);
  GroupCommitter(const GroupCommitter&) = delete;
  GroupCommitter& operator=(const GroupCommitter&) = delete;

  // Submit queues item and returns once a batch holding it has run.
  void Submit(Item* item);

 private:
  bool CanRun(Item* item) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const int max_in_flight_;
  const size_t max_batch_;
  const BatchFn run_;
  absl::Mutex mu_;
  std::deque<Item*> queue_ ABSL_GUARDED_BY(mu_);
  int in_flight_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace fleetca::storage
