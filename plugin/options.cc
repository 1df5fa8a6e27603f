#include "plugin/options.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "sync_client/connection.h"

namespace fleetca::plugin {
namespace {

absl::Status Invalid(absl::string_view name, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat("plugin_opt_", name, ": ", why));
}

absl::Status ParseBool(absl::string_view name, const std::string& value, bool* out) {
  if (value == "true") {
    *out = true;
  } else if (value == "false") {
    *out = false;
  } else {
    return Invalid(name, "expected true or false");
  }
  return absl::OkStatus();
}

absl::Status ParseInt(absl::string_view name, const std::string& value, int64_t min, int64_t max,
                      int64_t* out) {
  if (!absl::SimpleAtoi(value, out) || *out < min || *out > max) {
    return Invalid(name, absl::StrCat("expected a whole number from ", min, " to ", max));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<PluginOptions> ParsePluginOptions(
    const std::vector<std::pair<std::string, std::string>>& options) {
  PluginOptions out;
  sync_client::ConnectionConfig& c = out.follower.connection;
  std::string cache_dir;
  for (const auto& [name, value] : options) {
    int64_t number = 0;
    absl::Status status;
    if (name == "server") {
      c.server = value;
    } else if (name == "broker_id") {
      c.broker_id = value;
    } else if (name == "tls_ca") {
      c.tls_ca = value;
    } else if (name == "tls_cert") {
      c.tls_cert = value;
    } else if (name == "tls_key") {
      c.tls_key = value;
    } else if (name == "tls_server_name") {
      c.tls_server_name = value;
    } else if (name == "insecure_plaintext") {
      status = ParseBool(name, value, &c.insecure_plaintext);
    } else if (name == "mode") {
      if (value == "stream") {
        out.mode = Mode::kStream;
      } else if (value == "query") {
        out.mode = Mode::kQuery;
      } else {
        status = Invalid(name, "expected stream or query");
      }
    } else if (name == "cache_dir") {
      if (value.empty() || value[0] != '/') {
        status = Invalid(name, "expected an absolute directory path");
      }
      cache_dir = value;
    } else if (name == "cache_interval") {
      status = ParseInt(name, value, 1, 3600, &number);
      out.follower.cache_interval = absl::Seconds(number);
    } else if (name == "heartbeat_interval") {
      status = ParseInt(name, value, 1, 60, &number);
      out.follower.heartbeat_interval = absl::Seconds(number);
    } else if (name == "admit_without_policy") {
      status = ParseBool(name, value, &out.enforcer.admit_without_policy);
    } else if (name == "query_timeout_ms") {
      status = ParseInt(name, value, 10, 10000, &number);
      out.query_timeout = absl::Milliseconds(number);
    } else if (name == "log_level") {
      if (!ParseLogLevel(value, &out.log_level)) {
        status = Invalid(name, "expected debug, info, warning or error");
      }
    } else {
      status = Invalid(name, "unknown option");
    }
    if (!status.ok()) return status;
  }
  if (absl::Status status = sync_client::CheckConnection(c, "plugin_opt_"); !status.ok()) {
    return status;
  }
  if (!cache_dir.empty()) {
    out.follower.cache_path = absl::StrCat(cache_dir, "/", kCacheFileName);
  }
  return out;
}

}  // namespace fleetca::plugin
