#include "cli/exit_codes.h"

namespace fleetca::cli {

namespace {
constexpr const char* kNames[] = {
    "OK",        "CANCELLED",      "UNKNOWN",           "INVALID_ARGUMENT",   "DEADLINE_EXCEEDED",
    "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
    "ABORTED",   "OUT_OF_RANGE",   "UNIMPLEMENTED",     "INTERNAL",           "UNAVAILABLE",
    "DATA_LOSS", "UNAUTHENTICATED"};
}  // namespace

int ExitCodeFor(int grpc_code) {
  switch (grpc_code) {
    case 0:
      return kExitOk;
    case 3:   // INVALID_ARGUMENT
    case 11:  // OUT_OF_RANGE
      return kExitUsage;
    case 5:
      return kExitNotFound;
    case 6:   // ALREADY_EXISTS
    case 9:   // FAILED_PRECONDITION
    case 10:  // ABORTED
      return kExitConflict;
    case 7:   // PERMISSION_DENIED
    case 16:  // UNAUTHENTICATED
      return kExitDenied;
    case 4:   // DEADLINE_EXCEEDED
    case 8:   // RESOURCE_EXHAUSTED
    case 14:  // UNAVAILABLE
      return kExitUnavailable;
    case 12:
      return kExitUnimplemented;
    default:
      return kExitError;  // CANCELLED, UNKNOWN, INTERNAL, DATA_LOSS
  }
}

std::string StatusCodeName(int grpc_code) {
  if (grpc_code >= 0 && grpc_code <= 16) return kNames[grpc_code];
  return "CODE_" + std::to_string(grpc_code);
}

}  // namespace fleetca::cli
