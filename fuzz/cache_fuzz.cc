// The plugin's cache file decoder (plugin::ParseCache, run by the plugin at start on a file
// the broker's user can write): hostile bytes must be refused with DATA_LOSS, never crash
// nor be half-applied.
//
// The input is tried twice: as a whole file (format line, checksum), and as the body of a
// file whose format line and SHA-256 the harness supplies, so that the fuzzer reaches the
// delimited WatchResponse decoding and the StreamApplier replay behind the checksum. A
// cache that loads must describe a Policy that passes CheckPolicy (lookups, copy, and the
// SerializeCache -> ParseCache round trip).

#include <cstddef>
#include <cstdint>
#include <string>

#include "common/logging.h"
#include "fuzz/plugin_fuzz_util.h"
#include "pki/openssl_util.h"
#include "plugin/cache.h"

namespace {
constexpr char kFormatLine[] = "fleetca-plugin-cache 1\n";  // plugin/cache.h
}

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fleetca::SetMinLogLevel(fleetca::LogLevel::kError);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace fleetca;
  const std::string raw(reinterpret_cast<const char*>(data), size);
  for (int attempt = 0; attempt < 2; ++attempt) {
    std::string content = raw;
    if (attempt == 1) {
      content = std::string(kFormatLine) + raw;
      content += pki::Sha256(content);
    }
    absl::StatusOr<plugin::LoadedCache> loaded = plugin::ParseCache(content);
    if (!loaded.ok()) {
      FUZZ_CHECK(absl::IsDataLoss(loaded.status()), "a refusal that is not DATA_LOSS");
      continue;
    }
    FUZZ_CHECK(loaded->policy != nullptr, "a loaded cache without a policy");
    fuzz::CheckPolicy(*loaded->policy, loaded->revision);
  }
  return 0;
}
