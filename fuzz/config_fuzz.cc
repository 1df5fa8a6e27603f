// The server's configuration (app::LoadConfig: flags, then FLEETCA_* environment
// variables, then defaults) on hostile argv tokens and environment values.
//
// Input: one item per line. "FLEETCA_NAME=value" sets that environment variable for the
// call; any other line is an argv token. LoadConfig is fuzzed in-process, so three things
// of Abseil's flags library are handled by the harness:
// - flags are global: every call runs under an absl::FlagSaver, which restores them;
// - absl::ParseCommandLine exits the process on an unknown flag, a value that does not
//   parse, --help or --version, and reads files for --flagfile/--fromenv: tokens are kept
//   only when they name a flag LoadConfig defines, with a value that flag accepts
//   (CommandLineFlag::ParseFrom, the parser ParseCommandLine itself uses); so what is
//   fuzzed is everything LoadConfig does with the values, not Abseil's parser;
// - SetProgramUsageMessage may be called once per process: the link wraps it
//   (-Wl,--wrap) so that later calls do nothing.
// The KEK file flags and variables are pointed at a KEK file the harness writes, never at
// a path from the input (the fuzzer must not read /dev/zero or the machine's files).
//
// Invariants on success (server/app/config.h): a known command; 1 <= db_max_connections
// <= 1000; positive timeouts; crl_validity within [10m, 744h]; public_base_url http(s);
// an HTTP port within 0..65535 unless "off"; --insecure_plaintext serve only on a loopback
// listen address; a KEK for serve and init.

#include <sys/stat.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "absl/flags/commandlineflag.h"
#include "absl/flags/reflection.h"
#include "absl/strings/match.h"
#include "absl/strings/string_view.h"
#include "fuzz/fuzz_util.h"
#include "server/api/call_context.h"
#include "server/app/config.h"

// The real SetProgramUsageMessage, once; later calls (one per input) do nothing.
extern "C" void __real__ZN4absl7debian322SetProgramUsageMessageENS0_11string_viewE(
    absl::string_view);
extern "C" void __wrap__ZN4absl7debian322SetProgramUsageMessageENS0_11string_viewE(
    absl::string_view message) {
  static bool called = false;
  if (called) return;
  called = true;
  __real__ZN4absl7debian322SetProgramUsageMessageENS0_11string_viewE(message);
}

// rpc_observer.cc (compiled in for ParseAccessLog) refers to these two from
// call_context.cc, which would bring the auth and storage libraries; only a running gRPC
// server calls them, never LoadConfig.
namespace fleetca::api {
RequestContext RequestContextFor(const grpc::ServerContextBase&) { std::abort(); }
bool ValidRequestId(absl::string_view) { std::abort(); }
}  // namespace fleetca::api

