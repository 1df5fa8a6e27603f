#pragma once

// AuthProcessor: authentication, authorization and per-identity issuance limits for every
// call, in one place. gRPC runs it after the TLS handshake and before the handler: a call
// it refuses never reaches a handler (so it has no side effect). It records the caller in
// the call's AuthContext (properties below) for the handlers and the audit log.

#include <grpcpp/security/auth_metadata_processor.h>

#include <functional>
#include <string>

#include "absl/synchronization/mutex.h"
#include "server/auth/authenticator.h"
#include "server/auth/rate_limiter.h"

namespace fleetca::auth {

// AuthContext properties set for an authenticated call.
inline constexpr char kNameProperty[] = "fleetca.name";
inline constexpr char kRoleProperty[] = "fleetca.role";
inline constexpr char kSerialProperty[] = "fleetca.serial";
inline constexpr char kIssuerProperty[] = "fleetca.issuer";

// A call refused here (it never reaches a handler, nor the interceptors): what the access
// log and the metrics need to know of it.
struct Refusal {
  std::string method;      // "/fleetca.v1.Service/Method"
  grpc::StatusCode code = grpc::StatusCode::OK;  // UNAUTHENTICATED, UNAVAILABLE, PERMISSION_DENIED, RESOURCE_EXHAUSTED
  std::string message;     // what the caller is told
  std::string actor, role, serial;  // empty when not authenticated
  std::string request_id;  // the caller's x-request-id metadata, as sent (unchecked)
};

class AuthProcessor : public grpc::AuthMetadataProcessor {
 public:
  // Borrowed; they must outlive the server. on_refusal (optional) is told of every call
  // refused (it must be thread-safe); without it the refusal is logged here.
  AuthProcessor(Authenticator& authenticator, RateLimiter& issuance_limiter,
                std::function<void(const Refusal&)> on_refusal = nullptr)
      : authenticator_(authenticator),
        issuance_limiter_(issuance_limiter),
        on_refusal_(std::move(on_refusal)) {}

  // Everything it needs is in memory: it runs inline on gRPC's threads.
  bool IsBlocking() const override { return false; }

  grpc::Status Process(const InputMetadata& auth_metadata, grpc::AuthContext* context,
                       OutputMetadata* consumed_auth_metadata,
                       OutputMetadata* response_metadata) override;

 private:
  // Refuse tells on_refusal_ (or the log) and returns the status; principal may be null.
  grpc::Status Refuse(const std::string& method, grpc::StatusCode code, std::string message,
                      const Principal* principal, const InputMetadata& metadata);

  Authenticator& authenticator_;
  RateLimiter& issuance_limiter_;
  std::function<void(const Refusal&)> on_refusal_;
  // Guards the AuthContexts Process reads and writes (each is a connection's, shared by its
  // calls, and not locked by gRPC).
  absl::Mutex context_mu_;
};

}  // namespace fleetca::auth
