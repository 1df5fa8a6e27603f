// sync_bench: BrokerSyncService.Watch against a running fleetca-server, as brokers follow it.
//
// 1. Snapshot: one Watch from revision 0 (every object type) read to snapshot_end: the
//    time, objects and bytes, and the server's resident memory (VmRSS of --server_pid,
//    sampled every 20 ms) before and at its highest during the snapshot.
// 2. Deltas: --watchers streams (DEVICE objects only) resume from the snapshot's revision,
//    each read by a thread of its own; then --rate UpdateDevice calls a second for --seconds
//    set attribute seq=<n> on device bench-<n % devices>. Each watcher records, for every
//    device change it receives, the time from the UpdateDevice call's start (the change
//    commits inside it) to its arrival. Prints how many of the expected arrivals came and
//    p50/p90/p99/max over all of them.
//
// Run it with bench/sync.sh, which starts PostgreSQL and the server with the devices.
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "bench/bench_util.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "fleetca/v1/broker_sync.grpc.pb.h"
#include "fleetca/v1/device_registry.grpc.pb.h"

ABSL_FLAG(std::string, target, "127.0.0.1:50051", "fleetca-server gRPC address");
ABSL_FLAG(std::string, broker_id, "bench-broker", "a registered broker");
ABSL_FLAG(int, devices, 100000, "devices bench-0 .. bench-<devices - 1> exist");
ABSL_FLAG(int, watchers, 100, "concurrent Watch streams for the delta phase");
ABSL_FLAG(double, rate, 50, "device changes per second in the delta phase");
ABSL_FLAG(double, seconds, 20, "duration of the delta phase");
ABSL_FLAG(int, server_pid, 0, "the server's pid, for its memory (0: not sampled)");
ABSL_FLAG(bool, snapshot, true, "run the snapshot phase");

namespace {

using Clock = std::chrono::steady_clock;
namespace v1 = fleetca::v1;

[[noreturn]] void Die(const std::string& what) { fleetca::bench::Die("sync_bench", what); }

using fleetca::bench::Percentile;

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

long RssKiB(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::strtol(line.c_str() + 6, nullptr, 10);
  }
  return 0;
}

std::shared_ptr<grpc::Channel> NewChannel() {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(-1);
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);  // a connection per channel
  return grpc::CreateCustomChannel(absl::GetFlag(FLAGS_target),
                                   grpc::InsecureChannelCredentials(), args);
}

