// plugin_revocation_bench: from a change made through fleetca's API to the moment a device
// connected to mosquitto (with the fleetca_auth plugin, stream mode) sees its connection
// closed by the broker.
//
// It connects --revoke + --suspend devices of the fleet (plugin_fleet's output) to the
// broker, each subscribed to devices/<comm_id>/# (QoS 1, granted), then:
//  1. revokes the certificates of the first --revoke devices (RevocationService.
//     RevokeCertificate, reason KEY_COMPROMISE), one at a time, or --concurrency at a time;
//  2. suspends the next --suspend devices (DeviceRegistryService.SetDeviceStatus
//     SUSPENDED) the same way.
// A monitor thread polls every connection and notes when the broker closed it (EOF or TLS
// close). The figure per device is the time from the RPC returning OK (client side, steady
// clock) to that close; it may be negative when the broker kicked the client before the
// RPC's reply arrived. After each change it waits for the close (at most --timeout_s), then
// a random pause of 0.5 to 1.5 x --gap_ms (so changes do not line up with the plugin's
// 100 ms tick). An RPC answered UNAVAILABLE is retried once, printed, and its device left
// out of the figures. Prints p50/p90/p99/max per kind, the RPCs' own latency, changes whose client
// was not disconnected within the timeout, and connections closed that no change concerned.
//
// The client is raw OpenSSL with hand-written MQTT 3.1.1 packets (bench/mqtt_tls_client.h);
// the API client is gRPC C++ over mutual TLS with the admin credential.
//
//   plugin_revocation_bench --target=localhost:GRPC --cacert=ca.pem --credential=admin.pem
//       --fleet=DIR --port=MQTT [--revoke=200] [--suspend=200] [--concurrency=1]
#include <grpcpp/grpcpp.h>
#include <poll.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "bench/bench_util.h"
#include "bench/mqtt_tls_client.h"
#include "fleetca/v1/device_registry.grpc.pb.h"
#include "fleetca/v1/revocation.grpc.pb.h"
#include "sync_client/connection.h"

ABSL_FLAG(std::string, target, "localhost:50051", "fleetca-server gRPC address (TLS)");
ABSL_FLAG(std::string, cacert, "", "the server CA bundle (ca.pem beside the admin credential)");
ABSL_FLAG(std::string, credential, "", "the admin credential");
ABSL_FLAG(std::string, fleet, "", "plugin_fleet's output directory");
ABSL_FLAG(int, port, 8883, "the broker's TLS port on 127.0.0.1");
ABSL_FLAG(std::string, host, "localhost", "the name the broker's certificate must carry");
ABSL_FLAG(int, revoke, 200, "devices whose certificate is revoked");
ABSL_FLAG(int, suspend, 200, "devices suspended (the next ones of the fleet)");
ABSL_FLAG(int, concurrency, 1, "changes in flight at once");
ABSL_FLAG(int, gap_ms, 100, "mean pause after each change's disconnect (0.5x to 1.5x)");
ABSL_FLAG(double, timeout_s, 10, "how long to wait for a disconnect");

namespace {

namespace v1 = fleetca::v1;
using Clock = std::chrono::steady_clock;
using fleetca::bench::Percentile;

[[noreturn]] void Die(const std::string& what) { fleetca::bench::Die("plugin_revocation_bench", what); }

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count();
}

struct Session {
  const fleetca::bench::DeviceCredential* device = nullptr;
  fleetca::bench::MqttConnection conn;
  std::atomic<int64_t> closed_at{0};    // ns; 0 while open
  std::atomic<int64_t> returned_at{0};  // ns; when the change's RPC returned OK
  double rpc_ms = 0;
  bool changed = false;
  bool excluded = false;  // its RPC answered UNAVAILABLE (retried once): not a sample
};

