// registry_batch_bench: BatchRegisterDevices throughput against a running fleetca-server.
// Sends --batches batches of --batch_size new devices, one call at a time, and prints the
// rate of each and a summary (devices/s). Run it with bench/registry_batch.sh, which starts
// PostgreSQL and the server and measures a reference in the same run.
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <cstdio>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "fleetca/v1/device_registry.grpc.pb.h"

ABSL_FLAG(std::string, target, "127.0.0.1:50051", "fleetca-server address");
ABSL_FLAG(int, batches, 10, "number of batches");
ABSL_FLAG(int, batch_size, 10000, "devices per batch (at most 10,000)");
ABSL_FLAG(std::string, prefix, "bench", "comm-ID prefix (use a new one per run)");

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const int batches = absl::GetFlag(FLAGS_batches);
  const int size = absl::GetFlag(FLAGS_batch_size);
  grpc::ChannelArguments args;
  args.SetMaxSendMessageSize(64 << 20);
  auto channel = grpc::CreateCustomChannel(absl::GetFlag(FLAGS_target),
                                           grpc::InsecureChannelCredentials(), args);
  if (batches < 1 || size < 1) {
    std::fprintf(stderr, "--batches and --batch_size must be positive\n");
    return 2;
  }
  // The server may still be starting: wait for it rather than fail the first call.
  if (!channel->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(30))) {
    std::fprintf(stderr, "cannot connect to %s\n", absl::GetFlag(FLAGS_target).c_str());
    return 1;
  }
  auto stub = fleetca::v1::DeviceRegistryService::NewStub(channel);

  std::vector<double> rates;
  for (int b = 0; b < batches; ++b) {
    fleetca::v1::BatchRegisterDevicesRequest req;
    for (int i = 0; i < size; ++i) {
      fleetca::v1::Device* d = req.add_devices();
      d->set_comm_id(absl::StrCat(absl::GetFlag(FLAGS_prefix), "-", b, "-", 350000000000000 + i));
      (*d->mutable_attributes())["site"] = "lyon";
      d->add_groups("line-2");
    }
    fleetca::v1::BatchRegisterDevicesResponse resp;
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
    const absl::Time start = absl::Now();
    const grpc::Status st = stub->BatchRegisterDevices(&ctx, req, &resp);
    const double secs = absl::ToDoubleSeconds(absl::Now() - start);
    if (!st.ok() || resp.registered_count() != size) {
      std::fprintf(stderr, "batch %d failed: %s (registered %d of %d)\n", b,
                   st.error_message().c_str(), resp.registered_count(), size);
      return 1;
    }
    rates.push_back(size / secs);
    std::printf("batch %2d: %d devices in %.3f s = %.0f devices/s\n", b, size, secs, size / secs);
  }
  std::sort(rates.begin(), rates.end());
  std::printf("fleetca BatchRegisterDevices, batch of %d: median %.0f devices/s (min %.0f, max %.0f, "
              "%d batches)\n",
              size, rates[rates.size() / 2], rates.front(), rates.back(), batches);
  return 0;
}
