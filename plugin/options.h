#pragma once

// The plugin's options, from mosquitto.conf's `plugin_opt_<name> <value>` lines
// (deploy/mosquitto-plugin.conf shows them all). Checked at load: a bad option stops the
// broker from starting, with a message naming it.

#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/logging.h"
#include "plugin/enforcer.h"
#include "plugin/follower.h"

namespace fleetca::plugin {

enum class Mode {
  kStream,  // follow Watch, decide everything in memory (the default)
  kQuery,   // ask AuthorizeConnect per connection, with a deadline and a short cache
};

struct PluginOptions {
  Mode mode = Mode::kStream;
  // connection (both modes), heartbeat_interval, cache_path, cache_interval (stream mode)
  FollowerOptions follower;
  EnforcerOptions enforcer;  // admit_without_policy
  absl::Duration query_timeout = absl::Milliseconds(500);
  LogLevel log_level = LogLevel::kInfo;
};

// The file the cache is kept in, inside plugin_opt_cache_dir.
inline constexpr char kCacheFileName[] = "fleetca-policy.cache";

// ParsePluginOptions reads the options (name without "plugin_opt_", value):
//   server, broker_id, tls_ca, tls_cert, tls_key, tls_server_name, insecure_plaintext
//     (sync_client::CheckConnection's rules);
//   mode: stream (default) or query;
//   cache_dir: directory of the policy cache (written by the mosquitto user); unset: no cache;
//   cache_interval: seconds between two cache writes of deltas (1 to 3600, default 60);
//   heartbeat_interval: seconds (1 to 60, default 10);
//   admit_without_policy: true or false (default false);
//   query_timeout_ms: the deadline of a query (10 to 10000, default 500);
//   log_level: debug, info, warning or error.
// INVALID_ARGUMENT "plugin_opt_<name>: <why>" for an unknown option, a bad value, or
// settings that cannot work.
absl::StatusOr<PluginOptions> ParsePluginOptions(
    const std::vector<std::pair<std::string, std::string>>& options);

}  // namespace fleetca::plugin
