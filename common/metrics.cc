#include "common/metrics.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "absl/strings/str_cat.h"

namespace fleetca::metrics {
namespace {

bool ValidName(const std::string& name, bool label) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                        (!label && c == ':');
    if (!letter && !(i > 0 && c >= '0' && c <= '9')) return false;
  }
  return !(label && name.rfind("__", 0) == 0);
}

// Prometheus's float format: integers without a fraction, +Inf/-Inf/NaN spelled out.
void AppendValue(std::string& out, double v) {
  if (std::isnan(v)) {
    out += "NaN";
  } else if (std::isinf(v)) {
    out += v > 0 ? "+Inf" : "-Inf";
  } else if (v == std::floor(v) && std::fabs(v) < 1e15) {
    absl::StrAppend(&out, static_cast<int64_t>(v));
  } else {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.9g", v);
    out += buf;
  }
}

void AppendEscaped(std::string& out, const std::string& text, bool quote) {
  for (char c : text) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (quote && c == '"') {
      out += "\\\"";
    } else {
      out += c;
    }
  }
}

void AppendHeader(std::string& out, const std::string& name, const std::string& help,
                  const char* type) {
  absl::StrAppend(&out, "# HELP ", name, " ");
  AppendEscaped(out, help, /*quote=*/false);
  absl::StrAppend(&out, "\n# TYPE ", name, " ", type, "\n");
}

// name{a="x",b="y"[,extra_name="extra_value"]}
void AppendSeries(std::string& out, const std::string& name, const std::vector<std::string>& names,
                  const Labels& values, const char* extra_name = nullptr,
                  const std::string& extra_value = "") {
  out += name;
  if (names.empty() && extra_name == nullptr) return;
  out += '{';
  for (size_t i = 0; i < names.size(); ++i) {
    if (i > 0) out += ',';
    absl::StrAppend(&out, names[i], "=\"");
    AppendEscaped(out, i < values.size() ? values[i] : "", /*quote=*/true);
    out += '"';
  }
  if (extra_name != nullptr) {
    if (!names.empty()) out += ',';
    absl::StrAppend(&out, extra_name, "=\"", extra_value, "\"");
  }
  out += '}';
}

void CheckArity(const std::string& name, const std::vector<std::string>& names,
                const Labels& values) {
  if (values.size() != names.size()) {
    std::fprintf(stderr, "metrics: %s takes %zu label values, got %zu\n", name.c_str(),
                 names.size(), values.size());
    std::abort();
  }
}

// Children sorted by their labels: a stable, readable output.
template <typename Map>
std::vector<typename Map::const_pointer> Sorted(const Map& children) {
  std::vector<typename Map::const_pointer> out;
  out.reserve(children.size());
  for (const auto& entry : children) out.push_back(&entry);
  std::sort(out.begin(), out.end(), [](auto* a, auto* b) { return a->first < b->first; });
  return out;
}

}  // namespace

Histogram::Histogram(const std::vector<double>& bounds)
    : bounds_(bounds), buckets_(new std::atomic<uint64_t>[bounds.size() + 1]) {
  for (size_t i = 0; i <= bounds_.size(); ++i) buckets_[i].store(0, std::memory_order_relaxed);
}

void Histogram::Observe(double value) {
  const size_t i = std::lower_bound(bounds_.begin(), bounds_.end(), value) - bounds_.begin();
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  double sum = sum_.load(std::memory_order_relaxed);
  while (!sum_.compare_exchange_weak(sum, sum + value, std::memory_order_relaxed)) {
  }
  count_.fetch_add(1, std::memory_order_relaxed);
}

Histogram::Snapshot Histogram::Read() const {
  Snapshot s;
  s.cumulative.resize(bounds_.size() + 1);
  uint64_t running = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    running += buckets_[i].load(std::memory_order_relaxed);
    s.cumulative[i] = running;
  }
  // The count is the +Inf bucket: consistent with the buckets even while others observe.
  s.count = running;
  s.sum = sum_.load(std::memory_order_relaxed);
  return s;
}

CounterFamily::CounterFamily(std::string name, std::string help,
                             std::vector<std::string> label_names)
    : name_(std::move(name)), help_(std::move(help)), label_names_(std::move(label_names)) {}

Counter& CounterFamily::With(const Labels& values) {
  CheckArity(name_, label_names_, values);
  absl::MutexLock lock(&mu_);
  std::unique_ptr<Counter>& child = children_[values];
  if (child == nullptr) child = std::make_unique<Counter>();
  return *child;
}

void CounterFamily::Render(std::string& out) const {
  AppendHeader(out, name_, help_, "counter");
  absl::MutexLock lock(&mu_);
  for (const auto* child : Sorted(children_)) {
    AppendSeries(out, name_, label_names_, child->first);
    out += ' ';
    absl::StrAppend(&out, child->second->value(), "\n");
  }
}

