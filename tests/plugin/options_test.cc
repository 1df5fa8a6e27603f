#include "plugin/options.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

namespace fleetca::plugin {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

using Options = std::vector<std::pair<std::string, std::string>>;

// A TLS configuration that passes CheckConnection.
Options Tls() {
  return {{"server", "fleetca.example.com:8443"},
          {"broker_id", "broker-1"},
          {"tls_ca", "/etc/mosquitto/fleetca/ca.pem"},
          {"tls_cert", "/etc/mosquitto/fleetca/broker.pem"},
          {"tls_key", "/etc/mosquitto/fleetca/broker.key"}};
}

Options With(Options base, const std::string& name, const std::string& value) {
  base.emplace_back(name, value);
  return base;
}

Options Without(Options base, const std::string& name) {
  Options out;
  for (auto& [n, v] : base) {
    if (n != name) out.emplace_back(n, v);
  }
  return out;
}

TEST(ParsePluginOptionsTest, FullSet) {
  Options options = Tls();
  options.insert(options.end(), {{"tls_server_name", "fleetca.internal"},
                                 {"mode", "query"},
                                 {"cache_dir", "/var/lib/mosquitto/fleetca"},
                                 {"cache_interval", "30"},
                                 {"heartbeat_interval", "5"},
                                 {"admit_without_policy", "true"},
                                 {"query_timeout_ms", "250"},
                                 {"log_level", "debug"}});
  absl::StatusOr<PluginOptions> parsed = ParsePluginOptions(options);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  const sync_client::ConnectionConfig& c = parsed->follower.connection;
  EXPECT_EQ(c.server, "fleetca.example.com:8443");
  EXPECT_EQ(c.broker_id, "broker-1");
  EXPECT_EQ(c.tls_ca, "/etc/mosquitto/fleetca/ca.pem");
  EXPECT_EQ(c.tls_cert, "/etc/mosquitto/fleetca/broker.pem");
  EXPECT_EQ(c.tls_key, "/etc/mosquitto/fleetca/broker.key");
  EXPECT_EQ(c.tls_server_name, "fleetca.internal");
  EXPECT_FALSE(c.insecure_plaintext);
  EXPECT_EQ(parsed->mode, Mode::kQuery);
  EXPECT_EQ(parsed->follower.cache_path, "/var/lib/mosquitto/fleetca/fleetca-policy.cache");
  EXPECT_EQ(parsed->follower.cache_interval, absl::Seconds(30));
  EXPECT_EQ(parsed->follower.heartbeat_interval, absl::Seconds(5));
  EXPECT_TRUE(parsed->enforcer.admit_without_policy);
  EXPECT_EQ(parsed->query_timeout, absl::Milliseconds(250));
  EXPECT_EQ(parsed->log_level, LogLevel::kDebug);
}

TEST(ParsePluginOptionsTest, Defaults) {
  absl::StatusOr<PluginOptions> parsed = ParsePluginOptions(Tls());
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->mode, Mode::kStream);
  EXPECT_EQ(parsed->follower.cache_path, "");  // no cache_dir: no cache
  EXPECT_EQ(parsed->follower.cache_interval, absl::Seconds(60));
  EXPECT_EQ(parsed->follower.heartbeat_interval, absl::Seconds(10));
  EXPECT_FALSE(parsed->enforcer.admit_without_policy);
  EXPECT_EQ(parsed->enforcer.max_offline_cached, EnforcerOptions().max_offline_cached);
  EXPECT_EQ(parsed->query_timeout, absl::Milliseconds(500));
  EXPECT_EQ(parsed->log_level, LogLevel::kInfo);
}

TEST(ParsePluginOptionsTest, InsecurePlaintextOnLoopback) {
  for (const char* server : {"127.0.0.1:50051", "localhost:50051", "[::1]:50051"}) {
    absl::StatusOr<PluginOptions> parsed = ParsePluginOptions(
        {{"server", server}, {"broker_id", "b1"}, {"insecure_plaintext", "true"}});
    ASSERT_TRUE(parsed.ok()) << server << ": " << parsed.status();
    EXPECT_TRUE(parsed->follower.connection.insecure_plaintext);
    EXPECT_EQ(parsed->follower.connection.server, server);
  }
}

