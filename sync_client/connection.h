#pragma once

// What every follower of BrokerSyncService.Watch needs to reach fleetca as a broker
// (fleetca-sync and the mosquitto plugin): the connection settings, their checks, the
// channel, the Watch request, and which errors retrying soon will not fix.

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "fleetca/v1/broker_sync.pb.h"

namespace fleetca::sync_client {

struct ConnectionConfig {
  std::string server;               // host:port of fleetca's gRPC API
  std::string tls_ca;               // PEM trust anchors for the server's certificate
  std::string tls_cert;             // the broker identity's certificate (PEM, chain after)
  std::string tls_key;              // its private key (PEM, mode 0600)
  std::string tls_server_name;      // the name expected in the server's certificate
  bool insecure_plaintext = false;  // development, loopback only
  std::string broker_id;            // the broker's id in fleetca
};

// CheckConnection: INVALID_ARGUMENT naming the setting ("<prefix>server: required ...", the
// prefix is "--" for flags, "plugin_opt_" for mosquitto plugin options) when the settings
// cannot work: server or broker_id missing, a broker id that is not 1 to 63 characters of
// [a-z0-9.-] starting with a letter or digit, the three TLS files missing without
// insecure_plaintext, or insecure_plaintext with a server that is not a loopback address.
absl::Status CheckConnection(const ConnectionConfig& config, absl::string_view prefix);

// IsValidBrokerId: 1 to 63 characters of [a-z0-9.-] starting with a letter or digit.
bool IsValidBrokerId(absl::string_view id);

// IsLoopbackTarget: 127.0.0.0/8, [::1] or localhost (with a port), or a unix: socket.
bool IsLoopbackTarget(const std::string& target);

// ChannelCredentialsFor reads the TLS files (the key with ReadSecretFile: refused when
// readable by group or others) and returns TLS credentials presenting the client
// certificate; insecure credentials with insecure_plaintext. NOT_FOUND, PERMISSION_DENIED
// or FAILED_PRECONDITION naming the file.
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> ChannelCredentialsFor(
    const ConnectionConfig& config);

// NewChannel: a channel to config.server with these credentials, no limit on the size of
// a received message (a complete CRL of a million entries is about 35 MiB, in one
// message), tls_server_name as the expected server name when set, and gRPC's reconnection
// backoff capped at 5 s (a follower reconnects soon after the server is back).
std::shared_ptr<grpc::Channel> NewChannel(const ConnectionConfig& config,
                                          std::shared_ptr<grpc::ChannelCredentials> credentials);

// WatchRequestFor: the request for broker_id from since_revision, asking for heartbeats
// every heartbeat_interval (1 s to 60 s, whole milliseconds), limited to object_types
// (empty: all).
v1::WatchRequest WatchRequestFor(const std::string& broker_id, int64_t since_revision,
                                 absl::Duration heartbeat_interval,
                                 const std::vector<v1::SyncObjectType>& object_types);

// SlowRetry: errors that retrying soon will not fix (a configuration or deployment
// problem): INVALID_ARGUMENT, PERMISSION_DENIED, NOT_FOUND, UNAUTHENTICATED, UNIMPLEMENTED,
// FAILED_PRECONDITION.
bool SlowRetry(absl::StatusCode code);

}  // namespace fleetca::sync_client