HistogramFamily::HistogramFamily(std::string name, std::string help,
                                 std::vector<std::string> label_names, std::vector<double> bounds)
    : name_(std::move(name)),
      help_(std::move(help)),
      label_names_(std::move(label_names)),
      bounds_(std::move(bounds)) {}

Histogram& HistogramFamily::With(const Labels& values) {
  CheckArity(name_, label_names_, values);
  absl::MutexLock lock(&mu_);
  std::unique_ptr<Histogram>& child = children_[values];
  if (child == nullptr) child = std::make_unique<Histogram>(bounds_);
  return *child;
}

void HistogramFamily::Render(std::string& out) const {
  AppendHeader(out, name_, help_, "histogram");
  absl::MutexLock lock(&mu_);
  const std::string bucket = name_ + "_bucket";
  for (const auto* child : Sorted(children_)) {
    const Histogram::Snapshot s = child->second->Read();
    for (size_t i = 0; i <= bounds_.size(); ++i) {
      std::string le;
      AppendValue(le, i < bounds_.size() ? bounds_[i] : INFINITY);
      AppendSeries(out, bucket, label_names_, child->first, "le", le);
      absl::StrAppend(&out, " ", s.cumulative[i], "\n");
    }
    AppendSeries(out, name_ + "_sum", label_names_, child->first);
    out += ' ';
    AppendValue(out, s.sum);
    out += '\n';
    AppendSeries(out, name_ + "_count", label_names_, child->first);
    absl::StrAppend(&out, " ", s.count, "\n");
  }
}

std::vector<double> LatencyBuckets() {
  return {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
}

void Registry::Register(const std::string& name, const std::vector<std::string>& label_names) {
  bool ok = ValidName(name, /*label=*/false);
  for (const std::string& label : label_names) ok = ok && ValidName(label, /*label=*/true);
  if (!ok || std::find(names_.begin(), names_.end(), name) != names_.end()) {
    std::fprintf(stderr, "metrics: bad or duplicate metric %s\n", name.c_str());
    std::abort();
  }
  names_.push_back(name);
}

CounterFamily& Registry::AddCounter(const std::string& name, const std::string& help,
                                    std::vector<std::string> label_names) {
  absl::MutexLock lock(&mu_);
  Register(name, label_names);
  Entry& e = entries_.emplace_back();
  e.counter = std::make_unique<CounterFamily>(name, help, std::move(label_names));
  return *e.counter;
}

HistogramFamily& Registry::AddHistogram(const std::string& name, const std::string& help,
                                        std::vector<std::string> label_names,
                                        std::vector<double> bounds) {
  absl::MutexLock lock(&mu_);
  Register(name, label_names);
  if (!std::is_sorted(bounds.begin(), bounds.end())) {
    std::fprintf(stderr, "metrics: %s: bounds must ascend\n", name.c_str());
    std::abort();
  }
  Entry& e = entries_.emplace_back();
  e.histogram = std::make_unique<HistogramFamily>(name, help, std::move(label_names),
                                                  std::move(bounds));
  return *e.histogram;
}

void Registry::AddCallback(const std::string& name, const std::string& help, Type type,
                           std::vector<std::string> label_names,
                           std::function<std::vector<Sample>()> read) {
  absl::MutexLock lock(&mu_);
  Register(name, label_names);
  Entry& e = entries_.emplace_back();
  e.callback = std::make_unique<Callback>(
      Callback{name, help, type, std::move(label_names), std::move(read)});
}

std::string Registry::Render() const {
  // Families and callbacks are never removed: collect the pointers, then render unlocked
  // (a callback may take its own component's locks).
  std::vector<const Entry*> entries;
  {
    absl::MutexLock lock(&mu_);
    for (const Entry& e : entries_) entries.push_back(&e);
  }
  std::string out;
  for (const Entry* e : entries) {
    if (e->counter != nullptr) {
      e->counter->Render(out);
    } else if (e->histogram != nullptr) {
      e->histogram->Render(out);
    } else {
      const Callback& c = *e->callback;
      std::vector<Sample> samples = c.read();
      std::sort(samples.begin(), samples.end(),
                [](const Sample& a, const Sample& b) { return a.labels < b.labels; });
      AppendHeader(out, c.name, c.help, c.type == Type::kCounter ? "counter" : "gauge");
      for (const Sample& s : samples) {
        CheckArity(c.name, c.label_names, s.labels);
        AppendSeries(out, c.name, c.label_names, s.labels);
        out += ' ';
        AppendValue(out, s.value);
        out += '\n';
      }
    }
  }
  return out;
}

}  // namespace fleetca::metrics
