// mqtt_connect_bench: TLS connections per second to one mosquitto broker, as a fleet's
// devices connect: --threads threads, each in a loop for --seconds (after --warmup
// seconds): TCP connect, TLS handshake with the device's client certificate (a full
// handshake every time: no session resumption), MQTT CONNECT, wait for CONNACK, DISCONNECT,
// wait for the broker to close. Thread t uses devices t, t + threads, ... of the fleet in
// turn, so no two connections at once share a client id.
//
// The client is raw OpenSSL with hand-written MQTT 3.1.1 packets (bench/mqtt_tls_client.h),
// not libmosquitto: a blocking loop whose timing is exactly the connection's.
//
// Prints one line: connections/s, latency (connect start to CONNACK) p50/p90/p99/max,
// failures (refused CONNACK, TLS or socket errors; the first few are printed), and this
// process's CPU per connection. mosquitto is single-threaded and the machines have two
// cores: one or two generator threads are what fits beside the broker.
//
//   mqtt_connect_bench --port=P --fleet=DIR --cafile=servers-ca.pem [--threads=1]
//                      [--seconds=15] [--warmup=2] [--label=TEXT]
//
// With --rate=N (bench/soak.sh) the threads no longer go as fast as they can: connection k
// (counted across threads) starts at start + k/N, and --hold_ms keeps each connection
// open that long before its DISCONNECT: a fleet reconnecting at a steady pace.
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "bench/bench_util.h"
#include "bench/mqtt_tls_client.h"

ABSL_FLAG(int, port, 8883, "the broker's TLS port on 127.0.0.1");
ABSL_FLAG(std::string, host, "localhost", "the name the broker's certificate must carry");
ABSL_FLAG(std::string, fleet, "", "plugin_fleet's output directory (manifest, devices/)");
ABSL_FLAG(std::string, cafile, "", "CA bundle to verify the broker with (default <fleet>/servers-ca.pem)");
ABSL_FLAG(int, threads, 1, "connecting threads (1 or 2 beside a broker on 2 cores)");
ABSL_FLAG(double, seconds, 15, "measured duration");
ABSL_FLAG(double, warmup, 2, "unmeasured duration first");
ABSL_FLAG(std::string, label, "", "printed at the start of the result line");
ABSL_FLAG(double, rate, 0, "connections per second across all threads (0: as fast as they go)");
ABSL_FLAG(int, hold_ms, 0, "time each connection stays open after its CONNACK");

