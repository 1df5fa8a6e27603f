#pragma once

// fleetca-sync's configuration (filled from flags by main.cc) and what is built from it:
// checks naming the flag at fault, and the gRPC channel credentials.

#include <grpcpp/security/credentials.h>

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "sync_agent/publisher.h"

namespace fleetca::sync_agent {

struct AgentConfig {
  std::string server;               // --server: host:port of fleetca's gRPC API
  std::string tls_ca;               // --tls_ca: PEM trust anchors for the server's certificate
  std::string tls_cert;             // --tls_cert: the agent's client certificate (PEM, chain after)
  std::string tls_key;              // --tls_key: its private key (PEM, mode 0600)
  std::string tls_server_name;      // --tls_server_name: expected name in the server's certificate
  bool insecure_plaintext = false;  // --insecure_plaintext: development, loopback only
  std::string broker_id;            // --broker_id
  OutputPaths paths;                // --cafile, --crlfile, --acl_file
  std::string mosquitto_pid_file;   // --mosquitto_pid_file
  int64_t signal_pid = 0;           // --signal_pid
  absl::Duration heartbeat_interval = absl::Seconds(10);
  absl::Duration min_write_interval = absl::Milliseconds(200);
};

// CheckConfig: INVALID_ARGUMENT naming the flag when the configuration cannot work: a
// required flag missing (--server, --broker_id, --cafile, --crlfile, --acl_file, and the
// three --tls_* files unless --insecure_plaintext), a broker id that is not 1 to 63
// characters of [a-z0-9.-] starting with a letter or digit, two outputs on one path, both
// --mosquitto_pid_file and --signal_pid, a --signal_pid not above 1, --heartbeat_interval
// outside 1 s to 60 s, a negative --min_write_interval, or --insecure_plaintext with a
// --server that is not a loopback address.
absl::Status CheckConfig(const AgentConfig& config);

// IsLoopbackTarget: 127.0.0.0/8, [::1] or localhost (with a port), or a unix: socket.
bool IsLoopbackTarget(const std::string& target);

// ChannelCredentialsFor reads the TLS files (the key with ReadSecretFile: refused when
// readable by group or others) and returns TLS credentials presenting the client
// certificate; insecure credentials with --insecure_plaintext. NOT_FOUND,
// PERMISSION_DENIED or FAILED_PRECONDITION naming the file.
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> ChannelCredentialsFor(
    const AgentConfig& config);

}  // namespace fleetca::sync_agent
