#pragma once

// What the gRPC load generators in bench/ share: failing loudly, and percentiles.

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace fleetca::bench {

// Die prints "<program>: <what>" and exits 1: a benchmark whose answers are wrong has no
// figures to print.
[[noreturn]] inline void Die(const char* program, const std::string& what) {
  std::fprintf(stderr, "%s: %s\n", program, what.c_str());
  std::exit(1);
}

// Percentile: the value at fraction p (0 to 1) of v, reordering v; 0 when empty.
inline double Percentile(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  const size_t i = std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())));
  std::nth_element(v.begin(), v.begin() + static_cast<long>(i), v.end());
  return v[i];
}

}  // namespace fleetca::bench
