// tsan_shim_util.h: what tsan_absl_shim.cc and tsan_grpc_shim.cc share (the tsan preset only).
#ifndef FLEETCA_TESTS_SANITIZERS_TSAN_SHIM_UTIL_H_
#define FLEETCA_TESTS_SANITIZERS_TSAN_SHIM_UTIL_H_

#include <dlfcn.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>

namespace fleetca::tsan_shim {

// ResolveNext: the library's definition of `name` (the one after the executable's, which is
// the shim's own), cached in `slot`; aborts naming `shim` when there is none, since the shim
// could not forward the call.
inline void* ResolveNext(std::atomic<void*>& slot, const char* name, const char* shim) {
  void* fn = slot.load(std::memory_order_acquire);
  if (fn != nullptr) return fn;
  fn = dlsym(RTLD_NEXT, name);
  if (fn == nullptr) {
    std::fprintf(stderr, "%s: %s not found after the executable (dlsym: %s)\n", shim, name,
                 dlerror());
    std::abort();
  }
  slot.store(fn, std::memory_order_release);
  return fn;
}

// Annotate: false when FLEETCA_TSAN_SHIM_OFF is set (and not "0"): the shims then only
// forward, which tsan_selftest uses to show that the races they hide are real to TSan.
// Read once (one state for both shims); the environment does not change under us.
inline bool Annotate() {
  static std::atomic<int> state{0};  // 0 unknown, 1 on, 2 off
  int s = state.load(std::memory_order_relaxed);
  if (s == 0) {
    const char* off = std::getenv("FLEETCA_TSAN_SHIM_OFF");
    s = (off != nullptr && off[0] != '\0' && off[0] != '0') ? 2 : 1;
    state.store(s, std::memory_order_relaxed);
  }
  return s == 1;
}

}  // namespace fleetca::tsan_shim

#endif  // FLEETCA_TESTS_SANITIZERS_TSAN_SHIM_UTIL_H_