namespace {

using Clock = std::chrono::steady_clock;
using fleetca::bench::Percentile;

[[noreturn]] void Die(const std::string& what) { fleetca::bench::Die("mqtt_connect_bench", what); }

double CpuSeconds() {
  rusage r{};
  getrusage(RUSAGE_SELF, &r);
  return static_cast<double>(r.ru_utime.tv_sec + r.ru_stime.tv_sec) +
         static_cast<double>(r.ru_utime.tv_usec + r.ru_stime.tv_usec) / 1e6;
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const std::string fleet_dir = absl::GetFlag(FLAGS_fleet);
  if (fleet_dir.empty()) Die("--fleet is required");
  std::string error;
  const std::vector<fleetca::bench::DeviceCredential> fleet = fleetca::bench::LoadFleet(fleet_dir, &error);
  if (fleet.empty()) Die(error);
  const std::string cafile =
      absl::GetFlag(FLAGS_cafile).empty() ? fleet_dir + "/servers-ca.pem" : absl::GetFlag(FLAGS_cafile);
  SSL_CTX* ctx = fleetca::bench::NewClientContext(cafile, &error);
  if (ctx == nullptr) Die(error);
  const int threads = std::max(1, absl::GetFlag(FLAGS_threads));
  const int port = absl::GetFlag(FLAGS_port);
  const std::string host = absl::GetFlag(FLAGS_host);
  if (static_cast<int>(fleet.size()) < threads) Die("fewer devices than threads");

  // One connection first: a broker that refuses everyone is a setup error, not a figure.
  {
    fleetca::bench::MqttConnection c;
    if (!c.Open(ctx, port, host, fleet[0], &error)) Die("first connection: " + error);
    const int rc = c.Connect(fleet[0].comm_id, 60, &error);
    if (rc != 0) Die(absl::StrCat("first connection: CONNACK ", rc, " ", error));
    c.Disconnect();
  }

  const Clock::time_point start = Clock::now();
  const Clock::time_point measure_from =
      start + std::chrono::microseconds(static_cast<int64_t>(absl::GetFlag(FLAGS_warmup) * 1e6));
  const Clock::time_point end =
      measure_from + std::chrono::microseconds(static_cast<int64_t>(absl::GetFlag(FLAGS_seconds) * 1e6));
  std::vector<std::vector<double>> latencies(static_cast<size_t>(threads));
  std::atomic<int64_t> failures{0};
  std::atomic<int64_t> total{1};  // every successful connection, warm-up and the first included
  std::mutex errors_mu;
  std::vector<std::string> errors;
  double cpu_at_start = 0;
  std::atomic<bool> cpu_taken{false};

  const double pace = absl::GetFlag(FLAGS_rate);
  const auto hold = std::chrono::milliseconds(std::max(0, absl::GetFlag(FLAGS_hold_ms)));
  auto worker = [&](int t) {
    std::vector<double>& mine = latencies[static_cast<size_t>(t)];
    mine.reserve(200000);
    size_t next = static_cast<size_t>(t);
    std::string why;
    for (int64_t j = 0;; ++j) {
      if (pace > 0) {
        const double k = static_cast<double>(j * threads + t);
        const Clock::time_point due =
            start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(k / pace));
        if (due >= end) break;
        std::this_thread::sleep_until(due);
      }
      const Clock::time_point t0 = Clock::now();
      if (t0 >= end) break;
      if (t0 >= measure_from && !cpu_taken.exchange(true)) cpu_at_start = CpuSeconds();
      const fleetca::bench::DeviceCredential& device = fleet[next];
      next = (next + static_cast<size_t>(threads)) % fleet.size();
      fleetca::bench::MqttConnection c;
      int rc = -1;
      if (c.Open(ctx, port, host, device, &why)) rc = c.Connect(device.comm_id, 60, &why);
      const Clock::time_point t1 = Clock::now();
      if (rc != 0) {
        if (t0 >= measure_from) {
          failures.fetch_add(1);
          std::lock_guard<std::mutex> lock(errors_mu);
          if (errors.size() < 5) errors.push_back(absl::StrCat(device.comm_id, ": CONNACK ", rc, " ", why));
        }
        c.Close();
        continue;
      }
      if (hold.count() > 0) std::this_thread::sleep_for(hold);
      c.Disconnect();
      total.fetch_add(1);
      if (t0 >= measure_from && t1 <= end) {
        mine.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
      }
    }
  };
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) pool.emplace_back(worker, t);
  for (auto& th : pool) th.join();
  const double cpu = CpuSeconds() - cpu_at_start;
  SSL_CTX_free(ctx);

  std::vector<double> all;
  for (auto& v : latencies) all.insert(all.end(), v.begin(), v.end());
  const double seconds = absl::GetFlag(FLAGS_seconds);
  const double rate = static_cast<double>(all.size()) / seconds;
  const double max = all.empty() ? 0 : *std::max_element(all.begin(), all.end());
  std::printf("%s%.1f connections/s (%zu in %.0f s, %d thread%s, %lld with the warm-up); CONNECT latency p50 %.2f ms, "
              "p90 %.2f ms, p99 %.2f ms, max %.2f ms; failures %lld; generator CPU %.0f us per "
              "connection\n",
              absl::GetFlag(FLAGS_label).c_str(), rate, all.size(), seconds, threads,
              threads == 1 ? "" : "s", static_cast<long long>(total.load()), Percentile(all, 0.5), Percentile(all, 0.9),
              Percentile(all, 0.99), max, static_cast<long long>(failures.load()),
              all.empty() ? 0.0 : cpu * 1e6 / static_cast<double>(all.size()));
  for (const std::string& e : errors) std::printf("  failure: %s\n", e.c_str());
  return 0;
}
