#include "common/metrics.h"

#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fleetca::metrics {
namespace {

using ::testing::HasSubstr;

TEST(MetricsTest, CountersRenderWithHelpTypeAndSortedLabels) {
  Registry registry;
  CounterFamily& calls = registry.AddCounter("fleetca_calls_total", "Calls handled.",
                                             {"method", "code"});
  calls.With({"Sign", "OK"}).Increment();
  calls.With({"Sign", "OK"}).Increment(2);
  calls.With({"Get", "NOT_FOUND"}).Increment();
  EXPECT_EQ(registry.Render(),
            "# HELP fleetca_calls_total Calls handled.\n"
            "# TYPE fleetca_calls_total counter\n"
            "fleetca_calls_total{method=\"Get\",code=\"NOT_FOUND\"} 1\n"
            "fleetca_calls_total{method=\"Sign\",code=\"OK\"} 3\n");
}

TEST(MetricsTest, LabelValuesAndHelpAreEscaped) {
  Registry registry;
  registry.AddCounter("x_total", "a \\ b\nc", {"v"}).With({"q\"\\\n"}).Increment();
  const std::string text = registry.Render();
  EXPECT_THAT(text, HasSubstr("# HELP x_total a \\\\ b\\nc\n"));
  EXPECT_THAT(text, HasSubstr("x_total{v=\"q\\\"\\\\\\n\"} 1\n"));
}

TEST(MetricsTest, HistogramBucketsAreCumulativeWithInfSumAndCount) {
  Registry registry;
  HistogramFamily& h = registry.AddHistogram("lat_seconds", "Latency.", {"m"}, {0.1, 1});
  h.With({"a"}).Observe(0.05);
  h.With({"a"}).Observe(0.1);  // on the bound: counted in le="0.1"
  h.With({"a"}).Observe(0.5);
  h.With({"a"}).Observe(7);
  EXPECT_EQ(registry.Render(),
            "# HELP lat_seconds Latency.\n"
            "# TYPE lat_seconds histogram\n"
            "lat_seconds_bucket{m=\"a\",le=\"0.1\"} 2\n"
            "lat_seconds_bucket{m=\"a\",le=\"1\"} 3\n"
            "lat_seconds_bucket{m=\"a\",le=\"+Inf\"} 4\n"
            "lat_seconds_sum{m=\"a\"} 7.65\n"
            "lat_seconds_count{m=\"a\"} 4\n");
}

TEST(MetricsTest, CallbacksAreReadAtEachScrape) {
  Registry registry;
  int scrapes = 0;
  registry.AddCallback("pool_connections", "Connections.", Type::kGauge, {"state"}, [&] {
    ++scrapes;
    return std::vector<Sample>{{{"idle"}, 2}, {{"in_use"}, 1.5}};
  });
  registry.AddCallback("up", "Up.", Type::kGauge, {}, [] { return std::vector<Sample>{{{}, 1}}; });
  EXPECT_EQ(registry.Render(),
            "# HELP pool_connections Connections.\n"
            "# TYPE pool_connections gauge\n"
            "pool_connections{state=\"idle\"} 2\n"
            "pool_connections{state=\"in_use\"} 1.5\n"
            "# HELP up Up.\n"
            "# TYPE up gauge\n"
            "up 1\n");
  registry.Render();
  EXPECT_EQ(scrapes, 2);
}

TEST(MetricsTest, ConcurrentIncrementsAreAllCounted) {
  Registry registry;
  CounterFamily& c = registry.AddCounter("n_total", "N.", {"t"});
  HistogramFamily& h = registry.AddHistogram("h_seconds", "H.", {}, LatencyBuckets());
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) {
        c.With({"x"}).Increment();
        h.With({}).Observe(0.001);
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(c.With({"x"}).value(), 40000u);
  EXPECT_EQ(h.With({}).Read().count, 40000u);
  EXPECT_NEAR(h.With({}).Read().sum, 40.0, 1e-6);
}

TEST(MetricsDeathTest, DuplicateOrBadNamesAbort) {
  EXPECT_DEATH(
      {
        Registry r;
        r.AddCounter("a_total", "A.");
        r.AddCounter("a_total", "A.");
      },
      "duplicate");
  EXPECT_DEATH({ Registry().AddCounter("bad-name", "B."); }, "bad");
  EXPECT_DEATH({ Registry().AddCounter("ok_total", "B.", {"__reserved"}); }, "bad");
  EXPECT_DEATH({ Registry().AddCounter("c_total", "C.", {"a"}).With({}); }, "takes 1");
}

}  // namespace
}  // namespace fleetca::metrics
