// fleetca-sync: keeps a stock mosquitto's cafile, crlfile and acl_file in step with
// fleetca's policy (BrokerSyncService.Watch) and makes it reload them (SIGHUP). The logic
// lives in the fleetca_sync_agent library; main parses flags and wires. docs/fleetca-sync.md
// says how to run it.

#include <grpcpp/grpcpp.h>
#include <pthread.h>
#include <signal.h>

#include <cstdlib>
#include <memory>
#include <string>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/logging.h"
#include "sync_agent/agent.h"
#include "sync_agent/config.h"
#include "sync_agent/publisher.h"

ABSL_FLAG(std::string, server, "", "host:port of fleetca's gRPC API (required)");
ABSL_FLAG(std::string, tls_ca, "", "PEM trust anchor(s) for fleetca's server certificate");
ABSL_FLAG(std::string, tls_cert, "",
          "the agent's client certificate (PEM, chain after it): a BROKER identity whose name "
          "is --broker_id");
ABSL_FLAG(std::string, tls_key, "", "the private key of --tls_cert (PEM, mode 0600)");
ABSL_FLAG(std::string, tls_server_name, "",
          "the name to expect in fleetca's server certificate, when not --server's host");
ABSL_FLAG(bool, insecure_plaintext, false,
          "DEVELOPMENT ONLY: connect without TLS (only to a loopback --server; the server must "
          "run with --insecure_plaintext too)");
ABSL_FLAG(std::string, broker_id, "", "the broker's id in fleetca (required)");
ABSL_FLAG(std::string, cafile, "", "mosquitto's cafile, written by the agent (required)");
ABSL_FLAG(std::string, crlfile, "", "mosquitto's crlfile, written by the agent (required)");
ABSL_FLAG(std::string, acl_file, "", "mosquitto's acl_file, written by the agent (required)");
ABSL_FLAG(std::string, mosquitto_pid_file, "",
          "mosquitto's pid_file: the broker sent SIGHUP after files change (read each time)");
ABSL_FLAG(int64_t, signal_pid, 0,
          "the broker's process id, instead of --mosquitto_pid_file; with neither, files are "
          "only written");
ABSL_FLAG(absl::Duration, heartbeat_interval, absl::Seconds(10),
          "heartbeat interval asked of the server (1s to 60s); the stream is reopened after "
          "three intervals of silence");
ABSL_FLAG(absl::Duration, min_write_interval, absl::Milliseconds(200),
          "the least time between two writes of changes (a snapshot is written at once)");
ABSL_FLAG(std::string, log_level, "info", "debug, info, warning or error");

namespace {

using fleetca::LogError;
using fleetca::LogInfo;

int Main(int argc, char** argv) {
  // SIGTERM and SIGINT are taken by one thread (sigwait); every other thread starts with
  // them blocked. First of all: gRPC starts threads of its own as soon as it is touched
  // (credentials included), and a thread with them unblocked would die of them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  absl::SetProgramUsageMessage(
      "fleetca-sync --server=HOST:PORT --broker_id=ID --tls_ca=... --tls_cert=... "
      "--tls_key=... --cafile=... --crlfile=... --acl_file=... "
      "[--mosquitto_pid_file=...|--signal_pid=PID]\n"
      "Follows fleetca's BrokerSyncService.Watch and keeps a stock mosquitto's cafile, "
      "crlfile and acl_file in step with it (see docs/fleetca-sync.md).");
  std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  if (args.size() > 1) {
    LogError("unexpected argument", {{"argument", args[1]}});
    return 2;
  }
  fleetca::LogLevel level;
  if (!fleetca::ParseLogLevel(absl::GetFlag(FLAGS_log_level), &level)) {
    LogError("--log_level: expected debug, info, warning or error");
    return 2;
  }
  fleetca::SetMinLogLevel(level);

  fleetca::sync_agent::AgentConfig config;
  config.server = absl::GetFlag(FLAGS_server);
  config.tls_ca = absl::GetFlag(FLAGS_tls_ca);
  config.tls_cert = absl::GetFlag(FLAGS_tls_cert);
  config.tls_key = absl::GetFlag(FLAGS_tls_key);
  config.tls_server_name = absl::GetFlag(FLAGS_tls_server_name);
  config.insecure_plaintext = absl::GetFlag(FLAGS_insecure_plaintext);
  config.broker_id = absl::GetFlag(FLAGS_broker_id);
  config.paths.cafile = absl::GetFlag(FLAGS_cafile);
  config.paths.crlfile = absl::GetFlag(FLAGS_crlfile);
  config.paths.acl_file = absl::GetFlag(FLAGS_acl_file);
  config.mosquitto_pid_file = absl::GetFlag(FLAGS_mosquitto_pid_file);
  config.signal_pid = absl::GetFlag(FLAGS_signal_pid);
  config.heartbeat_interval = absl::GetFlag(FLAGS_heartbeat_interval);
  config.min_write_interval = absl::GetFlag(FLAGS_min_write_interval);
  if (absl::Status status = fleetca::sync_agent::CheckConfig(config); !status.ok()) {
    LogError("bad configuration", {{"error", std::string(status.message())}});
    return 2;
  }
  auto credentials = fleetca::sync_client::ChannelCredentialsFor(config);
  if (!credentials.ok()) {
    LogError("cannot load the TLS files", {{"error", credentials.status().ToString()}});
    return 2;
  }

  std::shared_ptr<grpc::Channel> channel = fleetca::sync_client::NewChannel(config, *credentials);
  std::unique_ptr<fleetca::v1::BrokerSyncService::Stub> stub =
      fleetca::v1::BrokerSyncService::NewStub(channel);

  std::unique_ptr<fleetca::sync_agent::BrokerSignaller> signaller;
  if (!config.mosquitto_pid_file.empty()) {
    signaller = std::make_unique<fleetca::sync_agent::PidFileSignaller>(config.mosquitto_pid_file);
  } else if (config.signal_pid != 0) {
    signaller =
        std::make_unique<fleetca::sync_agent::PidSignaller>(static_cast<pid_t>(config.signal_pid));
  }
  // reload_pending: the first publication signals the broker even when the files on disk
  // are already current (a previous run may have died between a rename and its signal).
  fleetca::sync_agent::Publisher publisher(config.paths, signaller.get(), absl::Now,
                                           /*reload_pending=*/true);
  fleetca::sync_agent::AgentOptions options;
  options.broker_id = config.broker_id;
  options.heartbeat_interval = config.heartbeat_interval;
  options.min_write_interval = config.min_write_interval;
  fleetca::sync_agent::Agent agent(*stub, publisher, options);

  std::thread signal_thread([&] {
    int signal = 0;
    sigwait(&stop_signals, &signal);
    LogInfo("stopping", {{"signal", signal == SIGTERM ? "SIGTERM" : "SIGINT"}});
    agent.Stop();
  });
  LogInfo("fleetca-sync starting", {{"server", config.server},
                                    {"broker_id", config.broker_id},
                                    {"cafile", config.paths.cafile},
                                    {"crlfile", config.paths.crlfile},
                                    {"acl_file", config.paths.acl_file}});
  agent.Run();  // returns only after Stop, i.e. after the signal thread took a signal
  signal_thread.join();
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return Main(argc, argv); }
