#include "sync_agent/config.h"

#include "absl/strings/str_cat.h"

namespace fleetca::sync_agent {
namespace {

absl::Status Invalid(absl::string_view flag, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat("--", flag, ": ", why));
}

}  // namespace

absl::Status CheckConfig(const AgentConfig& c) {
  if (absl::Status status = sync_client::CheckConnection(c, "--"); !status.ok()) return status;
  if (c.paths.cafile.empty()) return Invalid("cafile", "required (mosquitto's cafile)");
  if (c.paths.crlfile.empty()) return Invalid("crlfile", "required (mosquitto's crlfile)");
  if (c.paths.acl_file.empty()) return Invalid("acl_file", "required (mosquitto's acl_file)");
  if (c.paths.cafile == c.paths.crlfile || c.paths.cafile == c.paths.acl_file ||
      c.paths.crlfile == c.paths.acl_file) {
    return Invalid("cafile", "--cafile, --crlfile and --acl_file must be three different files");
  }
  if (!c.mosquitto_pid_file.empty() && c.signal_pid != 0) {
    return Invalid("signal_pid", "give --mosquitto_pid_file or --signal_pid, not both");
  }
  if (c.signal_pid != 0 && c.signal_pid <= 1) {
    return Invalid("signal_pid", "must be the broker's process id (above 1)");
  }
  if (c.heartbeat_interval < absl::Seconds(1) || c.heartbeat_interval > absl::Seconds(60)) {
    return Invalid("heartbeat_interval", "must be between 1s and 60s");
  }
  if (c.min_write_interval < absl::ZeroDuration()) {
    return Invalid("min_write_interval", "must not be negative");
  }
  return absl::OkStatus();
}

}  // namespace fleetca::sync_agent