void Summarize(const char* what, std::vector<Session*> sessions, std::vector<double> rpc) {
  std::vector<double> ms;
  int missing = 0;
  for (Session* s : sessions) {
    if (s->excluded) continue;
    const int64_t closed = s->closed_at.load();
    if (closed == 0) {
      ++missing;
      continue;
    }
    ms.push_back(static_cast<double>(closed - s->returned_at.load()) / 1e6);
  }
  if (ms.empty()) {
    std::printf("%s: no client was disconnected (%d changes)\n", what, missing);
    return;
  }
  const double max = *std::max_element(ms.begin(), ms.end());
  const double min = *std::min_element(ms.begin(), ms.end());
  std::printf("%s -> connection closed (from the RPC's OK): p50 %.1f ms, p90 %.1f ms, "
              "p99 %.1f ms, max %.1f ms, min %.1f ms (%zu disconnects; %d not disconnected "
              "within the timeout)\n",
              what, Percentile(ms, 0.5), Percentile(ms, 0.9), Percentile(ms, 0.99), max, min,
              ms.size(), missing);
  std::printf("%s RPC itself: p50 %.1f ms, p99 %.1f ms\n", what, Percentile(rpc, 0.5),
              Percentile(rpc, 0.99));
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  std::string error;
  const std::string fleet_dir = absl::GetFlag(FLAGS_fleet);
  const std::vector<fleetca::bench::DeviceCredential> fleet = fleetca::bench::LoadFleet(fleet_dir, &error);
  if (fleet.empty()) Die(error);
  const int revoke = absl::GetFlag(FLAGS_revoke);
  const int suspend = absl::GetFlag(FLAGS_suspend);
  if (static_cast<int>(fleet.size()) < revoke + suspend) {
    Die(absl::StrCat("the fleet has ", fleet.size(), " devices; --revoke + --suspend need ",
                     revoke + suspend));
  }
  SSL_CTX* ctx = fleetca::bench::NewClientContext(fleet_dir + "/servers-ca.pem", &error);
  if (ctx == nullptr) Die(error);

  fleetca::sync_client::ConnectionConfig config;
  config.server = absl::GetFlag(FLAGS_target);
  config.tls_ca = absl::GetFlag(FLAGS_cacert);
  config.tls_cert = absl::GetFlag(FLAGS_credential);
  config.tls_key = absl::GetFlag(FLAGS_credential);
  auto credentials = fleetca::sync_client::ChannelCredentialsFor(config);
  if (!credentials.ok()) Die(std::string(credentials.status().message()));
  auto channel = fleetca::sync_client::NewChannel(config, *credentials);
  auto revocation = v1::RevocationService::NewStub(channel);
  auto registry = v1::DeviceRegistryService::NewStub(channel);
  if (!channel->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(10))) {
    Die("cannot reach " + config.server);
  }

  // Connect and subscribe everyone (retried for a while: the broker may still be taking its
  // first snapshot).
  const int n = revoke + suspend;
  std::vector<std::unique_ptr<Session>> sessions;
  const auto t0 = Clock::now();
  for (int i = 0; i < n; ++i) {
    auto s = std::make_unique<Session>();
    s->device = &fleet[static_cast<size_t>(i)];
    const auto deadline = Clock::now() + std::chrono::seconds(30);
    for (;;) {
      int rc = -1;
      if (s->conn.Open(ctx, absl::GetFlag(FLAGS_port), absl::GetFlag(FLAGS_host), *s->device, &error)) {
        rc = s->conn.Connect(s->device->comm_id, 600, &error);
      }
      if (rc == 0) break;
      if (Clock::now() > deadline) Die(absl::StrCat(s->device->comm_id, ": CONNACK ", rc, " ", error));
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    const int granted = s->conn.Subscribe(absl::StrCat("devices/", s->device->comm_id, "/#"), &error);
    if (granted != 0 && granted != 1) Die(absl::StrCat(s->device->comm_id, ": SUBACK ", granted, " ", error));
    sessions.push_back(std::move(s));
  }
  std::printf("== %d devices connected and subscribed in %.1f s\n", n,
              std::chrono::duration<double>(Clock::now() - t0).count());

  // The monitor: notes when the broker closes a connection.
  std::atomic<bool> stop{false};
  std::thread monitor([&] {
    std::vector<pollfd> fds;
    std::vector<Session*> who;
    while (!stop.load()) {
      fds.clear();
      who.clear();
      for (auto& s : sessions) {
        if (s->closed_at.load() != 0) continue;
        fds.push_back({s->conn.fd(), POLLIN, 0});
        who.push_back(s.get());
      }
      if (fds.empty()) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
        continue;
      }
      const int r = ::poll(fds.data(), fds.size(), 20);
      if (r <= 0) continue;
      const int64_t now = NowNs();
      for (size_t k = 0; k < fds.size(); ++k) {
        if (fds[k].revents == 0) continue;
        if ((fds[k].revents & (POLLHUP | POLLERR)) != 0 || who[k]->conn.ReadClosed()) {
          who[k]->closed_at.store(now);
        }
      }
    }
  });

  // The changes.
  std::atomic<int> unavailable{0};
  const double timeout_s = absl::GetFlag(FLAGS_timeout_s);
  const int gap_ms = absl::GetFlag(FLAGS_gap_ms);
  auto run = [&](int from, int to, bool revoking, std::vector<double>* rpc_ms) {
    std::atomic<int> next{from};
    std::mutex mu;
    auto worker = [&](int w) {
      std::mt19937 rng(static_cast<uint32_t>(1234 + w + from));
      for (;;) {
        const int i = next.fetch_add(1);
        if (i >= to) break;
        Session& s = *sessions[static_cast<size_t>(i)];
        // A transient UNAVAILABLE (the connection to the server reset) is retried once,
        // printed and counted, and that device is left out of the figures.
        const auto a = Clock::now();
        grpc::Status status;
        for (int attempt = 0; attempt < 2; ++attempt) {
          grpc::ClientContext call;
          call.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
          if (revoking) {
            v1::RevokeCertificateRequest req;
            v1::RevokeCertificateResponse resp;
            req.set_serial(s.device->serial);
            req.set_issuer_id(s.device->issuer_id);
            req.set_reason(v1::REVOCATION_REASON_KEY_COMPROMISE);
            status = revocation->RevokeCertificate(&call, req, &resp);
          } else {
            v1::SetDeviceStatusRequest req;
            v1::SetDeviceStatusResponse resp;
            req.set_comm_id(s.device->comm_id);
            req.set_status(v1::DEVICE_STATUS_SUSPENDED);
            req.set_reason("bench");
            status = registry->SetDeviceStatus(&call, req, &resp);
          }
          if (status.error_code() != grpc::StatusCode::UNAVAILABLE) break;
          std::lock_guard<std::mutex> lock(mu);
          std::printf("  %s %s: UNAVAILABLE (%s)%s\n", revoking ? "RevokeCertificate" : "SetDeviceStatus",
                      s.device->comm_id.c_str(), status.error_message().c_str(),
                      attempt == 0 ? ", retried" : "");
          unavailable.fetch_add(1);
          s.excluded = true;  // the first attempt may have been carried out: no clean sample
        }
        const int64_t returned = NowNs();
        if (!status.ok()) {
          if (status.error_code() == grpc::StatusCode::UNAVAILABLE) continue;
          Die(absl::StrCat(revoking ? "RevokeCertificate " : "SetDeviceStatus ", s.device->comm_id,
                           ": ", status.error_code(), " ", status.error_message()));
        }
        s.returned_at.store(returned);
        s.changed = true;
        {
          std::lock_guard<std::mutex> lock(mu);
          rpc_ms->push_back(std::chrono::duration<double, std::milli>(Clock::now() - a).count());
        }
        const auto deadline = Clock::now() + std::chrono::microseconds(static_cast<int64_t>(timeout_s * 1e6));
        while (s.closed_at.load() == 0 && Clock::now() < deadline) {
          std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
        if (gap_ms > 0) {
          std::uniform_int_distribution<int> pause(gap_ms / 2, gap_ms + gap_ms / 2);
          std::this_thread::sleep_for(std::chrono::milliseconds(pause(rng)));
        }
      }
    };
    std::vector<std::thread> pool;
    for (int w = 0; w < std::max(1, absl::GetFlag(FLAGS_concurrency)); ++w) pool.emplace_back(worker, w);
    for (auto& t : pool) t.join();
  };

  std::vector<double> revoke_rpc, suspend_rpc;
  run(0, revoke, true, &revoke_rpc);
  int early = 0;  // suspension targets closed before their change: nothing concerned them
  for (int i = revoke; i < n; ++i) early += sessions[static_cast<size_t>(i)]->closed_at.load() != 0;
  run(revoke, n, false, &suspend_rpc);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  stop.store(true);
  monitor.join();

  std::vector<Session*> revoked(static_cast<size_t>(revoke)), suspended(static_cast<size_t>(suspend));
  for (int i = 0; i < revoke; ++i) revoked[static_cast<size_t>(i)] = sessions[static_cast<size_t>(i)].get();
  for (int i = 0; i < suspend; ++i) suspended[static_cast<size_t>(i)] = sessions[static_cast<size_t>(revoke + i)].get();
  std::printf("concurrency %d, pause after each disconnect %d ms on average\n",
              absl::GetFlag(FLAGS_concurrency), gap_ms);
  Summarize("RevokeCertificate", revoked, revoke_rpc);
  Summarize("SetDeviceStatus SUSPENDED", suspended, suspend_rpc);
  std::printf("connections closed that no change concerned (yet): %d; RPCs answered "
              "UNAVAILABLE: %d\n", early, unavailable.load());
  for (auto& s : sessions) s->conn.Close();
  SSL_CTX_free(ctx);
  return 0;
}
