// tsan_absl_shim.cc: tells ThreadSanitizer about absl::Mutex, absl::CondVar, absl::Notification
// and absl::BlockingCounter in a TSan build (CMakePresets.json: tsan) that uses Debian's
// uninstrumented Abseil and gRPC.
//
// Why: Debian's libabsl_synchronization.so is not built with -fsanitize=thread, so its
// Mutex synchronises through atomics and futexes TSan cannot see, and TSan reports races on
// every piece of data guarded by an absl::Mutex (fleetca's, and gRPC's: gpr_mu and
// grpc_core::Mutex wrap absl::Mutex in Debian's gRPC 1.51).
//
// How: this file is linked (an object library, tests/sanitizers/CMakeLists.txt) into every
// executable of a TSan build only. It defines the out-of-line members of those classes, so
// that calls from our code, from libgrpc*.so / libgpr.so and from libabsl_synchronization.so
// itself (its internal calls go through the PLT) resolve here, the executable's definition
// interposing the library's. Each definition forwards to the library's own implementation,
// found with dlsym(RTLD_NEXT, mangled name), between the __tsan_mutex_* annotations that
// Abseil's mutex.cc makes when it is itself built with TSan (pre/post lock and unlock, try
// and read flags, the unlock/relock around a CondVar or Await wait). The executable exports
// these symbols (-Wl,--export-dynamic-symbol in CMakeLists.txt) so the dynamic linker binds
// the shared libraries' calls to them.
//
// Limits: only these classes become visible here (tsan_grpc_shim.cc adds gRPC's completion
// queue, call references and server shutdown count). gRPC's other internal synchronisation
// (lock-free queues, atomic reference counts, closures handed between threads by the
// combiner and the ExecCtx, gpr_atm) stays invisible: tsan.supp makes TSan ignore the
// accesses of the interceptors (memcpy, sendmsg, malloc/free...) gRPC and protobuf call
// directly, and TSan's interceptors still see pthread, epoll, eventfd and pipe hand-offs.
// absl::base_internal::SpinLock (inside absl::call_once, Abseil's and gRPC's own) is not
// annotated.
//
// FLEETCA_TSAN_SHIM_OFF=1 in the environment turns the annotations off (the calls are
// still forwarded): tsan_selftest uses it to show that TSan then reports the data the shim
// makes it see as guarded.

#include <sanitizer/tsan_interface.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <string>

#include "absl/base/config.h"
#include "absl/synchronization/blocking_counter.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "tsan_shim_util.h"  // same directory

using fleetca::tsan_shim::Annotate;
using fleetca::tsan_shim::ResolveNext;

#if !defined(ABSL_HAVE_THREAD_SANITIZER)
#error "tsan_absl_shim.cc is for -fsanitize=thread builds only"
#endif
// The mangled names below use the substitution NS0_ for absl::<inline namespace>.
#if !ABSL_OPTION_USE_INLINE_NAMESPACE
#error "tsan_absl_shim.cc expects an Abseil built with an inline namespace (Debian: debian3)"
#endif

// The layout facts the shim relies on (checked against the headers at compile time):
// Mutex is one word (mu_), whose bit kMuWriter (0x08 in Abseil's mutex.cc, unchanged since
// 2017) says it is held exclusively; a Notification is its Mutex then its atomic flag.
static_assert(sizeof(absl::Mutex) == sizeof(intptr_t), "absl::Mutex is no longer one word");
static_assert(sizeof(absl::Notification) == sizeof(absl::Mutex) + sizeof(intptr_t),
              "absl::Notification layout changed");

extern "C" char __executable_start[];
extern "C" char etext[];

