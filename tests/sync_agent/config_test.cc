// fleetca-sync's configuration checks: each refusal names its flag.
#include "sync_agent/config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <functional>

#include "tests/sync_agent/sync_test_util.h"

namespace fleetca::sync_agent {
namespace {

using ::testing::HasSubstr;

AgentConfig Good() {
  AgentConfig c;
  c.server = "fleetca.example.com:50051";
  c.tls_ca = "/etc/fleetca-sync/ca.pem";
  c.tls_cert = "/etc/fleetca-sync/mqtt-1.pem";
  c.tls_key = "/etc/fleetca-sync/mqtt-1.pem";
  c.broker_id = "mqtt-1";
  c.paths = {"/var/lib/fleetca-sync/ca.pem", "/var/lib/fleetca-sync/crl.pem",
             "/var/lib/fleetca-sync/acl"};
  return c;
}

TEST(CheckConfigTest, AcceptsACompleteConfiguration) {
  EXPECT_TRUE(CheckConfig(Good()).ok()) << CheckConfig(Good());
  AgentConfig plain = Good();
  plain.insecure_plaintext = true;
  plain.server = "127.0.0.1:50051";
  plain.tls_ca = plain.tls_cert = plain.tls_key = "";
  EXPECT_TRUE(CheckConfig(plain).ok()) << CheckConfig(plain);
}

TEST(CheckConfigTest, RefusalsNameTheFlag) {
  struct Case {
    const char* name;
    std::function<void(AgentConfig&)> change;
    const char* flag;
  };
  const Case cases[] = {
      {"no_server", [](AgentConfig& c) { c.server.clear(); }, "--server"},
      {"no_broker", [](AgentConfig& c) { c.broker_id.clear(); }, "--broker_id"},
      {"bad_broker", [](AgentConfig& c) { c.broker_id = "Mqtt_1"; }, "--broker_id"},
      {"no_cafile", [](AgentConfig& c) { c.paths.cafile.clear(); }, "--cafile"},
      {"no_crlfile", [](AgentConfig& c) { c.paths.crlfile.clear(); }, "--crlfile"},
      {"no_acl_file", [](AgentConfig& c) { c.paths.acl_file.clear(); }, "--acl_file"},
      {"same_file", [](AgentConfig& c) { c.paths.acl_file = c.paths.cafile; }, "different"},
      {"two_signals",
       [](AgentConfig& c) {
         c.mosquitto_pid_file = "/run/mosquitto.pid";
         c.signal_pid = 1234;
       },
       "--signal_pid"},
      {"pid_one", [](AgentConfig& c) { c.signal_pid = 1; }, "--signal_pid"},
      {"heartbeat_short", [](AgentConfig& c) { c.heartbeat_interval = absl::Milliseconds(500); },
       "--heartbeat_interval"},
      {"heartbeat_long", [](AgentConfig& c) { c.heartbeat_interval = absl::Seconds(61); },
       "--heartbeat_interval"},
      {"negative_interval", [](AgentConfig& c) { c.min_write_interval = absl::Milliseconds(-1); },
       "--min_write_interval"},
      {"no_tls_ca", [](AgentConfig& c) { c.tls_ca.clear(); }, "--tls_ca"},
      {"no_tls_cert", [](AgentConfig& c) { c.tls_cert.clear(); }, "--tls_cert"},
      {"no_tls_key", [](AgentConfig& c) { c.tls_key.clear(); }, "--tls_key"},
      {"plaintext_remote", [](AgentConfig& c) { c.insecure_plaintext = true; }, "loopback"},
  };
  for (const Case& c : cases) {
    AgentConfig config = Good();
    c.change(config);
    const absl::Status status = CheckConfig(config);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << c.name;
    EXPECT_THAT(std::string(status.message()), HasSubstr(c.flag)) << c.name << ": " << status;
  }
}

TEST(CheckConfigTest, LoopbackTargets) {
  for (const char* t : {"127.0.0.1:50051", "127.1.2.3:1", "localhost:50051", "[::1]:50051",
                        "unix:/run/fleetca.sock"}) {
    EXPECT_TRUE(sync_client::IsLoopbackTarget(t)) << t;
  }
  for (const char* t : {"10.0.0.1:50051", "fleetca.example.com:50051", "[::2]:1", "0.0.0.0:1",
                        "localhost.example.com:1"}) {
    EXPECT_FALSE(sync_client::IsLoopbackTarget(t)) << t;
  }
}

TEST(ChannelCredentialsTest, KeyReadableByOthersIsRefused) {
  const std::string dir = testing::MakeTempDir("creds");
  testing::WriteFileOrDie(dir + "/ca.pem", "x");
  testing::WriteFileOrDie(dir + "/cert.pem", "x");
  testing::WriteFileOrDie(dir + "/key.pem", "x", 0644);
  AgentConfig c = Good();
  c.tls_ca = dir + "/ca.pem";
  c.tls_cert = dir + "/cert.pem";
  c.tls_key = dir + "/key.pem";
  EXPECT_EQ(sync_client::ChannelCredentialsFor(c).status().code(), absl::StatusCode::kFailedPrecondition);
  c.tls_ca = dir + "/missing.pem";
  EXPECT_EQ(sync_client::ChannelCredentialsFor(c).status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace fleetca::sync_agent
