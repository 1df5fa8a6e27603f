// fleetca-sync's files in a real mosquitto 2.0 (Debian's /usr/sbin/mosquitto), driven by
// the real clients (mosquitto_pub, mosquitto_sub): the policy a stream of WatchResponse
// messages describes is enforced, and changes reach the running broker through a SIGHUP
// without a restart.
#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "sync_agent/publisher.h"
#include "sync_agent/render.h"
#include "sync_agent/state.h"
#include "tests/sync_agent/process.h"
#include "tests/sync_agent/sync_test_util.h"

namespace fleetca::sync_agent {
namespace {

using namespace ::fleetca::sync_agent::testing;  // NOLINT

constexpr char kMosquitto[] = "/usr/sbin/mosquitto";
constexpr char kPub[] = "/usr/bin/mosquitto_pub";
constexpr char kSub[] = "/usr/bin/mosquitto_sub";
constexpr absl::Duration kPatience = absl::Seconds(10);

int FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    close(fd);
    return 0;
  }
  close(fd);
  return ntohs(addr.sin_port);
}

bool Listening(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  const bool ok = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  close(fd);
  return ok;
}

// An MQTT client's credentials, as files.
struct Client {
  std::string name;  // certificate CN = MQTT client id = username
  std::string cert;
  std::string key;
};

class MosquittoTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (access(kMosquitto, X_OK) != 0) {
      GTEST_SKIP() << kMosquitto << " not found: install Debian's mosquitto and mosquitto-clients "
                   << "(scripts/deps.sh) to run the real-broker test";
    }
    ASSERT_EQ(access(kPub, X_OK), 0) << kPub << " missing: install mosquitto-clients";
    ASSERT_EQ(access(kSub, X_OK), 0) << kSub << " missing: install mosquitto-clients";
    dir_ = MakeTempDir("mosquitto");
    paths_ = {dir_ + "/ca.pem", dir_ + "/crl.pem", dir_ + "/acl"};

    // 1. A PKI like fleetca's: root, and intermediates for devices, operators and brokers.
    pki_.AddCa("root", "Mosq Root");
    pki_.AddCa("devices", "Mosq Devices", "root");
    pki_.AddCa("operators", "Mosq Operators", "root");
    pki_.AddCa("brokers", "Mosq Brokers", "root");
    a_ = MakeClient("devices", "dev-A");
    b_ = MakeClient("devices", "dev-B");
    c_ = MakeClient("devices", "dev-C");
    watcher_ = MakeClient("operators", "watcher1");
    watcher2_ = MakeClient("operators", "watcher2");
    subonly_ = MakeClient("operators", "subonly1");
    WriteFileOrDie(dir_ + "/root.pem", pki_.ca("root").pem);
  }

  void TearDown() override {
    subscribers_.clear();
    if (broker_ != nullptr) {
      broker_->Signal(SIGTERM);
      broker_->Wait(absl::Seconds(5));
    }
  }

  Client MakeClient(const std::string& ca, const std::string& name) {
    TestLeaf leaf = pki_.Issue(ca, name);
    serials_[name] = leaf.serial;
    Client c{name, dir_ + "/" + name + ".pem", dir_ + "/" + name + ".key"};
    WriteFileOrDie(c.cert, leaf.cert_pem);
    WriteFileOrDie(c.key, leaf.key_pem, 0600);
    return c;
  }

  // The policy: dev-A, dev-B, dev-C active with the built-in device profile (every device
  // its own subtree), dev-A also denied devices/dev-A/secret; watcher1 reads everything;
  // subonly1 may only subscribe. dev-B's certificate is revoked in the devices CRL.
  std::vector<v1::SyncChange> Policy() {
    return {
        Change(Issuer("root", v1::ISSUER_PURPOSE_ROOT, pki_.ca("root").pem)),
        Change(Issuer("devices", v1::ISSUER_PURPOSE_DEVICES, pki_.ca("devices").pem)),
        Change(Issuer("operators", v1::ISSUER_PURPOSE_OPERATORS, pki_.ca("operators").pem)),
        Change(Issuer("brokers", v1::ISSUER_PURPOSE_BROKERS, pki_.ca("brokers").pem)),
        Change(Crl("root", pki_.CrlDer("root", {}))),
        Change(Crl("devices", pki_.CrlDer("devices", {serials_["dev-B"]}))),
        Change(Crl("operators", pki_.CrlDer("operators", {}))),
        Change(Device("dev-A")),
        Change(Device("dev-B")),
        Change(Device("dev-C")),
        Change(Identity("watcher1")),
        Change(Identity("watcher2")),
        Change(Identity("subonly1")),
        Change(Profile("device", {{"devices/%c/#", v1::ACL_ACCESS_READWRITE}})),
        Change(Profile("watcher", {{"#", v1::ACL_ACCESS_READ}})),
        Change(Profile("no-secret", {{"devices/%c/secret", v1::ACL_ACCESS_DENY}})),
        Change(Profile("subscribe-only", {{"devices/#", v1::ACL_ACCESS_SUBSCRIBE}})),
        Change(Assignment(v1::ACL_SUBJECT_TYPE_ALL_DEVICES, "", "device")),
        Change(Assignment(v1::ACL_SUBJECT_TYPE_DEVICE, "dev-A", "no-secret")),
        Change(Assignment(v1::ACL_SUBJECT_TYPE_IDENTITY, "watcher1", "watcher")),
        Change(Assignment(v1::ACL_SUBJECT_TYPE_IDENTITY, "watcher2", "watcher")),
        Change(Assignment(v1::ACL_SUBJECT_TYPE_IDENTITY, "subonly1", "subscribe-only")),
    };
  }

  void StartBroker() {
    TestLeaf server = pki_.Issue("brokers", "localhost", /*server=*/true);
    const std::string certfile = dir_ + "/broker.pem";
    const std::string keyfile = dir_ + "/broker.key";
    WriteFileOrDie(certfile, server.cert_pem + pki_.ca("brokers").pem);  // leaf, then chain
    WriteFileOrDie(keyfile, server.key_pem, 0600);
    port_ = FreePort();
    ASSERT_NE(port_, 0);
    std::vector<std::string> lines;
    // mosquitto started as root drops to the `mosquitto` user after reading its
    // configuration unless told to stay (docs/fleetca-sync.md); as another user it stays.
    if (geteuid() == 0) lines.push_back("user root");
    for (const std::string& l :
         {std::string("per_listener_settings false"), std::string("persistence false"),
          std::string("log_dest stderr"), std::string("log_type all"),
          std::string("allow_anonymous false"), absl::StrCat("listener ", port_, " 127.0.0.1"),
          "cafile " + paths_.cafile, "certfile " + certfile, "keyfile " + keyfile,
          std::string("require_certificate true"), std::string("use_identity_as_username true"),
          "crlfile " + paths_.crlfile, "acl_file " + paths_.acl_file}) {
      lines.push_back(l);
    }
    const std::string conf = dir_ + "/mosquitto.conf";
    WriteFileOrDie(conf, absl::StrJoin(lines, "\n") + "\n");
    log_ = dir_ + "/mosquitto.log";
    broker_ = Process::Start({kMosquitto, "-c", conf}, log_);
    ASSERT_NE(broker_, nullptr);
    const absl::Time deadline = absl::Now() + kPatience;
    while (!Listening(port_)) {
      ASSERT_TRUE(broker_->Running()) << "mosquitto exited:\n" << ReadOrEmpty(log_);
      ASSERT_LT(absl::Now(), deadline) << "mosquitto does not listen:\n" << ReadOrEmpty(log_);
      absl::SleepFor(absl::Milliseconds(20));
    }
  }

  std::vector<std::string> ClientArgs(const char* tool, const Client& c) {
    return {tool,
            "-h",
            "127.0.0.1",
            "-p",
            absl::StrCat(port_),
            "--cafile",
            dir_ + "/root.pem",
            "--cert",
            c.cert,
            "--key",
            c.key,
            "-i",
            c.name};
  }

  RunResult Pub(const Client& c, const std::string& topic, const std::string& message) {
    std::vector<std::string> args = ClientArgs(kPub, c);
    for (const std::string& a : {std::string("-q"), std::string("1"), std::string("-t"), topic,
                                 std::string("-m"), message}) {
      args.push_back(a);
    }
    return RunProgram(args, kPatience, dir_);
  }

  // Subscribe starts mosquitto_sub (-v: "topic payload" lines) and returns its output file.
  std::string Subscribe(const Client& c, const std::string& filter) {
    const std::string out = absl::StrCat(dir_, "/sub-", c.name, ".out");
    std::vector<std::string> args = ClientArgs(kSub, c);
    for (const std::string& a : {std::string("-v"), std::string("-t"), filter}) args.push_back(a);
    subscribers_.push_back(Process::Start(args, out));
    EXPECT_NE(subscribers_.back(), nullptr);
    return out;
  }

  bool WaitForText(const std::string& file, const std::string& text) {
    const absl::Time deadline = absl::Now() + kPatience;
    while (absl::Now() < deadline) {
      if (absl::StrContains(ReadOrEmpty(file), text)) return true;
      absl::SleepFor(absl::Milliseconds(20));
    }
    return false;
  }

  // WaitUntilReceiving publishes probes from dev-C until the subscriber writing `out`
  // receives one (its SUBSCRIBE may take a moment).
  bool WaitUntilReceiving(const std::string& out) {
    for (int i = 0; i < 50; ++i) {
      const std::string probe = absl::StrCat("ready-", ++counter_);
      if (Pub(c_, "devices/dev-C/ready", probe).exit_code != 0) return false;
      const absl::Time until = absl::Now() + absl::Milliseconds(200);
      while (absl::Now() < until) {
        if (absl::StrContains(ReadOrEmpty(out), "devices/dev-C/ready " + probe)) return true;
        absl::SleepFor(absl::Milliseconds(10));
      }
    }
    return false;
  }

  // Delivered publishes a unique message as `who` on `topic`, then a marker from dev-C,
  // and says whether the watcher received the message before the marker (the broker
  // routes one connection's publish before it acknowledges it, and the second publish
  // starts after that).
  bool Delivered(const Client& who, const std::string& topic) {
    const std::string payload = absl::StrCat("msg-", ++counter_);
    Pub(who, topic, payload);
    const std::string marker = absl::StrCat("marker-", counter_);
    const RunResult r = Pub(c_, "devices/dev-C/marker", marker);
    EXPECT_EQ(r.exit_code, 0) << r.output;
    EXPECT_TRUE(WaitForText(watcher_out_, "devices/dev-C/marker " + marker))
        << "the watcher did not get the marker:\n"
        << ReadOrEmpty(watcher_out_) << "\n--- mosquitto:\n"
        << ReadOrEmpty(log_);
    return absl::StrContains(ReadOrEmpty(watcher_out_), absl::StrCat(topic, " ", payload, "\n"));
  }

  // Apply applies messages to the agent's state and publishes the rendered files.
  PublishResult Apply(Publisher& publisher, const std::vector<v1::WatchResponse>& messages) {
    for (const v1::WatchResponse& m : messages) {
      auto outcome = applier_.Apply(m);
      EXPECT_TRUE(outcome.ok()) << outcome.status();
    }
    PublishResult result = publisher.Publish(Render(applier_.state()));
    EXPECT_TRUE(result.errors.empty()) << absl::StrJoin(result.errors, "\n");
    return result;
  }

  TestPki pki_;
  std::string dir_;
  OutputPaths paths_;
  std::map<std::string, std::string> serials_;
  Client a_, b_, c_, watcher_, watcher2_, subonly_;
  int port_ = 0;
  std::string log_;
  std::unique_ptr<Process> broker_;
  std::vector<std::unique_ptr<Process>> subscribers_;
  std::string watcher_out_;
  StreamApplier applier_;
  int counter_ = 0;
};

