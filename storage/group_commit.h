#pragma once

// GroupCommitter: batches database work that many callers submit at once. Callers queue
// items; each of the committer's max_in_flight worker threads takes everything queued (up
// to max_batch items) whenever it is free and runs it as one batch. Under load batches grow
// by themselves (the next one fills while one runs); an item submitted to an idle committer
// runs at once, alone.
//
// Submit blocks until the item's batch has run. SubmitAsync returns at once: the worker
// calls the item's on_done once its batch has run (gRPC callback handlers use it, so that
// no thread waits per request).

#include <cstddef>
#include <deque>
#include <functional>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace fleetca::storage {

class GroupCommitter {
 public:
  // Item: what a caller submits; callers derive their own item type from it.
  struct Item {
    // Called on the worker thread after the item's batch has run; the committer does not
    // touch the item after calling it (on_done may delete it). Submit sets its own.
    std::function<void()> on_done;
    bool done = false;  // Submit: set once its batch has run, before Submit returns
  };
  // BatchFn runs one batch and fills in each item's results. It must not throw.
  using BatchFn = std::function<void(const std::vector<Item*>& batch)>;

  GroupCommitter(int max_in_flight, size_t max_batch, BatchFn run);
  // Runs what is queued, then stops the workers.
  ~GroupCommitter();
  GroupCommitter(const GroupCommitter&) = delete;
  GroupCommitter& operator=(const GroupCommitter&) = delete;

  // Submit queues item and returns once a batch holding it has run (SubmitAsync with an
  // on_done that wakes the caller).
  void Submit(Item* item);
  // SubmitAsync queues item and returns; item->on_done (required) is called once a batch
  // holding it has run.
  void SubmitAsync(Item* item);

 private:
  void Work();

  const size_t max_batch_;
  const BatchFn run_;
  absl::Mutex mu_;
  std::deque<Item*> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  int running_ ABSL_GUARDED_BY(mu_) = 0;  // workers running a batch or its on_done calls
  std::vector<std::thread> workers_;
};

}  // namespace fleetca::storage
