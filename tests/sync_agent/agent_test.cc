// Agent against an in-process gRPC server that plays scripted Watch streams: what it asks
// for (since_revision, object types), reconnection, broken snapshots, silence, coalescing.
#include "sync_agent/agent.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <functional>
#include <set>
#include <thread>

#include "absl/strings/match.h"
#include "absl/synchronization/mutex.h"
#include "tests/sync_agent/sync_test_util.h"

namespace fleetca::sync_agent {
namespace {

using namespace ::fleetca::sync_agent::testing;  // NOLINT

// One Watch call's script: messages to send (with an optional pause before each), then
// either the end status or, with hang, waiting until the client goes away.
struct Script {
  std::vector<v1::WatchResponse> messages;
  absl::Duration pause_between = absl::ZeroDuration();
  grpc::Status end = grpc::Status(grpc::StatusCode::UNAVAILABLE, "scripted end");
  bool hang = false;
};

class ScriptedSyncService final : public v1::BrokerSyncService::Service {
 public:
  void Add(Script script) {
    absl::MutexLock lock(&mu_);
    scripts_.push_back(std::move(script));
  }

  grpc::Status Watch(grpc::ServerContext* context, const v1::WatchRequest* request,
                     grpc::ServerWriter<v1::WatchResponse>* writer) override {
    Script script;
    {
      absl::MutexLock lock(&mu_);
      const size_t n = requests_.size();
      requests_.push_back(*request);
      // Past the end of the scripts: an idle stream.
      script = n < scripts_.size() ? scripts_[n] : Script{{}, absl::ZeroDuration(), {}, true};
    }
    for (const v1::WatchResponse& m : script.messages) {
      if (script.pause_between > absl::ZeroDuration()) absl::SleepFor(script.pause_between);
      if (!writer->Write(m)) return grpc::Status::CANCELLED;
    }
    if (script.hang) {
      while (!context->IsCancelled()) absl::SleepFor(absl::Milliseconds(5));
      return grpc::Status::CANCELLED;
    }
    return script.end;
  }

  std::vector<v1::WatchRequest> requests() {
    absl::MutexLock lock(&mu_);
    return requests_;
  }

  // WaitForRequests waits until at least n Watch calls arrived.
  bool WaitForRequests(size_t n, absl::Duration timeout = absl::Seconds(10)) {
    absl::MutexLock lock(&mu_);
    auto enough = [&]() { return requests_.size() >= n; };
    return mu_.AwaitWithTimeout(absl::Condition(&enough), timeout);
  }

 private:
  absl::Mutex mu_;
  std::vector<Script> scripts_;
  std::vector<v1::WatchRequest> requests_;
};

bool WaitFor(const std::function<bool()>& done, absl::Duration timeout = absl::Seconds(10)) {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    if (done()) return true;
    absl::SleepFor(absl::Milliseconds(10));
  }
  return done();
}

// CountingSignaller counts reloads.
class CountingSignaller final : public BrokerSignaller {
 public:
  absl::Status Reload() override {
    absl::MutexLock lock(&mu_);
    ++reloads_;
    return absl::OkStatus();
  }
  int reloads() {
    absl::MutexLock lock(&mu_);
    return reloads_;
  }

 private:
  absl::Mutex mu_;
  int reloads_ = 0;
};

class AgentTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    pki_ = new TestPki();
    pki_->AddCa("root", "Agent Root");
    pki_->AddCa("devices", "Agent Devices", "root");
  }
  static void TearDownTestSuite() {
    delete pki_;
    pki_ = nullptr;
  }

  void SetUp() override {
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    channel_ =
        grpc::CreateChannel(absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials());
    stub_ = v1::BrokerSyncService::NewStub(channel_);
    dir_ = MakeTempDir("agent");
    paths_ = {dir_ + "/ca.pem", dir_ + "/crl.pem", dir_ + "/acl"};
    publisher_ = std::make_unique<Publisher>(paths_, &signaller_);
    options_.broker_id = "broker-1";
    options_.heartbeat_interval = absl::Seconds(5);
    options_.min_write_interval = absl::Milliseconds(50);
    options_.initial_backoff = absl::Milliseconds(10);
    options_.max_backoff = absl::Milliseconds(50);
    options_.slow_retry = absl::Milliseconds(200);
  }

  void TearDown() override {
    StopAgent();
    server_->Shutdown(absl::ToChronoTime(absl::Now() + absl::Seconds(1)));
  }

  void StartAgent() {
    agent_ = std::make_unique<Agent>(*stub_, *publisher_, options_);
    thread_ = std::thread([this] { agent_->Run(); });
  }
  void StopAgent() {
    if (agent_ == nullptr) return;
    agent_->Stop();
    thread_.join();
    agent_.reset();
  }

  std::vector<v1::SyncChange> Policy(const std::vector<std::string>& devices) {
    std::vector<v1::SyncChange> changes = {
        Change(Issuer("root", v1::ISSUER_PURPOSE_ROOT, pki_->ca("root").pem)),
        Change(Issuer("devices", v1::ISSUER_PURPOSE_DEVICES, pki_->ca("devices").pem)),
        Change(Crl("devices", devices_crl_)),
        Change(Profile("device", {{"devices/%c/#", v1::ACL_ACCESS_READWRITE}})),
        Change(Assignment(v1::ACL_SUBJECT_TYPE_ALL_DEVICES, "", "device"))};
    for (const std::string& d : devices) changes.push_back(Change(Device(d)));
    return changes;
  }

  std::string Acl() { return ReadOrEmpty(paths_.acl_file); }

  static TestPki* pki_;
  std::string devices_crl_ = pki_->CrlDer("devices", {});
  ScriptedSyncService service_;
  std::unique_ptr<grpc::Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::BrokerSyncService::Stub> stub_;
  std::string dir_;
  OutputPaths paths_;
  CountingSignaller signaller_;
  std::unique_ptr<Publisher> publisher_;
  AgentOptions options_;
  std::unique_ptr<Agent> agent_;
  std::thread thread_;
};
TestPki* AgentTest::pki_ = nullptr;

