// tsan_selftest: shows that a TSan run of this build is trustworthy (built only with the tsan
// preset; run by ctest, tests/sanitizers/CMakeLists.txt).
//
//   tsan_selftest guarded [SECTION]
//                             plain data shared between threads, guarded by every kind of
//                             absl synchronisation the shim annotates (tsan_absl_shim.cc), and
//                             by gpr_mu / gpr_cv from Debian's libgpr (its calls into Abseil
//                             reach the shim through the dynamic linker): must give no report
//   tsan_selftest unguarded   the same counter without the lock: TSan must report the race
//
// and each SECTION of `guarded` run with FLEETCA_TSAN_SHIM_OFF=1 (the shim forwards without
// annotating) must be reported too, which shows that it is the shim, not luck or some other
// synchronisation TSan happens to see, that makes each of them clean.

#include <grpc/support/sync.h>
#include <grpc/support/time.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/blocking_counter.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace {

constexpr int kThreads = 4;
constexpr int kIterations = 2000;

// Plain (non-atomic) data: only the locks order the accesses.
struct Shared {
  absl::Mutex mu;
  long counter = 0;
};

template <typename F>
void RunThreads(int n, F&& f) {
  std::vector<std::thread> threads;
  for (int i = 0; i < n; ++i) threads.emplace_back([&f, i] { f(i); });
  for (auto& t : threads) t.join();
}

bool Check(bool ok, const char* what) {
  std::printf("tsan_selftest: %-55s %s\n", what, ok ? "ok" : "FAILED");
  return ok;
}

// Lock/Unlock (MutexLock), ReaderLock (ReaderMutexLock), TryLock, ReaderTryLock.
bool MutexModes() {
  Shared s;
  RunThreads(kThreads, [&s](int i) {
    for (int k = 0; k < kIterations; ++k) {
      if (k % 4 == 0) {
        absl::ReaderMutexLock l(&s.mu);
        volatile long seen = s.counter;  // a read under a read lock
        (void)seen;
      } else if (k % 4 == 1 && i % 2 == 0) {
        while (!s.mu.TryLock()) {
        }
        ++s.counter;
        s.mu.Unlock();
      } else if (k % 4 == 1) {
        while (!s.mu.ReaderTryLock()) {
        }
        volatile long seen = s.counter;
        s.mu.ReaderUnlock();
        (void)seen;
        absl::MutexLock l(&s.mu);
        ++s.counter;
      } else {
        absl::MutexLock l(&s.mu);
        ++s.counter;
      }
    }
  });
  absl::MutexLock l(&s.mu);
  // Three iterations in four increment.
  return Check(s.counter == kThreads * kIterations / 4 * 3,
               "Mutex Lock/ReaderLock/TryLock/ReaderTryLock");
}

// A hand-off through LockWhen, Await and CondVar: the data is written by one thread and read
// by another, ordered only by the mutex the waiter retakes.
bool ConditionalHandOffs() {
  absl::Mutex mu;
  absl::CondVar cv;
  int stage = 0;
  std::vector<int> payload;  // written before each stage change, read after it
  std::thread producer([&] {
    {
      absl::MutexLock l(&mu);
      payload.assign(100, 1);
      stage = 1;
    }
    {
      // LockWhen: wait for the consumer's stage 2.
      absl::MutexLock l(&mu, absl::Condition(
                                 +[](int* st) { return *st == 2; }, &stage));
      payload.push_back(2);
      stage = 3;
      cv.Signal();
    }
    absl::MutexLock l(&mu);
    while (stage != 4) cv.WaitWithTimeout(&mu, absl::Milliseconds(50));
    payload.push_back(4);
    stage = 5;
    cv.SignalAll();
  });
  bool ok = true;
  {
    absl::MutexLock l(&mu);
    mu.Await(absl::Condition(+[](int* st) { return *st == 1; }, &stage));
    ok = ok && payload.size() == 100;
    payload.push_back(3);
    stage = 2;
    while (stage != 3) cv.Wait(&mu);
    ok = ok && payload.size() == 102;
    stage = 4;
    cv.Signal();
    while (stage != 5) {
      mu.AwaitWithTimeout(absl::Condition(+[](int* st) { return *st == 5; }, &stage),
                          absl::Milliseconds(50));
    }
    ok = ok && payload.size() == 103;
  }
  producer.join();
  return Check(ok, "LockWhen, Await, AwaitWithTimeout, CondVar Wait/Signal");
}

// ReaderLockWhen and the timed LockWhen forms.
bool TimedLockWhen() {
  absl::Mutex mu;
  bool ready = false;
  std::string message;
  std::thread writer([&] {
    absl::SleepFor(absl::Milliseconds(20));
    absl::MutexLock l(&mu);
    message = "hello";
    ready = true;
  });
  bool ok = mu.ReaderLockWhenWithTimeout(absl::Condition(&ready), absl::Seconds(30));
  ok = ok && message == "hello";
  mu.ReaderUnlock();
  writer.join();
  std::thread writer2([&] {
    absl::MutexLock l(&mu);
    message += "!";
  });
  ok = ok && mu.LockWhenWithDeadline(absl::Condition(&ready), absl::Now() + absl::Seconds(30));
  message += "?";
  mu.Unlock();
  writer2.join();
  mu.ReaderLockWhen(absl::Condition(&ready));
  ok = ok && message.size() == 7;
  mu.ReaderUnlock();
  return Check(ok, "ReaderLockWhen, LockWhenWithDeadline, ReaderLockWhenWithTimeout");
}

