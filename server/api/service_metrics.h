#pragma once

// ServiceMetrics: what the API services count beyond calls and codes (RpcObserver counts
// those): certificates issued by kind, profile and outcome, and revocations by reason.

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "common/metrics.h"
#include "server/issuance/issuance.h"

namespace fleetca::api {

class ServiceMetrics {
 public:
  explicit ServiceMetrics(metrics::Registry& registry);

  // Issued counts one issuance request of `kind` (device, broker, device_renewal):
  // outcome "issued", "replayed" (a retry answered with the certificate already issued) or
  // the refusal's status code in lower case ("invalid_argument", ...). The profile label
  // is the certificate's profile, empty for a refusal (a refused request's profile name is
  // the caller's text: it must not make new series).
  void Issued(const char* kind, const absl::StatusOr<issuance::IssuedCertificate>& result);
  // Revoked counts `count` certificates revoked (or put on hold) for `reason`, an RFC 5280
  // reason code.
  void Revoked(int reason, int64_t count);

 private:
  metrics::CounterFamily& issued_;
  metrics::CounterFamily& revoked_;
};

}  // namespace fleetca::api
