#pragma once

// The plugin's persisted policy: the last snapshot (with the deltas applied since), so
// that a broker restarting while fleetca is unreachable enforces the last known policy.
//
// Format: the line "fleetca-plugin-cache 1\n", then length-delimited WatchResponse
// messages forming one snapshot exactly as the stream sends it (snapshot_begin, changes,
// snapshot_end with the object count), then the SHA-256 of everything before it. Loading
// replays the messages through sync_client::StreamApplier, so a cache is checked as a
// stream is: a file cut short, altered or of another format is refused whole, never
// half-applied.

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "plugin/policy.h"

namespace fleetca::plugin {

// SerializeCache: the cache file's content for `policy` at `revision`.
std::string SerializeCache(const Policy& policy, int64_t revision);

// SaveCache writes it to path, atomically (ReplaceFile, mode 0600: the policy names every
// device).
absl::Status SaveCache(const std::string& path, const Policy& policy, int64_t revision);

struct LoadedCache {
  std::unique_ptr<Policy> policy;
  int64_t revision = 0;
  int64_t objects = 0;
};

// ParseCache reads a cache file's content: DATA_LOSS naming what is wrong (format line,
// checksum, a message that does not parse, a snapshot that does not add up).
absl::StatusOr<LoadedCache> ParseCache(const std::string& content);

// LoadCache reads and parses path: NOT_FOUND when there is none, DATA_LOSS when it is
// corrupt, the read error otherwise.
absl::StatusOr<LoadedCache> LoadCache(const std::string& path);

}  // namespace fleetca::plugin
