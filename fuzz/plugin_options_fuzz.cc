// The mosquitto plugin's options (plugin::ParsePluginOptions, from mosquitto.conf's
// `plugin_opt_<name> <value>` lines): one option per input line, "name value" (a leading
// "plugin_opt_" is dropped, as mosquitto does). A bad option must be INVALID_ARGUMENT
// naming it ("plugin_opt_<name>: ..."); accepted options must be within the documented
// ranges (plugin/options.h).

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/strip.h"
#include "fuzz/fuzz_util.h"
#include "plugin/options.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace fleetca;
  std::vector<std::pair<std::string, std::string>> options;
  for (absl::string_view line : fuzz::Fields(fuzz::AsView(data, size), 64)) {
    absl::ConsumePrefix(&line, "plugin_opt_");
    const size_t sp = line.find(' ');
    if (sp == absl::string_view::npos) {
      options.emplace_back(std::string(line), "");
    } else {
      options.emplace_back(std::string(line.substr(0, sp)), std::string(line.substr(sp + 1)));
    }
  }
  absl::StatusOr<plugin::PluginOptions> parsed = plugin::ParsePluginOptions(options);
  if (!parsed.ok()) {
    FUZZ_CHECK(absl::IsInvalidArgument(parsed.status()), "a refusal that is not INVALID_ARGUMENT");
    FUZZ_CHECK(absl::StartsWith(parsed.status().message(), "plugin_opt_"),
               "a refusal that does not name the option");
    return 0;
  }
  const plugin::PluginOptions& o = *parsed;
  FUZZ_CHECK(o.follower.cache_interval >= absl::Seconds(1) &&
                 o.follower.cache_interval <= absl::Seconds(3600),
             "cache_interval out of range");
  FUZZ_CHECK(o.follower.heartbeat_interval >= absl::Seconds(1) &&
                 o.follower.heartbeat_interval <= absl::Seconds(60),
             "heartbeat_interval out of range");
  FUZZ_CHECK(o.query_timeout >= absl::Milliseconds(10) && o.query_timeout <= absl::Seconds(10),
             "query_timeout out of range");
  return 0;
}
