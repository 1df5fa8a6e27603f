#include "server/auth/rate_limiter.h"

#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"

namespace fleetca::auth {
namespace {

// The limiter is given the time of each call, so the tests run on a made-up clock: no
// sleeping, and exact arithmetic (the rates and steps below are exact in binary).
const absl::Time kT0 = absl::FromUnixSeconds(1700000000);

TEST(RateLimiterTest, AllowsTheBurstThenRefuses) {
  RateLimiter limiter(/*rate_per_second=*/1, /*burst=*/3);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(limiter.Take("station-12", kT0), absl::ZeroDuration()) << i;
  }
  // Empty bucket, one token per second: the next one is a second away.
  EXPECT_EQ(limiter.Take("station-12", kT0), absl::Seconds(1));
  // Refused takes consume nothing: still a second away.
  EXPECT_EQ(limiter.Take("station-12", kT0), absl::Seconds(1));
}

TEST(RateLimiterTest, RefillsOverTime) {
  RateLimiter limiter(/*rate_per_second=*/2, /*burst=*/1);
  EXPECT_EQ(limiter.Take("k", kT0), absl::ZeroDuration());
  EXPECT_EQ(limiter.Take("k", kT0), absl::Milliseconds(500));
  // Half a token after 250 ms: the wait shrinks accordingly.
  EXPECT_EQ(limiter.Take("k", kT0 + absl::Milliseconds(250)), absl::Milliseconds(250));
  // A full token after 500 ms.
  EXPECT_EQ(limiter.Take("k", kT0 + absl::Milliseconds(500)), absl::ZeroDuration());
  EXPECT_EQ(limiter.Take("k", kT0 + absl::Milliseconds(500)), absl::Milliseconds(500));
  EXPECT_EQ(limiter.Take("k", kT0 + absl::Seconds(1)), absl::ZeroDuration());
}

TEST(RateLimiterTest, RefillStopsAtTheBurst) {
  RateLimiter limiter(/*rate_per_second=*/1, /*burst=*/2);
  EXPECT_EQ(limiter.Take("k", kT0), absl::ZeroDuration());
  EXPECT_EQ(limiter.Take("k", kT0), absl::ZeroDuration());
  // An hour idle earns 3600 tokens at this rate, but the bucket holds two.
  const absl::Time later = kT0 + absl::Hours(1);
  EXPECT_EQ(limiter.Take("k", later), absl::ZeroDuration());
  EXPECT_EQ(limiter.Take("k", later), absl::ZeroDuration());
  EXPECT_EQ(limiter.Take("k", later), absl::Seconds(1));
}

TEST(RateLimiterTest, KeysHaveTheirOwnBuckets) {
  RateLimiter limiter(/*rate_per_second=*/1, /*burst=*/2);
  EXPECT_EQ(limiter.Take("station-12", kT0), absl::ZeroDuration());
  EXPECT_EQ(limiter.Take("station-12", kT0), absl::ZeroDuration());
  EXPECT_GT(limiter.Take("station-12", kT0), absl::ZeroDuration());
  // Another station still has its whole burst.
  EXPECT_EQ(limiter.Take("station-13", kT0), absl::ZeroDuration());
  EXPECT_EQ(limiter.Take("station-13", kT0), absl::ZeroDuration());
  EXPECT_GT(limiter.Take("station-13", kT0), absl::ZeroDuration());
  // And taking from it gave station-12 nothing back.
  EXPECT_GT(limiter.Take("station-12", kT0), absl::ZeroDuration());
}

TEST(RateLimiterTest, ZeroOrNegativeRateDisablesLimiting) {
  // rate_per_second <= 0 disables limiting (rate_limiter.h).
  for (double rate : {0.0, -1.0, -1e9}) {
    RateLimiter limiter(rate, /*burst=*/1);
    EXPECT_EQ(limiter.rate(), rate);
    for (int i = 0; i < 1000; ++i) {
      ASSERT_EQ(limiter.Take("k", kT0), absl::ZeroDuration()) << "rate " << rate << " take " << i;
    }
  }
}

TEST(RateLimiterTest, BurstBelowOneIsOne) {
  // A burst below one token could never grant a call: it is raised to one.
  for (double burst : {0.0, 0.5, -3.0}) {
    RateLimiter limiter(/*rate_per_second=*/1, burst);
    EXPECT_EQ(limiter.burst(), 1.0);
    EXPECT_EQ(limiter.Take("k", kT0), absl::ZeroDuration()) << "burst " << burst;
    EXPECT_EQ(limiter.Take("k", kT0), absl::Seconds(1)) << "burst " << burst;
  }
}

TEST(RateLimiterTest, ClockGoingBackwardsGrantsNothing) {
  RateLimiter limiter(/*rate_per_second=*/1, /*burst=*/1);
  EXPECT_EQ(limiter.Take("k", kT0), absl::ZeroDuration());
  EXPECT_GT(limiter.Take("k", kT0 - absl::Seconds(10)), absl::ZeroDuration());
  // The earlier time did not reset the bucket's clock: a second after kT0 there is a token.
  EXPECT_EQ(limiter.Take("k", kT0 + absl::Seconds(1)), absl::ZeroDuration());
}

TEST(RateLimiterTest, ForgettingIdleKeysKeepsBusyOnes) {
  // Past 100000 keys the limiter drops buckets that have refilled. An exhausted bucket is
  // not idle and must survive: dropping it would hand its owner a fresh burst.
  constexpr int kIdleKeys = 99999;
  RateLimiter limiter(/*rate_per_second=*/1, /*burst=*/1);
  for (int i = 0; i < kIdleKeys; ++i) limiter.Take(absl::StrCat("idle-", i), kT0);
  const absl::Time later = kT0 + absl::Seconds(10);  // the idle buckets have refilled
  EXPECT_EQ(limiter.Take("busy", later), absl::ZeroDuration());
  EXPECT_GT(limiter.Take("busy", later), absl::ZeroDuration());
  EXPECT_EQ(limiter.Take("newcomer", later), absl::ZeroDuration());  // past the limit
  EXPECT_GT(limiter.Take("busy", later), absl::ZeroDuration());
  EXPECT_GT(limiter.Take("newcomer", later), absl::ZeroDuration());
  // A forgotten idle key comes back with a full bucket, as it would have had anyway.
  EXPECT_EQ(limiter.Take("idle-0", later), absl::ZeroDuration());
}

TEST(RateLimiterTest, ConcurrentTakesGrantTheBurstExactly) {
  constexpr int kBurst = 50;
  // Tiny rate and one instant: no refill, so exactly the burst is granted.
  RateLimiter limiter(/*rate_per_second=*/1e-6, kBurst);
  std::atomic<int> granted{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 100; ++i) {
        if (limiter.Take("shared", kT0) == absl::ZeroDuration()) ++granted;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(granted.load(), kBurst);
}

}  // namespace
}  // namespace fleetca::auth
