#pragma once

// Exit codes of the fleetca CLI (docs/cli.md): one per class of gRPC status code, so that
// scripts can tell "not there" from "conflict" from "retry later".

#include <string>

namespace fleetca::cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitError = 1;          // generic: UNKNOWN, INTERNAL, local I/O, ...
inline constexpr int kExitUsage = 2;          // bad command line; server INVALID_ARGUMENT
inline constexpr int kExitNotFound = 3;       // NOT_FOUND
inline constexpr int kExitConflict = 4;       // ALREADY_EXISTS, ABORTED, FAILED_PRECONDITION
inline constexpr int kExitDenied = 5;         // PERMISSION_DENIED, UNAUTHENTICATED
inline constexpr int kExitUnavailable = 6;    // UNAVAILABLE, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED
inline constexpr int kExitPartial = 7;        // some rows of an import failed
inline constexpr int kExitUnimplemented = 8;  // UNIMPLEMENTED: the server does not do this yet
inline constexpr int kExitInterrupted = 130;  // SIGINT: stopped after the batch in flight

// ExitCodeFor: the exit code of a gRPC status code (0..16); kExitError for anything else.
int ExitCodeFor(int grpc_code);

// StatusCodeName: "NOT_FOUND" for 5, and so on; "CODE_<n>" outside 0..16.
std::string StatusCodeName(int grpc_code);

}  // namespace fleetca::cli
