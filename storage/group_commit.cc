#include "storage/group_commit.h"

#include <pthread.h>

#include <utility>

#include "absl/synchronization/notification.h"

namespace fleetca::storage {

GroupCommitter::GroupCommitter(int max_in_flight, size_t max_batch, BatchFn run)
    : max_batch_(max_batch < 1 ? 1 : max_batch), run_(std::move(run)) {
  const int workers = max_in_flight < 1 ? 1 : max_in_flight;
  for (int i = 0; i < workers; ++i) {
    workers_.emplace_back([this] {
      pthread_setname_np(pthread_self(), "group-commit");  // for top, perf and gdb
      Work();
    });
  }
}

GroupCommitter::~GroupCommitter() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  for (std::thread& t : workers_) t.join();
}

void GroupCommitter::Submit(Item* item) {
  absl::Notification finished;
  item->done = false;
  item->on_done = [item, &finished] {
    item->done = true;
    finished.Notify();
  };
  SubmitAsync(item);
  finished.WaitForNotification();
}

void GroupCommitter::SubmitAsync(Item* item) {
  absl::MutexLock lock(&mu_);
  queue_.push_back(item);
}

void GroupCommitter::Work() {
  // Work to do, or time to stop: when stopping, a worker leaves once nothing is queued and
  // no other worker runs a batch (whose on_done may queue more: a request waiting for the
  // same request id).
  struct Ready {
    GroupCommitter* self;
    static bool Check(Ready* r) ABSL_NO_THREAD_SAFETY_ANALYSIS {
      return !r->self->queue_.empty() || (r->self->stopping_ && r->self->running_ == 0);
    }
  } ready{this};
  std::vector<Item*> batch;
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(&Ready::Check, &ready));
      if (queue_.empty()) return;  // stopping, and nothing left to run
      ++running_;
      batch.clear();
      while (!queue_.empty() && batch.size() < max_batch_) {
        batch.push_back(queue_.front());
        queue_.pop_front();
      }
    }
    run_(batch);
    for (Item* item : batch) {
      std::function<void()> on_done = std::move(item->on_done);
      on_done();  // may delete item
    }
    absl::MutexLock lock(&mu_);
    --running_;
  }
}

}  // namespace fleetca::storage
