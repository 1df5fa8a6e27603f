#include "server/auth/rate_limiter.h"

#include <algorithm>
#include <vector>

namespace fleetca::auth {
namespace {
// Past this many keys, buckets that have refilled (idle callers) are dropped: a full
// bucket is what a new key gets anyway.
constexpr size_t kMaxKeys = 100000;
}  // namespace

RateLimiter::RateLimiter(double rate_per_second, double burst)
    : rate_(rate_per_second), burst_(std::max(1.0, burst)) {}

absl::Duration RateLimiter::Take(const std::string& key, absl::Time now) {
  if (rate_ <= 0) return absl::ZeroDuration();
  absl::MutexLock lock(&mu_);
  if (buckets_.size() >= kMaxKeys && !buckets_.contains(key)) {
    std::vector<std::string> idle;
    for (const auto& [k, b] : buckets_) {
      if (b.tokens + absl::ToDoubleSeconds(now - b.updated) * rate_ >= burst_) idle.push_back(k);
    }
    for (const std::string& k : idle) buckets_.erase(k);
  }
  auto [it, inserted] = buckets_.try_emplace(key, Bucket{burst_, now});
  Bucket& b = it->second;
  if (!inserted && now > b.updated) {
    b.tokens = std::min(burst_, b.tokens + absl::ToDoubleSeconds(now - b.updated) * rate_);
    b.updated = now;
  }
  if (b.tokens >= 1) {
    b.tokens -= 1;
    return absl::ZeroDuration();
  }
  return absl::Seconds((1 - b.tokens) / rate_);
}

}  // namespace fleetca::auth
