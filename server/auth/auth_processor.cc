#include "server/auth/auth_processor.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/logging.h"

namespace fleetca::auth {

grpc::Status AuthProcessor::Process(const InputMetadata& auth_metadata, grpc::AuthContext* context,
                                    OutputMetadata* /*consumed_auth_metadata*/,
                                    OutputMetadata* /*response_metadata*/) {
  std::string method;
  if (auto it = auth_metadata.find(":path"); it != auth_metadata.end()) {
    method.assign(it->second.data(), it->second.size());
  }
  const Access access = AccessFor(method);
  if (access == Access::kPublic) return grpc::Status::OK;

  std::string pem;
  for (const grpc::string_ref& v : context->FindPropertyValues("x509_pem_cert")) {
    pem.assign(v.data(), v.size());
  }
  if (pem.empty()) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                        "no client certificate: call with a certificate from this fleetca's "
                        "operators CA (an identity), or a device certificate");
  }
  const absl::Time now = absl::Now();
  absl::StatusOr<Principal> principal = authenticator_.Authenticate(pem, now);
  if (!principal.ok()) {
    const auto code = principal.status().code() == absl::StatusCode::kUnavailable
                          ? grpc::StatusCode::UNAVAILABLE
                          : grpc::StatusCode::UNAUTHENTICATED;
    LogInfo("call refused", {{"method", method},
                             {"code", code == grpc::StatusCode::UNAVAILABLE ? "UNAVAILABLE"
                                                                            : "UNAUTHENTICATED"},
                             {"reason", std::string(principal.status().message())}});
    return grpc::Status(code, std::string(principal.status().message()));
  }
  if (!MayCall(principal->role, method)) {
    const std::string message = absl::StrCat("role ", RoleName(principal->role), " (",
                                             principal->name, ") may not call ", method);
    LogWarning("call refused", {{"method", method},
                                {"code", "PERMISSION_DENIED"},
                                {"actor", principal->name},
                                {"role", RoleName(principal->role)},
                                {"serial", principal->serial_hex}});
    return grpc::Status(grpc::StatusCode::PERMISSION_DENIED, message);
  }
  if (IsIssuanceMethod(method)) {
    // Keyed by role and name: a device's comm-ID may spell an identity's name.
    const absl::Duration wait =
        issuance_limiter_.Take(absl::StrCat(RoleName(principal->role), "/", principal->name), now);
    if (wait > absl::ZeroDuration()) {
      return grpc::Status(
          grpc::StatusCode::RESOURCE_EXHAUSTED,
          absl::StrCat("issuance rate limit of ", principal->name, " reached (",
                       issuance_limiter_.rate(), " per second, burst ", issuance_limiter_.burst(),
                       "): retry in ", absl::FormatDuration(absl::Ceil(wait, absl::Milliseconds(1)))));
    }
  }
  context->AddProperty(kNameProperty, principal->name);
  context->AddProperty(kRoleProperty, RoleName(principal->role));
  context->AddProperty(kSerialProperty, principal->serial_hex);
  context->AddProperty(kIssuerProperty, principal->issuer_id);
  return grpc::Status::OK;
}

}  // namespace fleetca::auth