TEST_F(AgentTest, WatchRequestAsksForEverythingButCertificates) {
  const v1::WatchRequest r = Agent::WatchRequestFor(options_, 42);
  EXPECT_EQ(r.broker_id(), "broker-1");
  EXPECT_EQ(r.since_revision(), 42);
  EXPECT_EQ(r.heartbeat_interval().seconds(), 5);
  std::set<int> types(r.object_types().begin(), r.object_types().end());
  EXPECT_EQ(types,
            (std::set<int>{v1::SYNC_OBJECT_TYPE_ISSUER, v1::SYNC_OBJECT_TYPE_CRL,
                           v1::SYNC_OBJECT_TYPE_DEVICE, v1::SYNC_OBJECT_TYPE_IDENTITY,
                           v1::SYNC_OBJECT_TYPE_ACL_PROFILE, v1::SYNC_OBJECT_TYPE_ACL_ASSIGNMENT}));
}

TEST_F(AgentTest, SnapshotAndDeltasReachTheFilesAndReconnectsResumeFromTheLastRevision) {
  // Stream 1: snapshot at 5, delta 6 (dev-b added), then UNAVAILABLE.
  Script first;
  first.messages = Snapshot(5, Policy({"dev-a"}));
  first.messages.push_back(Changes(6, {Change(Device("dev-b"))}));
  service_.Add(first);
  // Stream 2: delta 7 (dev-a suspended), then idle.
  Script second;
  second.messages = {Changes(7, {Change(Device("dev-a", v1::DEVICE_STATUS_SUSPENDED))})};
  second.hang = true;
  service_.Add(second);
  StartAgent();

  ASSERT_TRUE(WaitFor([&] {
    const std::string acl = Acl();
    return !absl::StrContains(acl, "user dev-a") && absl::StrContains(acl, "user dev-b");
  })) << Acl();
  ASSERT_TRUE(service_.WaitForRequests(2));
  const std::vector<v1::WatchRequest> requests = service_.requests();
  EXPECT_EQ(requests[0].since_revision(), 0);  // no state kept across agent starts
  EXPECT_EQ(requests[1].since_revision(), 6);
  EXPECT_EQ(requests[1].broker_id(), "broker-1");
  EXPECT_EQ(ReadOrEmpty(paths_.cafile),
            absl::StrCat(pki_->ca("devices").pem, pki_->ca("root").pem));
  EXPECT_TRUE(WaitFor([&] { return agent_->stats().resume_revision == 7; }));
  // The signal follows the write of the last file.
  EXPECT_TRUE(WaitFor([&] { return signaller_.reloads() >= 2; }));
}

TEST_F(AgentTest, BrokenSnapshotKeepsTheFilesAndTheResumePoint) {
  Script first;
  first.messages = Snapshot(5, Policy({"dev-a"}));
  first.end = grpc::Status(grpc::StatusCode::INTERNAL, "boom");
  service_.Add(first);
  // Stream 2: a snapshot that breaks half-way (dev-a gone, dev-z there).
  Script second;
  second.messages = {SnapshotBegin(9), Changes(9, {Change(Device("dev-z"))})};
  service_.Add(second);
  // Stream 3: the count is wrong.
  Script third;
  third.messages = Snapshot(9, {Change(Device("dev-z"))});
  third.messages.back().mutable_snapshot_end()->set_object_count(7);
  service_.Add(third);
  StartAgent();

  ASSERT_TRUE(service_.WaitForRequests(4));
  const std::vector<v1::WatchRequest> requests = service_.requests();
  EXPECT_EQ(requests[1].since_revision(), 5);
  EXPECT_EQ(requests[2].since_revision(), 5);
  EXPECT_EQ(requests[3].since_revision(), 5);
  EXPECT_TRUE(absl::StrContains(Acl(), "user dev-a\n")) << Acl();
  EXPECT_FALSE(absl::StrContains(Acl(), "dev-z")) << Acl();
}

