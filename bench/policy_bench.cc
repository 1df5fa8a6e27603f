// policy_bench: BrokerAuthService.CheckTopic throughput and latency against a running
// fleetca-server, as brokers in query mode call it.
//
// --channels connections, each driven by one thread with --inflight calls outstanding
// (gRPC's async API: a broker plugin asks from many client sessions at once). The calls
// cycle through what a broker asks about device bench-<i> (i random below --devices):
// PUBLISH on its own subtree (allowed), PUBLISH on another device's (denied), SUBSCRIBE
// to its site's filter (allowed through its group's profile), RECEIVE on another site's
// topic (denied). Every answer is checked against that expectation: a wrong one ends the
// run. Prints the rate over --seconds (after --warmup seconds) and p50/p90/p99/max.
//
// --method=AuthorizeConnect asks instead whether device bench-<i> may connect, by its
// certificate's SHA-256 fingerprint (as a broker's TLS layer has it; bench/policy.sh puts
// one certificate per device in, with a stand-in DER), with its own client id (allowed,
// the answer carrying its rules) or, one call in four, another device's (refused:
// CLIENT_ID_MISMATCH).
//
// Run it with bench/policy.sh, which starts PostgreSQL and the server with the devices.
#include <grpcpp/grpcpp.h>
#include <openssl/sha.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "bench/bench_util.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "fleetca/v1/broker_auth.grpc.pb.h"

ABSL_FLAG(std::string, target, "127.0.0.1:50051", "fleetca-server gRPC address");
ABSL_FLAG(int, devices, 100000, "devices bench-0 .. bench-<devices - 1> exist");
ABSL_FLAG(int, sites, 10, "device i is in group line-<i % sites>, attribute site=s<i % sites>");
ABSL_FLAG(int, channels, 2, "connections (one client thread each)");
ABSL_FLAG(int, inflight, 16, "calls outstanding per connection");
ABSL_FLAG(double, seconds, 15, "measured duration");
ABSL_FLAG(double, warmup, 3, "unmeasured duration first");
ABSL_FLAG(std::string, method, "CheckTopic", "CheckTopic or AuthorizeConnect");

namespace {

using Clock = std::chrono::steady_clock;
namespace v1 = fleetca::v1;

[[noreturn]] void Die(const std::string& what) { fleetca::bench::Die("policy_bench", what); }

using fleetca::bench::Percentile;

struct Call {
  v1::CheckTopicRequest request;
  v1::CheckTopicResponse response;
  v1::AuthorizeConnectRequest connect_request;
  v1::AuthorizeConnectResponse connect_response;
  grpc::ClientContext context;
  grpc::Status status;
  std::unique_ptr<grpc::ClientAsyncResponseReader<v1::CheckTopicResponse>> reader;
  std::unique_ptr<grpc::ClientAsyncResponseReader<v1::AuthorizeConnectResponse>> connect_reader;
  Clock::time_point start;
  bool expect_allowed = false;
};

// The fingerprint of device i's certificate as bench/policy.sh makes it: the DER stand-in
// is the serial, the first 16 bytes of SHA-256 of i as 8 big-endian bytes.
std::string Fingerprint(int i) {
  unsigned char be[8];
  for (int k = 0; k < 8; ++k) be[k] = static_cast<unsigned char>(static_cast<uint64_t>(i) >> (56 - 8 * k));
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(be, sizeof(be), digest);
  unsigned char fp[SHA256_DIGEST_LENGTH];
  SHA256(digest, 16, fp);
  static const char* kHex = "0123456789abcdef";
  std::string out;
  for (unsigned char b : fp) {
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 15]);
  }
  return out;
}

void NextConnect(std::mt19937_64& rng, Call* call) {
  const int devices = absl::GetFlag(FLAGS_devices);
  const int i = static_cast<int>(rng() % static_cast<uint64_t>(devices));
  call->connect_request.set_sha256_fingerprint(Fingerprint(i));
  call->expect_allowed = rng() % 4 != 0;
  call->connect_request.set_client_id(
      absl::StrCat("bench-", call->expect_allowed ? i : (i + 1) % devices));
}