// Notification: WaitForNotification, and polling HasBeenNotified (an inline acquire-load of
// a flag Notify sets in uninstrumented code).
bool Notifications() {
  std::vector<int> data;
  absl::Notification done;
  std::thread t([&] {
    data.assign(50, 7);
    done.Notify();
  });
  done.WaitForNotification();
  bool ok = data.size() == 50;
  t.join();

  std::vector<int> data2;
  absl::Notification done2;
  std::thread t2([&] {
    data2.assign(60, 8);
    done2.Notify();
  });
  while (!done2.HasBeenNotified()) std::this_thread::yield();
  ok = ok && data2.size() == 60;
  t2.join();

  std::vector<int> data3;
  absl::Notification done3;
  std::thread t3([&] {
    data3.assign(70, 9);
    done3.Notify();
  });
  ok = ok && done3.WaitForNotificationWithTimeout(absl::Seconds(30)) && data3.size() == 70;
  t3.join();
  return Check(ok, "Notification (Wait, WaitWithTimeout, HasBeenNotified)");
}

// BlockingCounter: every worker's write is visible after Wait.
bool BlockingCounters() {
  long slots[kThreads] = {};
  absl::BlockingCounter counter(kThreads);
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      slots[i] = i + 1;
      counter.DecrementCount();
    });
  }
  counter.Wait();
  long sum = 0;
  for (long v : slots) sum += v;  // read before the joins: only the counter orders it
  for (auto& t : threads) t.join();
  return Check(sum == kThreads * (kThreads + 1) / 2, "BlockingCounter");
}

// gpr_mu and gpr_cv: Debian's libgpr calls absl::Mutex and absl::CondVar through its PLT, so
// this passes only if the executable's shim interposes for shared libraries too.
bool GprSync() {
  gpr_mu mu;
  gpr_cv cv;
  gpr_mu_init(&mu);
  gpr_cv_init(&cv);
  long counter = 0;
  int turn = 0;
  RunThreads(kThreads, [&](int) {
    for (int k = 0; k < kIterations; ++k) {
      gpr_mu_lock(&mu);
      ++counter;
      gpr_mu_unlock(&mu);
    }
  });
  std::vector<int> payload;
  std::thread t([&] {
    gpr_mu_lock(&mu);
    payload.assign(10, 3);
    turn = 1;
    gpr_cv_signal(&cv);
    gpr_mu_unlock(&mu);
  });
  gpr_mu_lock(&mu);
  while (turn != 1) gpr_cv_wait(&cv, &mu, gpr_inf_future(GPR_CLOCK_MONOTONIC));
  bool ok = payload.size() == 10;
  gpr_mu_unlock(&mu);
  t.join();
  gpr_mu_lock(&mu);
  ok = ok && counter == kThreads * kIterations;
  gpr_mu_unlock(&mu);
  gpr_cv_destroy(&cv);
  gpr_mu_destroy(&mu);
  return Check(ok, "gpr_mu / gpr_cv from libgpr.so");
}

// Mutexes created and destroyed on one thread after use on others (the destroy annotation).
bool HeapMutexes() {
  bool ok = true;
  for (int round = 0; round < 50; ++round) {
    auto* s = new Shared;
    RunThreads(2, [s](int) {
      absl::MutexLock l(&s->mu);
      ++s->counter;
    });
    {
      absl::MutexLock l(&s->mu);
      ok = ok && s->counter == 2;
    }
    delete s;
  }
  return Check(ok, "heap Mutex used on threads, deleted on another");
}

// The race the shim must not hide: the same increments without the lock.
__attribute__((noinline)) void UnguardedIncrements(Shared* s) {
  for (int k = 0; k < kIterations; ++k) ++s->counter;
}

struct Section {
  const char* name;
  bool (*run)();
};
constexpr Section kSections[] = {
    {"mutex", MutexModes},          {"handoff", ConditionalHandOffs},
    {"timed", TimedLockWhen},       {"notification", Notifications},
    {"counter", BlockingCounters},  {"gpr", GprSync},
    {"heap", HeapMutexes},
};

}  // namespace

int main(int argc, char** argv) {
  const char* mode = argc > 1 ? argv[1] : "";
  const char* only = argc > 2 ? argv[2] : nullptr;
  if (std::strcmp(mode, "guarded") == 0) {
    bool ok = true;
    bool ran = false;
    for (const Section& section : kSections) {
      if (only != nullptr && std::strcmp(only, section.name) != 0) continue;
      ran = true;
      ok = section.run() && ok;
    }
    if (!ran) {
      std::fprintf(stderr, "tsan_selftest: no section %s\n", only);
      return 2;
    }
    std::printf("tsan_selftest: guarded: %s\n", ok ? "all checks passed" : "FAILED");
    return ok ? 0 : 1;
  }
  if (std::strcmp(mode, "unguarded") == 0) {
    Shared s;
    RunThreads(kThreads, [&s](int) { UnguardedIncrements(&s); });
    std::printf("tsan_selftest: unguarded: ran (TSan must have reported a race above)\n");
    return 0;
  }
  std::fprintf(stderr, "usage: tsan_selftest guarded [mutex|handoff|timed|notification|counter|gpr|heap]\n"
                       "       tsan_selftest unguarded\n");
  return 2;
}
