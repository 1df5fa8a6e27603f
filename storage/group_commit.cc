#include "storage/group_commit.h"

#include <utility>

namespace fleetca::storage {

GroupCommitter::GroupCommitter(int max_in_flight, size_t max_batch, BatchFn run)
    : max_in_flight_(max_in_flight < 1 ? 1 : max_in_flight),
      max_batch_(max_batch < 1 ? 1 : max_batch),
      run_(std::move(run)) {}

bool GroupCommitter::CanRun(Item* item) {
  return item->done || (in_flight_ < max_in_flight_ && !queue_.empty());
}

void GroupCommitter::Submit(Item* item) {
  absl::MutexLock lock(&mu_);
  queue_.push_back(item);
  struct Waiter {
    GroupCommitter* self;
    Item* item;
  } waiter{this, item};
  const absl::Condition turn(
      +[](Waiter* w) ABSL_NO_THREAD_SAFETY_ANALYSIS { return w->self->CanRun(w->item); },
      &waiter);
  while (true) {
    mu_.Await(turn);
    if (item->done) return;
    std::vector<Item*> batch;
    while (!queue_.empty() && batch.size() < max_batch_) {
      batch.push_back(queue_.front());
      queue_.pop_front();
    }
    ++in_flight_;
    mu_.Unlock();
    run_(batch);
    mu_.Lock();
    --in_flight_;
    for (Item* done : batch) done->done = true;
  }
}

}  // namespace fleetca::storage
