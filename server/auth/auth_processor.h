#pragma once

// AuthProcessor: authentication, authorization and per-identity issuance limits for every
// call, in one place. gRPC runs it after the TLS handshake and before the handler: a call
// it refuses never reaches a handler (so it has no side effect). It records the caller in
// the call's AuthContext (properties below) for the handlers and the audit log.

#include <grpcpp/security/auth_metadata_processor.h>

#include "server/auth/authenticator.h"
#include "server/auth/rate_limiter.h"

namespace fleetca::auth {

// AuthContext properties set for an authenticated call.
inline constexpr char kNameProperty[] = "fleetca.name";
inline constexpr char kRoleProperty[] = "fleetca.role";
inline constexpr char kSerialProperty[] = "fleetca.serial";
inline constexpr char kIssuerProperty[] = "fleetca.issuer";

class AuthProcessor : public grpc::AuthMetadataProcessor {
 public:
  // Borrowed; they must outlive the server.
  AuthProcessor(Authenticator& authenticator, RateLimiter& issuance_limiter)
      : authenticator_(authenticator), issuance_limiter_(issuance_limiter) {}

  // Everything it needs is in memory: it runs inline on gRPC's threads.
  bool IsBlocking() const override { return false; }

  grpc::Status Process(const InputMetadata& auth_metadata, grpc::AuthContext* context,
                       OutputMetadata* consumed_auth_metadata,
                       OutputMetadata* response_metadata) override;

 private:
  Authenticator& authenticator_;
  RateLimiter& issuance_limiter_;
};

}  // namespace fleetca::auth
