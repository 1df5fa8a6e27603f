#include "server/app/server_metrics.h"

#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <memory>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/logging.h"

namespace fleetca::app {
namespace {

using metrics::Sample;
using metrics::Type;

// The expiring-soon counts come from a query: run at most once a minute, however often
// Prometheus scrapes (several replicas, several scrapers).
class ExpiringCache {
 public:
  explicit ExpiringCache(storage::PgCertificateStore* store) : store_(store) {}

  std::vector<Sample> Read() {
    absl::MutexLock lock(&mu_);
    const absl::Time now = absl::Now();
    if (now - read_at_ >= absl::Minutes(1)) {
      auto counts = store_->CountExpiring(now, {absl::Hours(24), absl::Hours(24 * 7),
                                                absl::Hours(24 * 30)});
      if (counts.ok()) {
        samples_.clear();
        static const char* const kWithin[] = {"1d", "7d", "30d"};
        for (const auto& c : *counts) {
          for (size_t i = 0; i < c.within.size(); ++i) {
            samples_.push_back({{c.kind, kWithin[i]}, static_cast<double>(c.within[i])});
          }
        }
        read_at_ = now;
      } else if (!failing_) {
        LogWarning("metrics: cannot count expiring certificates",
                   {{"error", std::string(counts.status().message())}});
      }
      failing_ = !counts.ok();
    }
    return samples_;
  }