namespace {

std::string kek_path;  // NOLINT: set once by LLVMFuzzerInitialize

// Flags the harness never passes: those that make ParseCommandLine exit or read files,
// and the KEK files (replaced by the harness's file).
bool Refused(absl::string_view name) {
  static const std::set<std::string, std::less<>> refused = {
      "flagfile", "fromenv", "tryfromenv", "undefok", "help", "helpfull", "helpshort",
      "helppackage", "helpon", "helpmatch", "version", "only_check_args",
      "kek_file", "previous_kek_files"};
  return refused.count(name) > 0;
}

// KeepToken: whether ParseCommandLine will take this "-..." token without exiting.
bool KeepToken(absl::string_view token, std::string* rewritten) {
  absl::string_view t = token;
  t.remove_prefix(absl::StartsWith(t, "--") ? 2 : 1);
  const size_t eq = t.find('=');
  const absl::string_view name = t.substr(0, eq);
  if (name.empty() || Refused(name)) return false;
  absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
  if (flag == nullptr) {
    // --noNAME for a bool flag.
    if (eq != absl::string_view::npos || !absl::StartsWith(name, "no")) return false;
    absl::CommandLineFlag* negated = absl::FindCommandLineFlag(name.substr(2));
    if (negated == nullptr || Refused(name.substr(2)) || !negated->IsOfType<bool>()) return false;
    *rewritten = std::string(token);
    return true;
  }
  if (flag->IsRetired()) return false;
  if (eq == absl::string_view::npos) {
    if (!flag->IsOfType<bool>()) return false;  // the value would be the next token
    *rewritten = std::string(token);
    return true;
  }
  std::string error;
  if (!flag->ParseFrom(t.substr(eq + 1), &error)) return false;
  *rewritten = std::string(token);
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  char dir[] = "/tmp/fleetca-config-fuzz-XXXXXX";
  if (mkdtemp(dir) == nullptr) std::abort();
  kek_path = std::string(dir) + "/kek";
  std::ofstream(kek_path) << "kek-1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n";
  chmod(kek_path.c_str(), 0600);
  for (const char* v : {"FLEETCA_DATABASE_URL", "FLEETCA_LISTEN", "FLEETCA_KEK",
                        "FLEETCA_KEK_FILE", "FLEETCA_PREVIOUS_KEK_FILES"}) {
    unsetenv(v);
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace fleetca;
  const std::vector<absl::string_view> lines = fuzz::Fields(fuzz::AsView(data, size), 32);
  std::vector<std::string> tokens = {"fleetca-server"};
  std::vector<std::string> env_set;
  for (absl::string_view line : lines) {
    if (line.find('\0') != absl::string_view::npos) continue;  // argv and environ are C strings
    if (absl::StartsWith(line, "FLEETCA_") && line.find('=') != absl::string_view::npos) {
      const size_t eq = line.find('=');
      std::string name(line.substr(0, eq));
      std::string value(line.substr(eq + 1));
      if (name == "FLEETCA_KEK_FILE" || name == "FLEETCA_PREVIOUS_KEK_FILES") value = kek_path;
      setenv(name.c_str(), value.c_str(), 1);
      env_set.push_back(name);
      continue;
    }
    if (absl::StartsWith(line, "-") && line != "-" ) {
      if (line == "--") continue;  // would make the rest positional
      std::string token;
      if (KeepToken(line, &token)) tokens.push_back(token);
      continue;
    }
    tokens.emplace_back(line);
  }
  if (size % 3 == 0) tokens.push_back("--kek_file=" + kek_path);

  std::vector<char*> argv;
  for (std::string& t : tokens) argv.push_back(t.data());
  argv.push_back(nullptr);
  {
    absl::FlagSaver saver;
    absl::StatusOr<app::Config> config =
        app::LoadConfig(static_cast<int>(argv.size() - 1), argv.data());
    if (!config.ok()) {
      FUZZ_CHECK(absl::IsInvalidArgument(config.status()), "a refusal that is not INVALID_ARGUMENT");
    } else {
      const app::Config& c = *config;
      static const std::set<std::string> commands = {"serve", "migrate", "init",
                                                     "gen-kek", "verify-audit", "roles"};
      FUZZ_CHECK(commands.count(c.command) == 1, "unknown command accepted");
      if (c.command != "roles" && c.command != "gen-kek") {
        FUZZ_CHECK(!c.database_url.empty(), "no database URL");
        FUZZ_CHECK(c.db_max_connections >= 1 && c.db_max_connections <= 1000, "pool size");
        FUZZ_CHECK(c.db_acquire_timeout > absl::ZeroDuration() &&
                       c.db_connect_timeout > absl::ZeroDuration() &&
                       c.shutdown_grace >= absl::ZeroDuration(),
                   "timeouts");
        FUZZ_CHECK(c.crl_validity >= absl::Minutes(10) && c.crl_validity <= absl::Hours(744),
                   "crl_validity");
        FUZZ_CHECK(absl::StartsWith(c.public_base_url, "http://") ||
                       absl::StartsWith(c.public_base_url, "https://"),
                   "public_base_url");
        FUZZ_CHECK(c.http_listen == "off" || (c.http_port >= 0 && c.http_port <= 65535),
                   "http port");
        FUZZ_CHECK(c.max_request_bytes >= 4096, "max_request_bytes");
        if (c.command == "serve" && c.insecure_plaintext) {
          FUZZ_CHECK(app::CheckPlaintextListen(c.listen).ok(), "plaintext on a network address");
        }
        if (c.command == "serve" || c.command == "init") FUZZ_CHECK(!c.keks.empty(), "no KEK");
      }
      if (c.command == "gen-kek") FUZZ_CHECK(!c.kek_id.empty(), "gen-kek without an id");
    }
  }
  for (const std::string& name : env_set) unsetenv(name.c_str());
  return 0;
}
