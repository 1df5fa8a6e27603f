#pragma once

#include <deque>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "storage/certificate_store.h"
#include "storage/connection_pool.h"

namespace fleetca::storage {

class PgCertificateStore final : public CertificateStore {
 public:
  // max_flushers: group commits in flight at once (each holds a pooled connection).
  explicit PgCertificateStore(ConnectionPool& pool, int max_flushers = 4)
      : pool_(pool), max_flushers_(max_flushers < 1 ? 1 : max_flushers) {}

  absl::StatusOr<IssueOutcome> Issue(const CertificateRecord& reserved,
                                     const std::function<absl::StatusOr<std::string>()>& sign,
                                     const RequestContext& ctx) override;
  absl::StatusOr<CertificateRecord> GetBySerial(const std::string& serial) override;
  absl::StatusOr<CertificateRecord> GetByFingerprint(const std::string& fingerprint) override;
  absl::StatusOr<CertificateRecord> GetByRequestId(const std::string& request_id) override;
  absl::StatusOr<std::vector<CertificateRecord>> List(const CertificateFilter& filter,
                                                      const CertificateCursor& after,
                                                      int limit) override;

 private:
  struct Pending;
  static constexpr size_t kMaxBatch = 256;
  // Replayed reads the certificate an earlier request with the same id got.
  absl::StatusOr<IssueOutcome> Replayed(const std::string& serial_hex);
  // Store queues a signed certificate and returns once it is stored (or failed): a group
  // commit, see the .cc.
  void Store(Pending* pending);
  void StoreBatch(const std::vector<Pending*>& batch);

  // InFlight holds a request id for the life of one Issue call in this process.
  class InFlight {
   public:
    InFlight(PgCertificateStore* store, const std::string& request_id);
    ~InFlight();
    InFlight(const InFlight&) = delete;
    InFlight& operator=(const InFlight&) = delete;

   private:
    PgCertificateStore* store_;
    std::string request_id_;
  };

  ConnectionPool& pool_;
  const int max_flushers_;
  absl::Mutex in_flight_mu_;
  std::set<std::string> in_flight_ ABSL_GUARDED_BY(in_flight_mu_);
  absl::Mutex batch_mu_;
  std::deque<Pending*> queue_ ABSL_GUARDED_BY(batch_mu_);
  int flushers_ ABSL_GUARDED_BY(batch_mu_) = 0;
};

}  // namespace fleetca::storage
