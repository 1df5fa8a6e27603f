#pragma once

// Status propagation macros (Abseil 20220623 has none of its own).

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define FLEETCA_STATUS_CONCAT_INNER_(a, b) a##b
#define FLEETCA_STATUS_CONCAT_(a, b) FLEETCA_STATUS_CONCAT_INNER_(a, b)

// RETURN_IF_ERROR(expr): returns the absl::Status of expr from the enclosing function when
// it is not OK.
#define RETURN_IF_ERROR(expr) \
  FLEETCA_RETURN_IF_ERROR_IMPL_(FLEETCA_STATUS_CONCAT_(fleetca_status_, __LINE__), expr)

#define FLEETCA_RETURN_IF_ERROR_IMPL_(status, expr) \
  do {                                              \
    if (::absl::Status status = (expr); !status.ok()) { \
      return status;                                \
    }                                               \
  } while (false)

// ASSIGN_OR_RETURN(lhs, expr): evaluates expr (an absl::StatusOr<T>); on error returns its
// status, otherwise moves the value into lhs (which may be a declaration).
#define ASSIGN_OR_RETURN(lhs, expr) \
  FLEETCA_ASSIGN_OR_RETURN_IMPL_(FLEETCA_STATUS_CONCAT_(fleetca_statusor_, __LINE__), lhs, expr)

#define FLEETCA_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, expr) \
  auto statusor = (expr);                                   \
  if (!statusor.ok()) {                                     \
    return std::move(statusor).status();                    \
  }                                                         \
  lhs = std::move(statusor).value()
