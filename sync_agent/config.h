#pragma once

// fleetca-sync's configuration (filled from flags by main.cc) and its checks, naming the
// flag at fault.

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "sync_agent/publisher.h"
#include "sync_client/connection.h"

namespace fleetca::sync_agent {

// The connection (--server, --tls_*, --insecure_plaintext, --broker_id) and the agent's own.
struct AgentConfig : sync_client::ConnectionConfig {
  OutputPaths paths;                // --cafile, --crlfile, --acl_file
  std::string mosquitto_pid_file;   // --mosquitto_pid_file
  int64_t signal_pid = 0;           // --signal_pid
  absl::Duration heartbeat_interval = absl::Seconds(10);
  absl::Duration min_write_interval = absl::Milliseconds(200);
};

// CheckConfig: INVALID_ARGUMENT naming the flag when the configuration cannot work: the
// connection's checks (sync_client::CheckConnection), a required flag missing (--cafile,
// --crlfile, --acl_file), two outputs on one path, both
// --mosquitto_pid_file and --signal_pid, a --signal_pid not above 1, --heartbeat_interval
// outside 1 s to 60 s, or a negative --min_write_interval.
absl::Status CheckConfig(const AgentConfig& config);

}  // namespace fleetca::sync_agent
