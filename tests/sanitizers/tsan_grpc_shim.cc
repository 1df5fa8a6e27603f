// tsan_grpc_shim.cc: the hand-offs of Debian's uninstrumented gRPC that objects of ours ride
// on, told to ThreadSanitizer (linked with tsan_absl_shim.cc into every executable of a TSan
// build; same mechanism: the executable's definition interposes the library's, which it
// calls through dlsym(RTLD_NEXT)).
//
//   - The completion queue: an operation's completion (grpc_cq_end_op, called by gRPC's
//     pollers through its PLT) happens before the thread that takes its tag from the queue
//     (grpc_completion_queue_next / _pluck, gRPC C++'s sync server and client, and our
//     streams) goes on with it: release on the tag, acquire on the tag returned.
//   - A call's reference count (grpc_call_unref from gRPC C++, e.g. when a ServerContext
//     is destroyed): modelled as the acquire-release decrement it is, so whoever drops the
//     last reference and frees the call's objects (our interceptors among them) comes after
//     every earlier holder.
//   - grpc::Server's count of outstanding callback requests (the default health service's
//     calls, among others): each finished call drops it with an atomic decrement and only
//     the last one takes the server's mutex to wake the shutdown, so the calls that ended
//     earlier (destroying their ServerContext and our interceptor) were not ordered before
//     the server's destruction (which frees our interceptor factory). Modelled as
//     release on each grpc::Server::UnrefWithPossibleNotify and acquire after
//     grpc::Server::UnrefAndWaitLocked (the shutdown's wait for that count to reach 0).
//
// Everything else in gRPC (its own atomics, lock-free queues, closures) stays invisible;
// tsan.supp says what is ignored in its place. FLEETCA_TSAN_SHIM_OFF=1 turns these off too.

#include <grpc/grpc.h>
#include <sanitizer/tsan_interface.h>

#include <atomic>
#include <utility>

#include "absl/status/status.h"
#include "tsan_shim_util.h"  // same directory

using fleetca::tsan_shim::Annotate;
using fleetca::tsan_shim::ResolveNext;

struct grpc_cq_completion;  // gRPC-internal (src/core/lib/surface/completion_queue.h)

// gRPC-internal too, exported by libgrpc.so and called through its PLT (10 call sites in
// Debian's 1.51): the declaration matches its mangled name,
// _Z14grpc_cq_end_opP21grpc_completion_queuePvN4absl7debian36StatusEPFvS1_P18grpc_cq_completionES1_S6_b.
void grpc_cq_end_op(grpc_completion_queue* cq, void* tag, absl::Status error,
                    void (*done)(void* done_arg, grpc_cq_completion* storage), void* done_arg,
                    grpc_cq_completion* storage, bool internal);

namespace {

void* Real(std::atomic<void*>& slot, const char* name) {
  return ResolveNext(slot, name, "tsan_grpc_shim");
}

#define FLEETCA_TSAN_REAL_FN(type, name)                         \
  ([]() {                                                        \
    static std::atomic<void*> slot{nullptr};                     \
    return reinterpret_cast<type>(Real(slot, name));             \
  }())

}  // namespace

void grpc_cq_end_op(grpc_completion_queue* cq, void* tag, absl::Status error,
                    void (*done)(void* done_arg, grpc_cq_completion* storage), void* done_arg,
                    grpc_cq_completion* storage, bool internal) {
  using Fn = void (*)(grpc_completion_queue*, void*, absl::Status,
                      void (*)(void*, grpc_cq_completion*), void*, grpc_cq_completion*, bool);
  if (Annotate() && tag != nullptr) __tsan_release(tag);
  FLEETCA_TSAN_REAL_FN(Fn, "_Z14grpc_cq_end_opP21grpc_completion_queuePvN4absl7debian36StatusEPFvS1_P18grpc_cq_completionES1_S6_b")(
      cq, tag, std::move(error), done, done_arg, storage, internal);
}

extern "C" {

grpc_event grpc_completion_queue_next(grpc_completion_queue* cq, gpr_timespec deadline,
                                      void* reserved) {
  using Fn = grpc_event (*)(grpc_completion_queue*, gpr_timespec, void*);
  const grpc_event event =
      FLEETCA_TSAN_REAL_FN(Fn, "grpc_completion_queue_next")(cq, deadline, reserved);
  if (event.type == GRPC_OP_COMPLETE && event.tag != nullptr && Annotate()) {
    __tsan_acquire(event.tag);
  }
  return event;
}

grpc_event grpc_completion_queue_pluck(grpc_completion_queue* cq, void* tag,
                                       gpr_timespec deadline, void* reserved) {
  using Fn = grpc_event (*)(grpc_completion_queue*, void*, gpr_timespec, void*);
  const grpc_event event =
      FLEETCA_TSAN_REAL_FN(Fn, "grpc_completion_queue_pluck")(cq, tag, deadline, reserved);
  if (event.type == GRPC_OP_COMPLETE && event.tag != nullptr && Annotate()) {
    __tsan_acquire(event.tag);
  }
  return event;
}

void grpc_call_unref(grpc_call* call) {
  using Fn = void (*)(grpc_call*);
  if (call != nullptr && Annotate()) {
    __tsan_release(call);
    __tsan_acquire(call);
  }
  FLEETCA_TSAN_REAL_FN(Fn, "grpc_call_unref")(call);
}

}  // extern "C"

// grpc::Server's private members, defined under their mangled names (both exported by
// libgrpc++.so and called through its PLT).
extern "C" void FleetcaTsanServerUnref(void* server) __asm__(
    "_ZN4grpc6Server23UnrefWithPossibleNotifyEv");
extern "C" void FleetcaTsanServerUnrefAndWait(void* server) __asm__(
    "_ZN4grpc6Server18UnrefAndWaitLockedEv");

void FleetcaTsanServerUnref(void* server) {
  using Fn = void (*)(void*);
  if (Annotate()) __tsan_release(server);
  FLEETCA_TSAN_REAL_FN(Fn, "_ZN4grpc6Server23UnrefWithPossibleNotifyEv")(server);
}

void FleetcaTsanServerUnrefAndWait(void* server) {
  using Fn = void (*)(void*);
  if (Annotate()) __tsan_release(server);
  FLEETCA_TSAN_REAL_FN(Fn, "_ZN4grpc6Server18UnrefAndWaitLockedEv")(server);
  if (Annotate()) __tsan_acquire(server);
}
