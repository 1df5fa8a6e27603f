#include "server/auth/auth_processor.h"

#include <cmath>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
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
  {
    absl::MutexLock lock(&context_mu_);
    for (const grpc::string_ref& v : context->FindPropertyValues("x509_pem_cert")) {
      pem.assign(v.data(), v.size());
    }
  }
  if (pem.empty()) {
    return Refuse(method, grpc::StatusCode::UNAUTHENTICATED,
                  "no client certificate: call with a certificate from this fleetca's "
                  "operators CA (an identity), or a device certificate",
                  nullptr, auth_metadata);
  }
  const absl::Time now = absl::Now();
  absl::StatusOr<Principal> principal = authenticator_.Authenticate(pem, now);
  if (!principal.ok()) {
    return Refuse(method,
                  principal.status().code() == absl::StatusCode::kUnavailable
                      ? grpc::StatusCode::UNAVAILABLE
                      : grpc::StatusCode::UNAUTHENTICATED,
                  std::string(principal.status().message()), nullptr, auth_metadata);
  }
  const char* role = RoleName(principal->role);
  if (!MayCall(principal->role, method)) {
    return Refuse(method, grpc::StatusCode::PERMISSION_DENIED,
                  absl::StrCat("role ", role, " (", principal->name, ") may not call ", method),
                  &*principal, auth_metadata);
  }
  if (IsIssuanceMethod(method)) {
    // Keyed by role and name: a device's comm-ID may spell an identity's name.
    const absl::Duration wait =
        issuance_limiter_.Take(absl::StrCat(role, "/", principal->name), now);
    if (wait > absl::ZeroDuration()) {
      return Refuse(
          method, grpc::StatusCode::RESOURCE_EXHAUSTED,
          absl::StrCat("issuance rate limit of ", principal->name, " reached (",
                       issuance_limiter_.rate(), " per second, burst ", issuance_limiter_.burst(),
                       "): retry in ", absl::FormatDuration(absl::Ceil(wait, absl::Milliseconds(1)))),
          &*principal, auth_metadata);
    }
  }
  // The AuthContext gRPC passes here is the connection's, shared by all its calls (a call's
  // auth_context() refers to it): record the caller once per connection. Adding the four
  // properties on every call kept them for the connection's life, so a long-lived
  // connection grew the server's memory by about 0.5 KB per call (docs/reliability.md,
  // "Soak"). A connection presents one certificate, so its principal is the same for every
  // call on it. Calls on one connection may be processed at once and gRPC does not lock the
  // context: its reads and writes here are under context_mu_, and a handler reads it only
  // after its own call was processed (so after the one write).
  absl::MutexLock lock(&context_mu_);
  if (context->FindPropertyValues(kNameProperty).empty()) {
    context->AddProperty(kNameProperty, principal->name);
    context->AddProperty(kRoleProperty, RoleName(principal->role));
    context->AddProperty(kSerialProperty, principal->serial_hex);
    context->AddProperty(kIssuerProperty, principal->issuer_id);
  }
  return grpc::Status::OK;
}

grpc::Status AuthProcessor::Refuse(const std::string& method, grpc::StatusCode code,
                                   std::string message, const Principal* principal,
                                   const InputMetadata& metadata) {
  Refusal refusal;
  refusal.method = method;
  refusal.code = code;
  refusal.message = std::move(message);
  if (principal != nullptr) {
    refusal.actor = principal->name;
    refusal.role = RoleName(principal->role);
    refusal.serial = principal->serial_hex;
  }
  if (auto it = metadata.find("x-request-id"); it != metadata.end()) {
    refusal.request_id.assign(it->second.data(), it->second.size());
  }
  if (on_refusal_) {
    on_refusal_(refusal);
  } else {
    LogWarning("call refused", {{"method", refusal.method},
                                {"code", std::string(absl::StatusCodeToString(
                                              static_cast<absl::StatusCode>(refusal.code)))},
                                {"actor", refusal.actor},
                                {"error", refusal.message}});
  }
  return grpc::Status(refusal.code, refusal.message);
}

}  // namespace fleetca::auth
