#include "server/api/service_metrics.h"

#include "absl/strings/ascii.h"
#include "absl/strings/strip.h"
#include "fleetca/v1/types.pb.h"

namespace fleetca::api {

ServiceMetrics::ServiceMetrics(metrics::Registry& registry)
    : issued_(registry.AddCounter(
          "fleetca_certificates_issued_total",
          "Issuance requests answered, by kind, profile and outcome (issued, replayed, or the "
          "refusal's status code).",
          {"kind", "profile", "outcome"})),
      revoked_(registry.AddCounter("fleetca_certificates_revoked_total",
                                   "Certificates revoked or put on hold, by reason.",
                                   {"reason"})) {}

void ServiceMetrics::Issued(const char* kind,
                            const absl::StatusOr<issuance::IssuedCertificate>& result) {
  if (result.ok()) {
    issued_.With({kind, result->record.profile, result->replayed ? "replayed" : "issued"})
        .Increment();
    return;
  }
  issued_.With({kind, "", absl::AsciiStrToLower(absl::StatusCodeToString(result.status().code()))})
      .Increment();
}

void ServiceMetrics::Revoked(int reason, int64_t count) {
  if (count <= 0) return;
  // REVOCATION_REASON_KEY_COMPROMISE -> key_compromise
  const std::string full = v1::RevocationReason_IsValid(reason)
                               ? v1::RevocationReason_Name(static_cast<v1::RevocationReason>(reason))
                               : "other";
  absl::string_view name = full;
  absl::ConsumePrefix(&name, "REVOCATION_REASON_");
  revoked_.With({absl::AsciiStrToLower(name)}).Increment(static_cast<uint64_t>(count));
}

}  // namespace fleetca::api
