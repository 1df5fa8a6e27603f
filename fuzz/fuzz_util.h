#pragma once

// Helpers shared by the libFuzzer targets in fuzz/: a check that aborts (so libFuzzer
// reports the input that broke an invariant) and a splitter of the input into fields.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

// FUZZ_CHECK(cond, what): a documented invariant; a violation is a finding.
#define FUZZ_CHECK(cond, what)                                                      \
  do {                                                                              \
    if (!(cond)) {                                                                  \
      std::fprintf(stderr, "%s:%d: invariant violated: %s (%s)\n", __FILE__, __LINE__, \
                   #cond, what);                                                    \
      std::abort();                                                                 \
    }                                                                               \
  } while (0)

namespace fleetca::fuzz {

inline absl::string_view AsView(const uint8_t* data, size_t size) {
  return absl::string_view(reinterpret_cast<const char*>(data), size);
}

// Fields splits the input on '\n' (seed files are one field per line, easy to read and
// to write by hand); at most `max` fields, the last one taking the rest.
inline std::vector<absl::string_view> Fields(absl::string_view input, size_t max) {
  std::vector<absl::string_view> out;
  while (out.size() + 1 < max) {
    const size_t nl = input.find('\n');
    if (nl == absl::string_view::npos) break;
    out.push_back(input.substr(0, nl));
    input.remove_prefix(nl + 1);
  }
  out.push_back(input);
  return out;
}

}  // namespace fleetca::fuzz
