#pragma once

// Metrics in the Prometheus text exposition format (version 0.0.4), served on GET /metrics.
//
// Counters and histograms are updated where things happen (lock-free once a labelled child
// is found; cache the child's pointer on hot paths). Gauges and counters whose value
// another component already keeps (pool use, CRL sizes, stream positions) are read when
// scraped, through a callback: nothing is copied twice and nothing can drift.
//
// Written here, not taken from a library: Debian 12 packages no Prometheus client for
// C++ (prometheus-cpp is not in bookworm), and the exposition format is a few lines.
//
//   metrics::Registry registry;
//   metrics::CounterFamily& calls =
//       registry.AddCounter("fleetca_calls_total", "Calls handled.", {"method", "code"});
//   calls.With({"Sign", "OK"}).Increment();
//   std::string text = registry.Render();

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"

namespace fleetca::metrics {

// Label values, in the order of the family's label names.
using Labels = std::vector<std::string>;

class Counter {
 public:
  void Increment(uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

class Histogram {
 public:
  // bounds: the buckets' upper bounds, ascending (the +Inf bucket is implicit).
  explicit Histogram(const std::vector<double>& bounds);
  void Observe(double value);

  struct Snapshot {
    std::vector<uint64_t> cumulative;  // one per bound, then +Inf
    double sum = 0;
    uint64_t count = 0;
  };
  Snapshot Read() const;

 private:
  const std::vector<double>& bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;  // bounds_.size() + 1
  std::atomic<uint64_t> count_{0};
  std::atomic<double> sum_{0};
};

// A family: one metric name, its help, its label names, and a child per set of values.
class CounterFamily {
 public:
  CounterFamily(std::string name, std::string help, std::vector<std::string> label_names);
  // With returns the child for these values (as many as the label names), made on first
  // use; the reference stays valid as long as the family.
  Counter& With(const Labels& values);
  void Render(std::string& out) const;

 private:
  const std::string name_, help_;
  const std::vector<std::string> label_names_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<Labels, std::unique_ptr<Counter>> children_ ABSL_GUARDED_BY(mu_);
};

class HistogramFamily {
 public:
  HistogramFamily(std::string name, std::string help, std::vector<std::string> label_names,
                  std::vector<double> bounds);
  Histogram& With(const Labels& values);
  void Render(std::string& out) const;

 private:
  const std::string name_, help_;
  const std::vector<std::string> label_names_;
  const std::vector<double> bounds_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<Labels, std::unique_ptr<Histogram>> children_ ABSL_GUARDED_BY(mu_);
};

// A value read at scrape time.
struct Sample {
  Labels labels;
  double value = 0;
};

enum class Type { kCounter, kGauge };

// Latency buckets for calls that take from a fraction of a millisecond to seconds.
std::vector<double> LatencyBuckets();

class Registry {
 public:
  // Names must be valid Prometheus names and unique in the registry (checked: a duplicate
  // or a bad name is a programming error and aborts).
  CounterFamily& AddCounter(const std::string& name, const std::string& help,
                            std::vector<std::string> label_names = {});
  HistogramFamily& AddHistogram(const std::string& name, const std::string& help,
                                std::vector<std::string> label_names, std::vector<double> bounds);
  // AddCallback: a metric whose samples `read` returns at each scrape (called without any
  // registry lock held; it must be thread-safe and quick).
  void AddCallback(const std::string& name, const std::string& help, Type type,
                   std::vector<std::string> label_names, std::function<std::vector<Sample>()> read);

  // Render: every metric in registration order, in the text exposition format.
  std::string Render() const;

 private:
  struct Callback {
    std::string name, help;
    Type type;
    std::vector<std::string> label_names;
    std::function<std::vector<Sample>()> read;
  };
  struct Entry {
    std::unique_ptr<CounterFamily> counter;
    std::unique_ptr<HistogramFamily> histogram;
    std::unique_ptr<Callback> callback;
  };
  void Register(const std::string& name, const std::vector<std::string>& label_names);

  mutable absl::Mutex mu_;
  std::vector<std::string> names_ ABSL_GUARDED_BY(mu_);
  std::deque<Entry> entries_ ABSL_GUARDED_BY(mu_);  // stable addresses
};

// The content type of Render's output.
inline constexpr char kContentType[] = "text/plain; version=0.0.4; charset=utf-8";

}  // namespace fleetca::metrics