namespace {

constexpr intptr_t kMuWriter = 0x0008;

#define FLEETCA_TSAN_STR2(x) #x
#define FLEETCA_TSAN_STR(x) FLEETCA_TSAN_STR2(x)

// "_ZN4absl7debian3..." on Debian 12; "K" after "N" for const members.
std::string Mangled(const char* rest, bool is_const = false) {
  std::string name = is_const ? "_ZNK4absl" : "_ZN4absl";
  const char* ns = FLEETCA_TSAN_STR(ABSL_OPTION_INLINE_NAMESPACE_NAME);
  name += std::to_string(std::strlen(ns));
  name += ns;
  name += rest;
  return name;
}

void* Resolve(std::atomic<void*>& slot, const char* rest, bool is_const = false) {
  if (void* fn = slot.load(std::memory_order_acquire); fn != nullptr) return fn;
  return ResolveNext(slot, Mangled(rest, is_const).c_str(), "tsan_absl_shim");
}

// REAL(type, mangled tail) and REAL_CONST (const members): the library's implementation,
// resolved once per call site.
#define FLEETCA_TSAN_REAL(type, rest, is_const)                      \
  ([]() {                                                            \
    static std::atomic<void*> slot{nullptr};                         \
    return reinterpret_cast<type>(Resolve(slot, rest, is_const));    \
  }())
#define REAL(type, rest) FLEETCA_TSAN_REAL(type, rest, false)
#define REAL_CONST(type, rest) FLEETCA_TSAN_REAL(type, rest, true)

// The mode a held Mutex is held in, as __tsan flags (read lock or not).
unsigned HeldFlags(const absl::Mutex* mu) {
  const auto* word = reinterpret_cast<const std::atomic<intptr_t>*>(mu);
  return (word->load(std::memory_order_relaxed) & kMuWriter) != 0 ? 0u : __tsan_mutex_read_lock;
}

void* NotifiedWord(const absl::Notification* n) {
  return const_cast<char*>(reinterpret_cast<const char*>(n) + sizeof(absl::Mutex));
}

// Whether the caller's code is in the executable (instrumented: fleetca, the tests) rather
// than in a shared library (gRPC, Abseil). The bounds come from the linker's default script.
bool CalledFromExecutable(const void* return_address) {
  const char* pc = static_cast<const char*>(return_address);
  return pc >= __executable_start && pc < etext;
}

// Abseil's own members call one another through the PLT, so back into this file
// (CondVar::WaitWithTimeout calls CondVar::WaitWithDeadline, Mutex::LockWhenWithTimeout calls
// Mutex::LockWhenWithDeadline, ...): only the outermost Mutex or CondVar member of a thread
// annotates. (Notification and BlockingCounter do not count: their internal mutex is
// annotated by the Mutex members they call.)
thread_local int tls_depth = 0;

struct Nested {
  Nested() { ++tls_depth; }
  ~Nested() { --tls_depth; }
  Nested(const Nested&) = delete;
  Nested& operator=(const Nested&) = delete;
};

template <typename F>
auto Forward(F&& f) {
  Nested nested;
  return f();
}

bool Outermost() { return tls_depth == 0 && Annotate(); }

// A wait that releases a held mutex and takes it back before returning (CondVar::Wait*,
// the slow path of Mutex::Await*), annotated like Abseil's CondVar::WaitCommon.
template <typename F>
auto WaitReleasing(absl::Mutex* mu, F&& wait) {
  if (!Outermost()) return Forward(wait);
  const unsigned flags = HeldFlags(mu);
  __tsan_mutex_pre_unlock(mu, flags);
  auto result = Forward(wait);
  __tsan_mutex_post_unlock(mu, flags);
  __tsan_mutex_pre_lock(mu, flags);
  __tsan_mutex_post_lock(mu, flags, 0);
  return result;
}

// A blocking acquisition (Lock, ReaderLock, LockWhen*: the lock is held when they return,
// whatever they return).
template <typename F>
auto Acquire(absl::Mutex* mu, unsigned flags, F&& lock) {
  if (!Outermost()) return Forward(lock);
  __tsan_mutex_pre_lock(mu, flags);
  auto result = Forward(lock);
  __tsan_mutex_post_lock(mu, flags, 0);
  return result;
}

template <typename F>
bool TryAcquire(absl::Mutex* mu, unsigned flags, F&& try_lock) {
  if (!Outermost()) return Forward(try_lock);
  flags |= __tsan_mutex_try_lock;
  __tsan_mutex_pre_lock(mu, flags);
  const bool locked = Forward(try_lock);
  __tsan_mutex_post_lock(mu, locked ? flags : flags | __tsan_mutex_try_lock_failed, 0);
  return locked;
}

template <typename F>
void Release(absl::Mutex* mu, unsigned flags, F&& unlock) {
  if (!Outermost()) return Forward(unlock);
  __tsan_mutex_pre_unlock(mu, flags);
  Forward(unlock);
  __tsan_mutex_post_unlock(mu, flags);
}

struct Unit {};
template <typename F>
Unit Void(F&& f) {
  f();
  return {};
}

using MutexFn = void (*)(absl::Mutex*);
using MutexBoolFn = bool (*)(absl::Mutex*);
using CondFn = void (*)(absl::Mutex*, const absl::Condition&);
using CondDurationFn = bool (*)(absl::Mutex*, const absl::Condition&, absl::Duration);
using CondTimeFn = bool (*)(absl::Mutex*, const absl::Condition&, absl::Time);

}  // namespace

