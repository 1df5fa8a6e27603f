#pragma once

// RateLimiter: a token bucket per key (an identity name), so that a burst from one
// provisioning station cannot take the issuance capacity of the others. Thread-safe.

#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace fleetca::auth {

class RateLimiter {
 public:
  // rate_per_second tokens are added per second up to burst; rate <= 0 disables limiting.
  RateLimiter(double rate_per_second, double burst);

  // Take one token for key at `now`. Returns zero when taken, else how long until one is
  // available (the caller is refused and told to retry after that).
  absl::Duration Take(const std::string& key, absl::Time now);

  double rate() const { return rate_; }
  double burst() const { return burst_; }

 private:
  struct Bucket {
    double tokens = 0;
    absl::Time updated;
  };
  const double rate_;
  const double burst_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, Bucket> buckets_ ABSL_GUARDED_BY(mu_);
};

}  // namespace fleetca::auth
