// The plugin's side of BrokerSyncService.Watch: arbitrary WatchResponse sequences (the
// input read as length-delimited messages, the stream's and the cache's encoding) applied
// by sync_client::StreamApplier to the plugin's Policy, as plugin::Follower does. An
// error abandons the stream (StreamEnded, as a reconnect does) and the next messages go on
// as a new stream. Never a crash; errors are INVALID_ARGUMENT or DATA_LOSS; the state
// after any message passes CheckPolicy (lookups, copy, cache round trip).

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/util/delimited_message_util.h>

#include <cstddef>
#include <cstdint>
#include <memory>

#include "common/logging.h"
#include "fuzz/plugin_fuzz_util.h"
#include "plugin/policy.h"
#include "sync_client/stream_applier.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fleetca::SetMinLogLevel(fleetca::LogLevel::kError);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace fleetca;
  sync_client::StreamApplier applier([] { return std::make_unique<plugin::Policy>(); },
                                     /*log_snapshots=*/false);
  google::protobuf::io::ArrayInputStream stream(data, static_cast<int>(size));
  google::protobuf::io::CodedInputStream input(&stream);
  v1::WatchResponse message;
  bool changed = false;
  for (int n = 0; n < 256; ++n) {
    message.Clear();
    bool clean_eof = false;
    if (!google::protobuf::util::ParseDelimitedFromCodedStream(&message, &input, &clean_eof)) {
      break;
    }
    const int64_t before = applier.resume_revision();
    absl::StatusOr<sync_client::StreamApplier::Outcome> outcome = applier.Apply(message);
    if (!outcome.ok()) {
      FUZZ_CHECK(absl::IsInvalidArgument(outcome.status()) || absl::IsDataLoss(outcome.status()),
                 "an error that is neither INVALID_ARGUMENT nor DATA_LOSS");
      FUZZ_CHECK(applier.resume_revision() == before, "a failed message moved the revision");
      applier.StreamEnded();
      FUZZ_CHECK(!applier.in_snapshot(), "StreamEnded left a snapshot open");
      continue;
    }
    if (*outcome != sync_client::StreamApplier::Outcome::kNothing) {
      FUZZ_CHECK(applier.has_state(), "a change applied without a state");
      changed = true;
      auto* policy = static_cast<plugin::Policy*>(applier.state());
      plugin::Touched touched = policy->TakeTouched();
      (void)touched.empty();
    }
  }
  if (changed && applier.has_state()) {
    fuzz::CheckPolicy(*static_cast<const plugin::Policy*>(applier.state()),
                      applier.resume_revision());
  }
  return 0;
}
