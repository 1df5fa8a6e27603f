#pragma once

// HttpServer: the plain-HTTP port certificates point at (RFC 5280 CRL distribution point
// and authorityInfoAccess caIssuers): GET /crl/<issuer_id>.crl (application/pkix-crl, the
// newest CRL) and GET /ca/<issuer_id>.crt (application/pkix-cert), with ETag and
// Cache-Control; and the probes: GET /healthz (200 while the process serves) and
// GET /readyz (200 when the readiness check passes, else 503 with its reason); and
// GET /metrics (Prometheus text format, when a registry is given). Read-only and
// unauthenticated, like every CRL distribution point: what it serves is signed and public,
// and the metrics name no device and carry no secret (restrict the port to the cluster:
// the Helm chart's NetworkPolicy). Built on cpp-httplib (Debian's libcpp-httplib).

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "common/metrics.h"
#include "server/ca/certificate_authority.h"
#include "server/revocation/crl_publisher.h"

namespace httplib {
class Server;
}

namespace fleetca::http {

class HttpServer {
 public:
  // readiness answers /readyz: OK, or why this replica should not get traffic (a message
  // without internals: "database unreachable", ...).
  // metrics (may be null: no /metrics) also gets fleetca_http_requests_total.
  HttpServer(revocation::CrlPublisher& crls, ca::CertificateAuthority& ca,
             std::function<absl::Status()> readiness, metrics::Registry* metrics = nullptr);
  ~HttpServer();

  // Start listens on host:port (port 0: any free port) and serves on a thread of its own;
  // returns the port.
  absl::StatusOr<int> Start(const std::string& host, int port);
  // Stop stops listening and waits for the thread.
  void Stop();

 private:
  revocation::CrlPublisher& crls_;
  ca::CertificateAuthority& ca_;
  std::function<absl::Status()> readiness_;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
};

}  // namespace fleetca::http