// Next fills a request for a random device and one of the four questions.
void Next(std::mt19937_64& rng, Call* call) {
  const int devices = absl::GetFlag(FLAGS_devices);
  const int sites = absl::GetFlag(FLAGS_sites);
  const int i = static_cast<int>(rng() % static_cast<uint64_t>(devices));
  const int other = (i + 1) % devices;
  v1::CheckTopicRequest& r = call->request;
  r.mutable_principal()->set_type(v1::PRINCIPAL_TYPE_DEVICE);
  r.mutable_principal()->set_id(absl::StrCat("bench-", i));
  switch (rng() % 4) {
    case 0:
      r.set_operation(v1::TOPIC_OPERATION_PUBLISH);
      r.set_topic(absl::StrCat("devices/bench-", i, "/telemetry"));
      call->expect_allowed = true;
      break;
    case 1:
      r.set_operation(v1::TOPIC_OPERATION_PUBLISH);
      r.set_topic(absl::StrCat("devices/bench-", other, "/telemetry"));
      call->expect_allowed = false;
      break;
    case 2:
      r.set_operation(v1::TOPIC_OPERATION_SUBSCRIBE);
      r.set_topic(absl::StrCat("sites/s", i % sites, "/alerts/#"));
      call->expect_allowed = true;
      break;
    default:
      r.set_operation(v1::TOPIC_OPERATION_RECEIVE);
      r.set_topic(absl::StrCat("sites/s", (i + 1) % sites, "/alerts/fire"));
      call->expect_allowed = sites == 1;
      break;
  }
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const int channels = std::max(1, absl::GetFlag(FLAGS_channels));
  const int inflight = std::max(1, absl::GetFlag(FLAGS_inflight));
  const auto warmup = std::chrono::duration_cast<Clock::duration>(
      std::chrono::duration<double>(absl::GetFlag(FLAGS_warmup)));
  const auto measured = std::chrono::duration_cast<Clock::duration>(
      std::chrono::duration<double>(absl::GetFlag(FLAGS_seconds)));
  const Clock::time_point t0 = Clock::now();
  const Clock::time_point measure_from = t0 + warmup;
  const Clock::time_point end = measure_from + measured;

  std::vector<std::vector<double>> latencies(static_cast<size_t>(channels));
  std::vector<std::thread> threads;
  for (int c = 0; c < channels; ++c) {
    threads.emplace_back([&, c] {
      grpc::ChannelArguments args;
      args.SetInt("fleetca.bench.channel", c);  // a connection of its own
      auto stub = v1::BrokerAuthService::NewStub(grpc::CreateCustomChannel(
          absl::GetFlag(FLAGS_target), grpc::InsecureChannelCredentials(), args));
      grpc::CompletionQueue cq;
      std::mt19937_64 rng(static_cast<uint64_t>(c) * 7919 + 1);
      std::vector<double>& lat = latencies[static_cast<size_t>(c)];
      lat.reserve(1 << 20);
      const bool connect = absl::GetFlag(FLAGS_method) == "AuthorizeConnect";
      auto start = [&](Call* call) {
        if (connect) {
          NextConnect(rng, call);
        } else {
          Next(rng, call);
        }
        call->start = Clock::now();
        call->context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
        if (connect) {
          call->connect_reader =
              stub->AsyncAuthorizeConnect(&call->context, call->connect_request, &cq);
          call->connect_reader->Finish(&call->connect_response, &call->status, call);
        } else {
          call->reader = stub->AsyncCheckTopic(&call->context, call->request, &cq);
          call->reader->Finish(&call->response, &call->status, call);
        }
      };
      int outstanding = 0;
      for (int k = 0; k < inflight; ++k, ++outstanding) start(new Call);
      void* tag;
      bool ok;
      while (outstanding > 0 && cq.Next(&tag, &ok)) {
        auto* call = static_cast<Call*>(tag);
        const Clock::time_point now = Clock::now();
        if (!call->status.ok()) {
          Die(absl::StrCat(absl::GetFlag(FLAGS_method), ": ", call->status.error_message()));
        }
        if (connect) {
          const v1::AuthorizeConnectResponse& r = call->connect_response;
          if (r.allowed() != call->expect_allowed ||
              (r.allowed() && (r.rules_size() != 2 || r.username() != call->connect_request.client_id())) ||
              (!r.allowed() && r.deny_reason() != v1::CONNECT_DENY_REASON_CLIENT_ID_MISMATCH)) {
            Die(absl::StrCat("AuthorizeConnect ", call->connect_request.client_id(), ": ",
                             r.ShortDebugString()));
          }
        } else if (call->response.allowed() != call->expect_allowed) {
          Die(absl::StrCat("CheckTopic ", call->request.principal().id(), " ",
                           v1::TopicOperation_Name(call->request.operation()), " ",
                           call->request.topic(), ": allowed=", call->response.allowed()));
        }
        if (call->start >= measure_from && now <= end) {
          lat.push_back(std::chrono::duration<double, std::milli>(now - call->start).count());
        }
        delete call;
        --outstanding;
        if (now < end) {
          start(new Call);
          ++outstanding;
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  std::vector<double> all;
  for (const auto& l : latencies) all.insert(all.end(), l.begin(), l.end());
  const double seconds = absl::GetFlag(FLAGS_seconds);
  std::printf("%s over gRPC, %d connections x %d in flight, %d devices: %zu calls in "
              "%.1f s (%.0f/s): p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.2f ms; every "
              "answer as expected\n",
              absl::GetFlag(FLAGS_method).c_str(), channels, inflight,
              absl::GetFlag(FLAGS_devices), all.size(), seconds,
              static_cast<double>(all.size()) / seconds, Percentile(all, 0.5),
              Percentile(all, 0.9), Percentile(all, 0.99), Percentile(all, 1.0));
  return 0;
}
