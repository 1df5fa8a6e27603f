#include "plugin/cache.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/util/delimited_message_util.h>

#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "pki/openssl_util.h"
#include "sync_client/stream_applier.h"

namespace fleetca::plugin {
namespace {

constexpr absl::string_view kFormatLine = "fleetca-plugin-cache 1\n";
constexpr size_t kDigestSize = 32;
// Changes per message: about 100 KiB of messages each.
constexpr int kChangesPerMessage = 1024;

void AppendDelimited(const v1::WatchResponse& message, std::string* out) {
  google::protobuf::io::StringOutputStream stream(out);
  google::protobuf::util::SerializeDelimitedToZeroCopyStream(message, &stream);
}

}  // namespace

std::string SerializeCache(const Policy& policy, int64_t revision) {
  std::string out(kFormatLine);
  v1::WatchResponse message;
  message.mutable_snapshot_begin()->set_revision(revision);
  message.mutable_snapshot_begin()->set_reason(v1::SNAPSHOT_REASON_REQUESTED);
  AppendDelimited(message, &out);
  int64_t count = 0;
  message.Clear();
  v1::SyncChanges* changes = message.mutable_changes();
  changes->set_revision(revision);
  policy.ForEachObject([&](const v1::SyncChange& change) {
    *changes->add_changes() = change;
    ++count;
    if (changes->changes_size() == kChangesPerMessage) {
      AppendDelimited(message, &out);
      changes->clear_changes();
    }
  });
  if (changes->changes_size() > 0) AppendDelimited(message, &out);
  message.Clear();
  message.mutable_snapshot_end()->set_revision(revision);
  message.mutable_snapshot_end()->set_object_count(count);
  AppendDelimited(message, &out);
  out += pki::Sha256(out);
  return out;
}

absl::Status SaveCache(const std::string& path, const Policy& policy, int64_t revision) {
  return ReplaceFile(path, SerializeCache(policy, revision), 0600);
}

absl::StatusOr<LoadedCache> ParseCache(const std::string& content) {
  if (!absl::StartsWith(content, kFormatLine)) {
    return absl::DataLossError("not a fleetca plugin cache (version 1)");
  }
  if (content.size() < kFormatLine.size() + kDigestSize) {
    return absl::DataLossError("the cache is cut short");
  }
  const absl::string_view body(content.data(), content.size() - kDigestSize);
  if (pki::Sha256(body) != absl::string_view(content).substr(body.size())) {
    return absl::DataLossError("the cache's checksum does not match its content");
  }
  sync_client::StreamApplier applier([] { return std::make_unique<Policy>(); },
                                     /*log_snapshots=*/false);
  google::protobuf::io::ArrayInputStream stream(body.data() + kFormatLine.size(),
                                                static_cast<int>(body.size() - kFormatLine.size()));
  google::protobuf::io::CodedInputStream input(&stream);
  input.SetTotalBytesLimit(INT32_MAX);
  v1::WatchResponse message;
  int64_t objects = 0;
  bool complete = false;
  while (!complete) {
    bool clean_eof = false;
    message.Clear();  // parsing merges into the message: each one must start empty
    if (!google::protobuf::util::ParseDelimitedFromCodedStream(&message, &input, &clean_eof)) {
      return absl::DataLossError(clean_eof ? "the cache ends before its snapshot does"
                                           : "a message of the cache does not parse");
    }
    if (message.has_snapshot_end()) objects = message.snapshot_end().object_count();
    absl::StatusOr<sync_client::StreamApplier::Outcome> outcome = applier.Apply(message);
    if (!outcome.ok()) {
      return absl::DataLossError(absl::StrCat("the cache's snapshot is inconsistent: ",
                                              outcome.status().message()));
    }
    complete = *outcome == sync_client::StreamApplier::Outcome::kSnapshotSwapped;
  }
  if (input.CurrentPosition() != static_cast<int>(body.size() - kFormatLine.size())) {
    return absl::DataLossError("the cache holds more than one snapshot");
  }
  LoadedCache loaded;
  loaded.revision = applier.resume_revision();
  loaded.objects = objects;
  // The applier's state is the Policy its factory made.
  loaded.policy.reset(static_cast<Policy*>(applier.ReleaseState().release()));
  return loaded;
}

absl::StatusOr<LoadedCache> LoadCache(const std::string& path) {
  absl::StatusOr<std::string> content = ReadFileToString(path);
  if (!content.ok()) return content.status();
  return ParseCache(*content);
}

}  // namespace fleetca::plugin