TEST_F(MosquittoTest, StockMosquittoEnforcesThePolicyAndFollowsItsChangesOnSighup) {
  const absl::Time start = absl::Now();
  // 1. The snapshot, rendered and written before the broker starts.
  {
    Publisher first(paths_, nullptr);
    const PublishResult written = Apply(first, Snapshot(100, Policy(), 4));
    ASSERT_TRUE(written.cafile_written && written.crlfile_written && written.acl_file_written);
  }
  StartBroker();
  PidSignaller signaller(broker_->pid());
  Publisher publisher(paths_, &signaller);

  // 2. Subscribers: the watcher (read #) and the subscribe-only identity.
  watcher_out_ = Subscribe(watcher_, "devices/#");
  const std::string subonly_out = Subscribe(subonly_, "devices/#");
  ASSERT_TRUE(WaitUntilReceiving(watcher_out_)) << "the watcher never received dev-C's messages:\n"
                                                << ReadOrEmpty(watcher_out_) << "\n--- mosquitto:\n"
                                                << ReadOrEmpty(log_);

  // 3. dev-A publishes in its own subtree; not in dev-B's, not on the denied topic.
  EXPECT_TRUE(Delivered(a_, "devices/dev-A/x"));
  EXPECT_FALSE(Delivered(a_, "devices/dev-B/x"));
  EXPECT_FALSE(Delivered(a_, "devices/dev-A/secret")) << "deny must win over readwrite";
  EXPECT_TRUE(Delivered(a_, "devices/dev-A/not-secret"));

  // 4. dev-B's certificate is in the CRL: the TLS handshake fails.
  const RunResult b = Pub(b_, "devices/dev-B/x", "revoked");
  EXPECT_NE(b.exit_code, 0) << "mosquitto accepted a revoked certificate:\n" << b.output;

  // 5. A DENY on dev-A's whole subtree (a device assignment), at revision 101: only the
  // acl_file changes, the broker is signalled, and live sessions follow without a restart.
  const PublishResult denied = Apply(
      publisher,
      {Changes(101, {Change(Profile("quarantine", {{"devices/%c/#", v1::ACL_ACCESS_DENY}})),
                     Change(Assignment(v1::ACL_SUBJECT_TYPE_DEVICE, "dev-A", "quarantine"))})});
  EXPECT_TRUE(denied.acl_file_written);
  EXPECT_FALSE(denied.cafile_written || denied.crlfile_written);
  EXPECT_TRUE(denied.signalled);
  const pid_t pid = broker_->pid();
  bool blocked = false;
  const absl::Time deadline = absl::Now() + kPatience;
  while (!blocked && absl::Now() < deadline) blocked = !Delivered(a_, "devices/dev-A/x");
  EXPECT_TRUE(blocked) << "dev-A still publishes after the quarantine:\n" << ReadOrEmpty(log_);
  EXPECT_TRUE(Delivered(c_, "devices/dev-C/x"));  // the others are untouched

  // 6. dev-A's certificate revoked (a new devices CRL), the quarantine lifted: dev-A can no
  // longer connect at all.
  const PublishResult revoked = Apply(
      publisher,
      {Changes(102,
               {Change(Crl("devices",
                           pki_.CrlDer("devices", {serials_["dev-B"], serials_["dev-A"]}, 2), 2)),
                Change(Assignment(v1::ACL_SUBJECT_TYPE_DEVICE, "dev-A", "quarantine"), true)})});
  EXPECT_TRUE(revoked.crlfile_written && revoked.acl_file_written && revoked.signalled);
  bool refused = false;
  const absl::Time deadline2 = absl::Now() + kPatience;
  while (!refused && absl::Now() < deadline2) {
    refused = Pub(a_, "devices/dev-A/x", "after revocation").exit_code != 0;
  }
  EXPECT_TRUE(refused) << "mosquitto still accepts dev-A's revoked certificate:\n"
                       << ReadOrEmpty(log_);
  EXPECT_TRUE(Delivered(c_, "devices/dev-C/y"));

  // 7. The same broker process throughout; unchanged state: no write, no signal.
  EXPECT_EQ(broker_->pid(), pid);
  EXPECT_TRUE(broker_->Running()) << ReadOrEmpty(log_);
  const PublishResult again = publisher.Publish(Render(applier_.state()));
  EXPECT_FALSE(again.any_written() || again.signalled);
  const std::string log = ReadOrEmpty(log_);
  size_t reloads = 0;
  for (size_t at = log.find("Reloading config"); at != std::string::npos;
       at = log.find("Reloading config", at + 1)) {
    ++reloads;
  }
  EXPECT_EQ(reloads, 2u) << log;

  // 8. watcher1's identity revoked: its session, still connected, receives nothing more
  // (the reload applies the new acl_file to live sessions); watcher2 still does.
  const std::string watcher2_out = Subscribe(watcher2_, "devices/#");
  ASSERT_TRUE(WaitUntilReceiving(watcher2_out)) << ReadOrEmpty(log_);
  EXPECT_TRUE(
      Apply(publisher, {Changes(103, {Change(Identity("watcher1", v1::IDENTITY_STATUS_REVOKED))})})
          .signalled);
  bool cut_off = false;
  const absl::Time deadline3 = absl::Now() + kPatience;
  for (int i = 0; !cut_off && absl::Now() < deadline3; ++i) {
    const std::string payload = absl::StrCat("after-revoke-", i);
    ASSERT_EQ(Pub(c_, "devices/dev-C/z", payload).exit_code, 0);
    ASSERT_TRUE(WaitForText(watcher2_out, "devices/dev-C/z " + payload)) << ReadOrEmpty(log_);
    cut_off = !absl::StrContains(ReadOrEmpty(watcher_out_), payload);
  }
  EXPECT_TRUE(cut_off) << "watcher1's live session still receives after its revocation";
  EXPECT_EQ(subscribers_[0]->Running(), true);  // connected, but allowed nothing

  // 9. A SUBSCRIBE-only grant: mosquitto accepted the subscription, and (no `read` line)
  // delivered nothing, as fleetca's evaluation says.
  EXPECT_EQ(ReadOrEmpty(subonly_out), "");
  EXPECT_TRUE(absl::StrContains(ReadOrEmpty(log_), "subonly1 0 devices/#"))
      << "mosquitto should grant the SUBSCRIBE (QoS 0):\n"
      << ReadOrEmpty(log_);
  EXPECT_LT(absl::Now() - start, absl::Seconds(30));
}

}  // namespace
}  // namespace fleetca::sync_agent
