#pragma once

// RpcObserver: a gRPC server interceptor on every call. It
//  - gives the call a request id: the caller's x-request-id metadata when valid (at most 128
//    printable ASCII characters), otherwise a new random one, which handlers (and so the
//    audit log) see as if the caller had sent it; the id is sent back as x-request-id
//    initial metadata, so a caller can quote it;
//  - counts the call by service, method and status code and times it
//    (fleetca_grpc_server_handled_total, fleetca_grpc_server_handling_seconds for unary
//    calls; a stream's duration is not a latency), and counts the calls in flight;
//  - writes one access-log line when the call ends: method, code, duration, request id,
//    the caller (identity or device name, role, certificate serial) and peer address, and
//    the status message of a failed call (messages are written for callers: they carry no
//    SQL and no key material). Health checks and reflection log at debug level.

#include <atomic>
#include <string>

#include <grpcpp/support/server_interceptor.h>

#include "common/metrics.h"
#include "server/auth/auth_processor.h"

namespace fleetca::api {

enum class AccessLog { kAll, kErrors, kOff };

// ParseAccessLog accepts "all", "errors" and "off".
bool ParseAccessLog(const std::string& text, AccessLog* mode);

class RpcObserverFactory : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  RpcObserverFactory(metrics::Registry& registry, AccessLog mode);

  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override;

  // Refused: a call auth::AuthProcessor refused before any interceptor ran, counted and
  // logged the same way (its request id is the caller's when valid, else none).
  void Refused(const auth::Refusal& refusal);

  // What an interceptor records into (shared by every call).
  struct Sinks {
    metrics::CounterFamily* handled;
    metrics::HistogramFamily* latency;
    std::atomic<int64_t> in_flight{0};
    AccessLog mode;
  };

 private:
  Sinks sinks_;
};

}  // namespace fleetca::api