 private:
  storage::PgCertificateStore* store_;
  absl::Mutex mu_;
  absl::Time read_at_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  std::vector<Sample> samples_ ABSL_GUARDED_BY(mu_);
  bool failing_ ABSL_GUARDED_BY(mu_) = false;
};

// One gauge family per field of the CRLs served, labelled by issuer and kind.
void AddCrlGauge(metrics::Registry& registry, revocation::CrlPublisher* crls, const char* name,
                 const char* help, double (*value)(const revocation::CrlPublisher::Served&)) {
  registry.AddCallback(name, help, Type::kGauge, {"issuer", "kind"}, [crls, value] {
    std::vector<Sample> out;
    for (const auto& s : crls->ServedNow()) {
      out.push_back({{s.issuer_id, s.delta ? "delta" : "complete"}, value(s)});
    }
    return out;
  });
}

}  // namespace

void RegisterServerMetrics(metrics::Registry& registry, const MetricSources& src) {
  const double start_time = absl::ToDoubleSeconds(absl::Now() - absl::UnixEpoch());
  registry.AddCallback("process_start_time_seconds", "Start time of the process (Unix time).",
                       Type::kGauge, {}, [start_time] {
                         return std::vector<Sample>{{{}, start_time}};
                       });
  registry.AddCallback("process_cpu_seconds_total", "User and system CPU time spent.",
                       Type::kCounter, {}, [] {
                         struct rusage u {};
                         getrusage(RUSAGE_SELF, &u);
                         const double s = static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
                                          static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
                         return std::vector<Sample>{{{}, s}};
                       });
  registry.AddCallback("process_resident_memory_bytes", "Resident memory size.", Type::kGauge,
                       {}, [] {
                         long pages = 0, resident = 0;
                         if (FILE* f = std::fopen("/proc/self/statm", "r"); f != nullptr) {
                           if (std::fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
                           std::fclose(f);
                         }
                         return std::vector<Sample>{
                             {{}, static_cast<double>(resident) * static_cast<double>(sysconf(_SC_PAGESIZE))}};
                       });
  registry.AddCallback("fleetca_build_info", "The fleetca version running (value 1).",
                       Type::kGauge, {"version"}, [] {
                         return std::vector<Sample>{{{FLEETCA_VERSION}, 1}};
                       });
  storage::ConnectionPool* pool = src.pool;
  registry.AddCallback(
      "fleetca_db_pool_connections", "PostgreSQL connections of this replica's pool, by state.",
      Type::kGauge, {"state"}, [pool] {
        const storage::ConnectionPool::Stats s = pool->GetStats();
        return std::vector<Sample>{{{"idle"}, static_cast<double>(s.idle)},
                                   {{"in_use"}, static_cast<double>(s.open - s.idle)}};
      });
  registry.AddCallback("fleetca_db_pool_max_connections",
                       "The pool's most connections (--db_max_connections).", Type::kGauge, {},
                       [pool] {
                         return std::vector<Sample>{{{}, static_cast<double>(pool->GetStats().max)}};
                       });
  registry.AddCallback("fleetca_db_pool_waiting",
                       "Callers waiting for a pool connection now.", Type::kGauge, {}, [pool] {
                         return std::vector<Sample>{
                             {{}, static_cast<double>(pool->GetStats().waiting)}};
                       });

  AddCrlGauge(registry, src.crls, "fleetca_crl_number", "CRL number of the CRL served.",
              [](const revocation::CrlPublisher::Served& s) {
                return static_cast<double>(s.crl_number);
              });
  AddCrlGauge(registry, src.crls, "fleetca_crl_age_seconds",
              "Seconds since the thisUpdate of the CRL served.",
              [](const revocation::CrlPublisher::Served& s) {
                return absl::ToDoubleSeconds(absl::Now() - s.this_update);
              });
  AddCrlGauge(registry, src.crls, "fleetca_crl_next_update_seconds",
              "Seconds left until the nextUpdate of the CRL served (negative: stale).",
              [](const revocation::CrlPublisher::Served& s) {
                return absl::ToDoubleSeconds(s.next_update - absl::Now());
              });
  AddCrlGauge(registry, src.crls, "fleetca_crl_bytes", "Size of the CRL served (DER).",
              [](const revocation::CrlPublisher::Served& s) {
                return static_cast<double>(s.bytes);
              });
  AddCrlGauge(registry, src.crls, "fleetca_crl_entries", "Entries in the CRL served.",
              [](const revocation::CrlPublisher::Served& s) {
                return static_cast<double>(s.entries);
              });
  AddCrlGauge(registry, src.crls, "fleetca_crl_build_seconds",
              "Encoding and signing time of the CRL served, when this replica built it (0 "
              "when another replica did).",
              [](const revocation::CrlPublisher::Served& s) {
                return absl::ToDoubleSeconds(s.build_time);
              });

  api::StreamTracker* streams = src.streams;
  api::SyncFeed* feed = src.feed;
  registry.AddCallback("fleetca_sync_watchers",
                       "Brokers' Watch streams open on this replica, by broker.", Type::kGauge,
                       {"broker"}, [streams] {
                         std::vector<Sample> out;
                         for (const auto& b : streams->Open()) {
                           out.push_back({{b.broker}, static_cast<double>(b.streams)});
                         }
                         return out;
                       });
  registry.AddCallback(
      "fleetca_sync_lag_revisions",
      "Change-log revisions committed and not yet sent to a broker's stream on this replica.",
      Type::kGauge, {"broker"}, [streams, feed] {
        const int64_t head = feed->head();
        std::vector<Sample> out;
        for (const auto& b : streams->Open()) {
          out.push_back({{b.broker}, static_cast<double>(std::max<int64_t>(0, head - b.sent_revision))});
        }
        return out;
      });
  registry.AddCallback("fleetca_change_log_revision",
                       "Newest change-log revision this replica has read (sync feed).",
                       Type::kGauge, {}, [feed] {
                         return std::vector<Sample>{{{}, static_cast<double>(feed->head())}};
                       });

  policy::PolicyIndex* index = src.policy_index;
  registry.AddCallback("fleetca_policy_index_objects",
                       "Objects in the in-memory broker policy index, by kind.", Type::kGauge,
                       {"kind"}, [index] {
                         const policy::PolicyIndex::Counts c = index->counts();
                         return std::vector<Sample>{
                             {{"devices"}, static_cast<double>(c.devices)},
                             {{"identities"}, static_cast<double>(c.identities)},
                             {{"profiles"}, static_cast<double>(c.profiles)},
                             {{"assignments"}, static_cast<double>(c.assignments)},
                             {{"certificates"}, static_cast<double>(c.certificates)}};
                       });

  auto expiring = std::make_shared<ExpiringCache>(src.certificates);
  registry.AddCallback(
      "fleetca_certificates_expiring",
      "Certificates issued, not revoked, that expire within the window, by kind (counted "
      "at most once a minute).",
      Type::kGauge, {"kind", "within"}, [expiring] { return expiring->Read(); });
}

}  // namespace fleetca::app