namespace absl {
ABSL_NAMESPACE_BEGIN

// --- Mutex -----------------------------------------------------------------------------

Mutex::~Mutex() {
  void* self = this;
  if (Annotate()) {
    if (!CalledFromExecutable(__builtin_return_address(0))) {
      // Destroyed by gRPC or Abseil, whose objects are handed between threads (reference
      // counts, closures) by synchronisation TSan cannot see: make every earlier unlock of
      // this mutex happen before its destruction (an uncontended try-lock, which adds no
      // lock-order edge), as the hand-off did; otherwise freeing the memory would be
      // reported against the last lock taken by another thread. Destroying one of our own
      // mutexes gets no such help.
      __tsan_mutex_pre_lock(self, __tsan_mutex_try_lock);
      __tsan_mutex_post_lock(self, __tsan_mutex_try_lock, 0);
      __tsan_mutex_pre_unlock(self, 0);
      __tsan_mutex_post_unlock(self, 0);
    }
    __tsan_mutex_destroy(self, __tsan_mutex_not_static);
  }
  REAL(MutexFn, "5MutexD1Ev")(this);
}

void Mutex::Lock() {
  Acquire(this, 0, [this] { return Void([this] { REAL(MutexFn, "5Mutex4LockEv")(this); }); });
}

void Mutex::ReaderLock() {
  Acquire(this, __tsan_mutex_read_lock,
          [this] { return Void([this] { REAL(MutexFn, "5Mutex10ReaderLockEv")(this); }); });
}

bool Mutex::TryLock() {
  return TryAcquire(this, 0, [this] { return REAL(MutexBoolFn, "5Mutex7TryLockEv")(this); });
}

bool Mutex::ReaderTryLock() {
  return TryAcquire(this, __tsan_mutex_read_lock,
                    [this] { return REAL(MutexBoolFn, "5Mutex13ReaderTryLockEv")(this); });
}

void Mutex::Unlock() {
  Release(this, 0, [this] { REAL(MutexFn, "5Mutex6UnlockEv")(this); });
}

void Mutex::ReaderUnlock() {
  Release(this, __tsan_mutex_read_lock,
          [this] { REAL(MutexFn, "5Mutex12ReaderUnlockEv")(this); });
}

void Mutex::LockWhen(const Condition& cond) {
  Acquire(this, 0, [&] {
    return Void([&] { REAL(CondFn, "5Mutex8LockWhenERKNS0_9ConditionE")(this, cond); });
  });
}

void Mutex::ReaderLockWhen(const Condition& cond) {
  Acquire(this, __tsan_mutex_read_lock, [&] {
    return Void([&] { REAL(CondFn, "5Mutex14ReaderLockWhenERKNS0_9ConditionE")(this, cond); });
  });
}

bool Mutex::LockWhenWithTimeout(const Condition& cond, absl::Duration timeout) {
  return Acquire(this, 0, [&] {
    return REAL(CondDurationFn, "5Mutex19LockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE")(
        this, cond, timeout);
  });
}

bool Mutex::ReaderLockWhenWithTimeout(const Condition& cond, absl::Duration timeout) {
  return Acquire(this, __tsan_mutex_read_lock, [&] {
    return REAL(CondDurationFn,
                "5Mutex25ReaderLockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE")(this, cond,
                                                                                     timeout);
  });
}

bool Mutex::LockWhenWithDeadline(const Condition& cond, absl::Time deadline) {
  return Acquire(this, 0, [&] {
    return REAL(CondTimeFn, "5Mutex20LockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE")(
        this, cond, deadline);
  });
}

bool Mutex::ReaderLockWhenWithDeadline(const Condition& cond, absl::Time deadline) {
  return Acquire(this, __tsan_mutex_read_lock, [&] {
    return REAL(CondTimeFn, "5Mutex26ReaderLockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE")(
        this, cond, deadline);
  });
}

// Await*: a condition already true returns at once, still holding the lock (evaluated here,
// where TSan sees it as the lock holder's); otherwise the wait releases and retakes the lock.
void Mutex::Await(const Condition& cond) {
  if (cond.Eval()) return;
  WaitReleasing(this, [&] {
    return Void([&] { REAL(CondFn, "5Mutex5AwaitERKNS0_9ConditionE")(this, cond); });
  });
}

bool Mutex::AwaitWithTimeout(const Condition& cond, absl::Duration timeout) {
  if (cond.Eval()) return true;
  return WaitReleasing(this, [&] {
    return REAL(CondDurationFn, "5Mutex16AwaitWithTimeoutERKNS0_9ConditionENS0_8DurationE")(
        this, cond, timeout);
  });
}

bool Mutex::AwaitWithDeadline(const Condition& cond, absl::Time deadline) {
  if (cond.Eval()) return true;
  return WaitReleasing(this, [&] {
    return REAL(CondTimeFn, "5Mutex17AwaitWithDeadlineERKNS0_9ConditionENS0_4TimeE")(
        this, cond, deadline);
  });
}

// --- CondVar ---------------------------------------------------------------------------
// Signal and SignalAll need nothing: the waiter's happens-before edge is the mutex it
// retakes, as in Abseil's own TSan build.

void CondVar::Wait(Mutex* mu) {
  using Fn = void (*)(CondVar*, Mutex*);
  WaitReleasing(mu, [&] {
    return Void([&] { REAL(Fn, "7CondVar4WaitEPNS0_5MutexE")(this, mu); });
  });
}

bool CondVar::WaitWithTimeout(Mutex* mu, absl::Duration timeout) {
  using Fn = bool (*)(CondVar*, Mutex*, absl::Duration);
  return WaitReleasing(mu, [&] {
    return REAL(Fn, "7CondVar15WaitWithTimeoutEPNS0_5MutexENS0_8DurationE")(this, mu, timeout);
  });
}

bool CondVar::WaitWithDeadline(Mutex* mu, absl::Time deadline) {
  using Fn = bool (*)(CondVar*, Mutex*, absl::Time);
  return WaitReleasing(mu, [&] {
    return REAL(Fn, "7CondVar16WaitWithDeadlineEPNS0_5MutexENS0_4TimeE")(this, mu, deadline);
  });
}

// --- Notification ----------------------------------------------------------------------
// Its lock and unlock come back through the Mutex members above, but WaitForNotification*
// and the inline HasBeenNotified() return on an uninstrumented acquire-load of the flag
// without locking once it is set. Release on the flag's address before setting it; acquire
// from it after a wait that saw it set (an instrumented HasBeenNotified() acquires from the
// same address by itself).

void Notification::Notify() {
  using Fn = void (*)(Notification*);
  if (Annotate()) __tsan_release(NotifiedWord(this));
  REAL(Fn, "12Notification6NotifyEv")(this);
}

void Notification::WaitForNotification() const {
  using Fn = void (*)(const Notification*);
  REAL_CONST(Fn, "12Notification19WaitForNotificationEv")(this);
  if (Annotate()) __tsan_acquire(NotifiedWord(this));
}

bool Notification::WaitForNotificationWithTimeout(absl::Duration timeout) const {
  using Fn = bool (*)(const Notification*, absl::Duration);
  const bool notified =
      REAL_CONST(Fn, "12Notification30WaitForNotificationWithTimeoutENS0_8DurationE")(this,
                                                                                     timeout);
  if (notified && Annotate()) __tsan_acquire(NotifiedWord(this));
  return notified;
}

bool Notification::WaitForNotificationWithDeadline(absl::Time deadline) const {
  using Fn = bool (*)(const Notification*, absl::Time);
  const bool notified =
      REAL_CONST(Fn, "12Notification31WaitForNotificationWithDeadlineENS0_4TimeE")(this,
                                                                                   deadline);
  if (notified && Annotate()) __tsan_acquire(NotifiedWord(this));
  return notified;
}

// --- BlockingCounter -------------------------------------------------------------------
// DecrementCount is an uninstrumented atomic decrement, and only the last one takes the
// internal mutex: every decrement releases on the counter, Wait acquires from it.

bool BlockingCounter::DecrementCount() {
  using Fn = bool (*)(BlockingCounter*);
  if (Annotate()) __tsan_release(this);
  return REAL(Fn, "15BlockingCounter14DecrementCountEv")(this);
}

void BlockingCounter::Wait() {
  using Fn = void (*)(BlockingCounter*);
  REAL(Fn, "15BlockingCounter4WaitEv")(this);
  if (Annotate()) __tsan_acquire(this);
}

ABSL_NAMESPACE_END
}  // namespace absl