TEST_F(AgentTest, SilentStreamIsAbandonedAfterThreeHeartbeatIntervals) {
  options_.heartbeat_interval = absl::Milliseconds(100);
  Script first;
  first.messages = Snapshot(5, Policy({"dev-a"}));
  first.hang = true;  // and then nothing, not even heartbeats
  service_.Add(first);
  StartAgent();
  const absl::Time start = absl::Now();
  ASSERT_TRUE(service_.WaitForRequests(2, absl::Seconds(5)));
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(250));
  EXPECT_EQ(service_.requests()[1].since_revision(), 5);
}

TEST_F(AgentTest, HeartbeatsKeepAStreamOpen) {
  options_.heartbeat_interval = absl::Milliseconds(100);
  Script first;
  first.messages = Snapshot(5, Policy({"dev-a"}));
  for (int i = 0; i < 20; ++i) first.messages.push_back(Heartbeat(8));
  first.pause_between = absl::Milliseconds(50);  // 25 messages: 1.25 s
  first.hang = true;
  service_.Add(first);
  const absl::Time start = absl::Now();
  StartAgent();
  ASSERT_TRUE(WaitFor([&] { return agent_->stats().resume_revision == 8; }));
  // Three silent intervals are 300 ms: by 1 s a stream without heartbeats was reopened.
  absl::SleepFor(start + absl::Seconds(1) - absl::Now());
  EXPECT_EQ(service_.requests().size(), 1u);
}

TEST_F(AgentTest, ChangesAreCoalescedButNeverHeldLongerThanTheInterval) {
  options_.min_write_interval = absl::Milliseconds(400);
  Script first;
  first.messages = Snapshot(5, Policy({"dev-a"}));
  for (int i = 0; i < 8; ++i) {
    first.messages.push_back(Changes(6 + i, {Change(Device(absl::StrCat("dev-", i)))}));
  }
  first.pause_between = absl::Milliseconds(20);
  first.hang = true;
  service_.Add(first);
  StartAgent();
  // The snapshot is written at once; the deltas after it within the interval.
  ASSERT_TRUE(WaitFor([&] { return absl::StrContains(Acl(), "user dev-7\n"); }, absl::Seconds(5)));
  const AgentStats stats = agent_->stats();
  EXPECT_LE(stats.renders, 3) << "8 deltas in 160 ms should be written in one or two renders";
  EXPECT_GE(stats.renders, 2);
  EXPECT_EQ(stats.resume_revision, 13);
}

TEST_F(AgentTest, NothingIsWrittenBeforeTheFirstSnapshot) {
  Script partial;
  partial.messages = {SnapshotBegin(3), Changes(3, {Change(Device("dev-a"))})};
  for (int i = 0; i < 3; ++i) service_.Add(partial);
  StartAgent();
  ASSERT_TRUE(service_.WaitForRequests(3));
  EXPECT_EQ(ReadOrEmpty(paths_.acl_file), "");
  EXPECT_EQ(agent_->stats().renders, 0);
  EXPECT_EQ(signaller_.reloads(), 0);
}

TEST_F(AgentTest, RefusalsAreRetriedSlowly) {
  Script refused;
  refused.end = grpc::Status(grpc::StatusCode::PERMISSION_DENIED, "not your broker");
  service_.Add(refused);
  service_.Add(refused);
  StartAgent();
  ASSERT_TRUE(service_.WaitForRequests(2, absl::Seconds(5)));
  const absl::Time second = absl::Now();
  ASSERT_TRUE(service_.WaitForRequests(3, absl::Seconds(5)));
  // slow_retry is 200 ms here, against a 10 to 50 ms backoff.
  EXPECT_GE(absl::Now() - second, absl::Milliseconds(150));
}

TEST_F(AgentTest, StopReturnsPromptlyFromAnOpenStream) {
  Script first;
  first.messages = Snapshot(5, Policy({"dev-a"}));
  first.hang = true;
  service_.Add(first);
  StartAgent();
  ASSERT_TRUE(WaitFor([&] { return agent_->stats().has_state; }));
  const absl::Time start = absl::Now();
  StopAgent();
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
}

}  // namespace
}  // namespace fleetca::sync_agent