// Snapshot: returns the snapshot's revision.
int64_t Snapshot() {
  const int pid = absl::GetFlag(FLAGS_server_pid);
  auto stub = v1::BrokerSyncService::NewStub(NewChannel());
  grpc::ClientContext ctx;
  v1::WatchRequest req;
  req.set_broker_id(absl::GetFlag(FLAGS_broker_id));
  std::atomic<bool> done{false};
  std::atomic<long> peak{0};
  const long before = pid > 0 ? RssKiB(pid) : 0;
  std::thread sampler([&] {
    while (pid > 0 && !done) {
      peak = std::max(peak.load(), RssKiB(pid));
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });
  const Clock::time_point start = Clock::now();
  auto reader = stub->Watch(&ctx, req);
  v1::WatchResponse msg;
  int64_t objects = 0, bytes = 0, messages = 0, revision = -1;
  double first_change = -1;
  while (reader->Read(&msg)) {
    ++messages;
    bytes += static_cast<int64_t>(msg.ByteSizeLong());
    if (msg.has_changes()) {
      if (first_change < 0) first_change = Seconds(Clock::now() - start);
      objects += msg.changes().changes_size();
    }
    if (msg.has_snapshot_end()) {
      revision = msg.snapshot_end().revision();
      if (msg.snapshot_end().object_count() != objects) Die("snapshot object count mismatch");
      break;
    }
  }
  const double took = Seconds(Clock::now() - start);
  done = true;
  sampler.join();
  ctx.TryCancel();
  if (revision < 0) Die("the stream ended before snapshot_end: " + reader->Finish().error_message());
  std::printf("snapshot: %lld objects in %lld messages, %.1f MiB, first objects after %.3f s, "
              "snapshot_end after %.2f s (%.0f objects/s)\n",
              static_cast<long long>(objects), static_cast<long long>(messages),
              static_cast<double>(bytes) / 1048576.0, first_change, took,
              static_cast<double>(objects) / took);
  if (pid > 0) {
    std::printf("server memory: VmRSS %.0f MiB before the snapshot, at most %.0f MiB during it "
                "(+%.0f MiB)\n",
                static_cast<double>(before) / 1024, static_cast<double>(peak.load()) / 1024,
                static_cast<double>(peak.load() - before) / 1024);
  }
  return revision;
}

void Deltas(int64_t since) {
  const int watchers = absl::GetFlag(FLAGS_watchers);
  const double rate = absl::GetFlag(FLAGS_rate);
  const int total = static_cast<int>(rate * absl::GetFlag(FLAGS_seconds));
  const int devices = absl::GetFlag(FLAGS_devices);
  std::vector<Clock::time_point> sent(static_cast<size_t>(total));
  std::vector<std::atomic<bool>> sent_set(static_cast<size_t>(total));
  std::mutex mu;
  std::vector<double> latencies;
  std::atomic<int> ready{0};
  std::atomic<int64_t> received{0};
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
  std::vector<std::thread> threads;
  // A few connections, as several brokers' processes would have.
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  for (int i = 0; i < std::min(watchers, 10); ++i) channels.push_back(NewChannel());
  for (int w = 0; w < watchers; ++w) contexts.push_back(std::make_unique<grpc::ClientContext>());
  for (int w = 0; w < watchers; ++w) {
    threads.emplace_back([&, w] {
      auto stub = v1::BrokerSyncService::NewStub(channels[static_cast<size_t>(w) % channels.size()]);
      v1::WatchRequest req;
      req.set_broker_id(absl::GetFlag(FLAGS_broker_id));
      req.set_since_revision(since);
      req.add_object_types(v1::SYNC_OBJECT_TYPE_DEVICE);
      auto reader = stub->Watch(contexts[static_cast<size_t>(w)].get(), req);
      reader->WaitForInitialMetadata();
      ++ready;
      std::vector<double> mine;
      v1::WatchResponse msg;
      while (reader->Read(&msg)) {
        if (msg.has_snapshot_begin()) Die("a watcher got a snapshot");
        if (!msg.has_changes()) continue;
        const Clock::time_point now = Clock::now();
        for (const v1::SyncChange& c : msg.changes().changes()) {
          auto it = c.device().attributes().find("seq");
          int seq = -1;
          if (it == c.device().attributes().end() || !absl::SimpleAtoi(it->second, &seq) ||
              seq < 0 || seq >= total || !sent_set[static_cast<size_t>(seq)]) {
            continue;
          }
          mine.push_back(Seconds(now - sent[static_cast<size_t>(seq)]) * 1000);
        }
      }
      received += static_cast<int64_t>(mine.size());
      std::lock_guard<std::mutex> lock(mu);
      latencies.insert(latencies.end(), mine.begin(), mine.end());
    });
  }
  while (ready < watchers) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  std::printf("deltas: %d watchers streaming; %d changes at %.0f/s\n", watchers, total, rate);

  auto registry = v1::DeviceRegistryService::NewStub(NewChannel());
  const Clock::time_point start = Clock::now();
  int failed = 0;
  for (int i = 0; i < total; ++i) {
    std::this_thread::sleep_until(start + std::chrono::duration_cast<Clock::duration>(
                                              std::chrono::duration<double>(i / rate)));
    v1::UpdateDeviceRequest req;
    req.mutable_device()->set_comm_id(absl::StrCat("bench-", i % devices));
    (*req.mutable_device()->mutable_attributes())["seq"] = std::to_string(i);
    req.mutable_update_mask()->add_paths("attributes");
    v1::UpdateDeviceResponse resp;
    grpc::ClientContext ctx;
    sent[static_cast<size_t>(i)] = Clock::now();
    sent_set[static_cast<size_t>(i)] = true;
    if (!registry->UpdateDevice(&ctx, req, &resp).ok()) ++failed;
  }
  // Let the last changes arrive, then end the streams.
  std::this_thread::sleep_for(std::chrono::seconds(2));
  for (auto& c : contexts) c->TryCancel();
  for (auto& t : threads) t.join();
  const int64_t expected = static_cast<int64_t>(total - failed) * watchers;
  std::printf("deltas: %lld of %lld expected arrivals (%d updates failed)\n",
              static_cast<long long>(received.load()), static_cast<long long>(expected), failed);
  std::printf("commit -> delta received (ms): p50 %.1f  p90 %.1f  p99 %.1f  max %.1f\n",
              Percentile(latencies, 0.5), Percentile(latencies, 0.9), Percentile(latencies, 0.99),
              latencies.empty() ? 0 : *std::max_element(latencies.begin(), latencies.end()));
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  int64_t since = 0;
  if (absl::GetFlag(FLAGS_snapshot)) since = Snapshot();
  if (absl::GetFlag(FLAGS_watchers) > 0 && absl::GetFlag(FLAGS_seconds) > 0) {
    if (since == 0) Die("the delta phase resumes from the snapshot's revision: keep --snapshot");
    Deltas(since);
  }
  return 0;
}