TEST(ParsePluginOptionsTest, ValuesAccepted) {
  struct Case {
    const char* name;
    const char* value;
  };
  const std::vector<Case> cases = {
      {"mode", "stream"},
      {"mode", "query"},
      {"insecure_plaintext", "false"},
      {"admit_without_policy", "false"},
      {"admit_without_policy", "true"},
      {"cache_interval", "1"},
      {"cache_interval", "3600"},
      {"heartbeat_interval", "1"},
      {"heartbeat_interval", "60"},
      {"query_timeout_ms", "10"},
      {"query_timeout_ms", "10000"},
      {"log_level", "info"},
      {"log_level", "warning"},
      {"log_level", "error"},
      {"cache_dir", "/"},
      {"tls_server_name", "x.example"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<PluginOptions> parsed = ParsePluginOptions(With(Tls(), c.name, c.value));
    EXPECT_TRUE(parsed.ok()) << c.name << "=" << c.value << ": " << parsed.status();
  }
  EXPECT_EQ(ParsePluginOptions(With(Tls(), "cache_interval", "3600"))->follower.cache_interval,
            absl::Seconds(3600));
  EXPECT_EQ(ParsePluginOptions(With(Tls(), "heartbeat_interval", "60"))
                ->follower.heartbeat_interval,
            absl::Seconds(60));
  EXPECT_EQ(ParsePluginOptions(With(Tls(), "query_timeout_ms", "10000"))->query_timeout,
            absl::Seconds(10));
  EXPECT_EQ(ParsePluginOptions(With(Tls(), "log_level", "error"))->log_level, LogLevel::kError);
  EXPECT_EQ(ParsePluginOptions(With(Tls(), "mode", "stream"))->mode, Mode::kStream);
  // The last occurrence of an option wins.
  EXPECT_EQ(ParsePluginOptions(With(With(Tls(), "mode", "query"), "mode", "stream"))->mode,
            Mode::kStream);
}

TEST(ParsePluginOptionsTest, EachErrorNamesItsOption) {
  struct Case {
    const char* test;
    Options options;
    const char* option;  // the option the message must name
  };
  const std::vector<Case> cases = {
      {"unknown_option", With(Tls(), "colour", "blue"), "colour"},
      {"prefixed_name", With(Tls(), "plugin_opt_mode", "stream"), "plugin_opt_mode"},
      {"bad_mode", With(Tls(), "mode", "poll"), "mode"},
      {"empty_mode", With(Tls(), "mode", ""), "mode"},
      {"bad_bool_insecure", With(Tls(), "insecure_plaintext", "yes"), "insecure_plaintext"},
      {"bad_bool_admit", With(Tls(), "admit_without_policy", "1"), "admit_without_policy"},
      {"bad_bool_case", With(Tls(), "admit_without_policy", "True"), "admit_without_policy"},
      {"cache_interval_zero", With(Tls(), "cache_interval", "0"), "cache_interval"},
      {"cache_interval_too_big", With(Tls(), "cache_interval", "3601"), "cache_interval"},
      {"cache_interval_negative", With(Tls(), "cache_interval", "-5"), "cache_interval"},
      {"cache_interval_not_a_number", With(Tls(), "cache_interval", "ten"), "cache_interval"},
      {"cache_interval_fraction", With(Tls(), "cache_interval", "1.5"), "cache_interval"},
      {"heartbeat_zero", With(Tls(), "heartbeat_interval", "0"), "heartbeat_interval"},
      {"heartbeat_too_big", With(Tls(), "heartbeat_interval", "61"), "heartbeat_interval"},
      {"heartbeat_empty", With(Tls(), "heartbeat_interval", ""), "heartbeat_interval"},
      {"query_timeout_too_small", With(Tls(), "query_timeout_ms", "9"), "query_timeout_ms"},
      {"query_timeout_too_big", With(Tls(), "query_timeout_ms", "10001"), "query_timeout_ms"},
      {"query_timeout_huge", With(Tls(), "query_timeout_ms", "99999999999999999999"),
       "query_timeout_ms"},
      {"bad_log_level", With(Tls(), "log_level", "verbose"), "log_level"},
      {"relative_cache_dir", With(Tls(), "cache_dir", "var/lib/mosquitto"), "cache_dir"},
      {"dot_cache_dir", With(Tls(), "cache_dir", "./cache"), "cache_dir"},
      {"empty_cache_dir", With(Tls(), "cache_dir", ""), "cache_dir"},
      {"missing_server", Without(Tls(), "server"), "server"},
      {"missing_broker_id", Without(Tls(), "broker_id"), "broker_id"},
      {"bad_broker_id", With(Tls(), "broker_id", "Broker_1"), "broker_id"},
      {"missing_tls_ca", Without(Tls(), "tls_ca"), "tls_ca"},
      {"missing_tls_cert", Without(Tls(), "tls_cert"), "tls_cert"},
      {"missing_tls_key", Without(Tls(), "tls_key"), "tls_key"},
      {"insecure_plaintext_remote",
       Options{{"server", "fleetca.example.com:8443"},
               {"broker_id", "b1"},
               {"insecure_plaintext", "true"}},
       "server"},
      {"insecure_plaintext_remote_ip",
       Options{{"server", "10.0.0.1:50051"}, {"broker_id", "b1"}, {"insecure_plaintext", "true"}},
       "server"},
      {"nothing", Options{}, "server"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<PluginOptions> parsed = ParsePluginOptions(c.options);
    ASSERT_FALSE(parsed.ok()) << c.test;
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument) << c.test;
    EXPECT_THAT(std::string(parsed.status().message()),
                StartsWith(std::string("plugin_opt_") + c.option + ": "))
        << c.test << ": " << parsed.status();
  }
}

TEST(ParsePluginOptionsTest, ABadValueIsReportedEvenWhenTheConnectionIsIncomplete) {
  // The option checks come first: the message names the bad option, not a missing one.
  absl::StatusOr<PluginOptions> parsed = ParsePluginOptions({{"heartbeat_interval", "0"}});
  ASSERT_FALSE(parsed.ok());
  EXPECT_THAT(std::string(parsed.status().message()),
              StartsWith("plugin_opt_heartbeat_interval: "));
  EXPECT_THAT(std::string(parsed.status().message()), HasSubstr("1 to 60"));
}

TEST(ParsePluginOptionsTest, CachePathIsDerivedFromCacheDir) {
  absl::StatusOr<PluginOptions> parsed =
      ParsePluginOptions(With(Tls(), "cache_dir", "/var/cache/fleetca"));
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->follower.cache_path, std::string("/var/cache/fleetca/") + kCacheFileName);
  EXPECT_EQ(std::string(kCacheFileName), "fleetca-policy.cache");
}

}  // namespace
}  // namespace fleetca::plugin
