#pragma once

#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "storage/certificate_store.h"
#include "storage/connection_pool.h"
#include "storage/group_commit.h"

namespace pqxx {
class transaction_base;
}  // namespace pqxx

namespace fleetca::storage {

// CertificateChangeKey's key in SQL, for a row of certificates aliased c.
#define FLEETCA_CERTIFICATE_KEY_SQL                                                        \
  "(CASE WHEN c.kind = 'external_device' THEN c.issuer_id || '/' || encode(c.serial, 'hex') " \
  "ELSE encode(c.serial, 'hex') END)"
// A condition on a row of certificates aliased c: its key is one of the text[] parameter
// KEYS (for example "$1::text[]"). The serials of the keys (the part after the last '/')
// probe the primary key's index; the row's own key must then be one of KEYS. (An OR of a
// condition per kind made PostgreSQL scan the whole table.)
#define FLEETCA_CERTIFICATE_KEY_IN_SQL(KEYS)                                              \
  "(c.serial = ANY (ARRAY(SELECT decode(split_part(k, '/', -1), 'hex') FROM unnest(" KEYS \
  ") k)) AND " FLEETCA_CERTIFICATE_KEY_SQL " = ANY (" KEYS "))"

// ReadCertificate: the certificate (serial, issuer_id) as tx sees it; NOT_FOUND when none.
absl::StatusOr<CertificateRecord> ReadCertificate(pqxx::transaction_base& tx,
                                                  const std::string& serial,
                                                  const std::string& issuer_id);

class PgCertificateStore final : public CertificateStore {
 public:
  // Signed certificates are stored by group commits (GroupCommitter), up to
  // max_stores_in_flight at once (one by default: the next batch fills while one commits,
  // which measured fastest; docs/performance.md).
  explicit PgCertificateStore(ConnectionPool& pool, int max_stores_in_flight = 1);
  absl::StatusOr<IssueOutcome> Issue(const CertificateRecord& reserved,
                                     const std::function<absl::StatusOr<std::string>()>& sign,
                                     const RequestContext& ctx) override;
  absl::StatusOr<CertificateRecord> GetBySerial(const std::string& serial,
                                                const std::string& issuer_id = "") override;
  absl::StatusOr<CertificateRecord> GetByFingerprint(const std::string& fingerprint) override;
  absl::StatusOr<CertificateRecord> GetByRequestId(const std::string& request_id) override;
  absl::StatusOr<std::vector<CertificateRecord>> List(const CertificateFilter& filter,
                                                      const CertificateCursor& after,
                                                      int limit) override;

  // CountExpiring: certificates issued and not revoked or on hold whose notAfter falls
  // after `now` and within each of `windows` of it, by kind (the metrics' "expiring
  // soon"; a certificate already renewed still counts until it expires). One index range
  // scan over the longest window.
  struct ExpiringCount {
    std::string kind;
    std::vector<int64_t> within;  // one per window
  };
  absl::StatusOr<std::vector<ExpiringCount>> CountExpiring(
      absl::Time now, const std::vector<absl::Duration>& windows);

 private:
  struct Pending;
  static constexpr size_t kMaxBatch = 256;
  // Replayed reads the certificate an earlier request with the same id got, by sql (one of
  // the lookups of the .cc) with key; ABORTED (retry) if it is not there.
  absl::StatusOr<IssueOutcome> Replayed(const char* sql, const std::string& key);
  void StoreBatch(const std::vector<GroupCommitter::Item*>& batch);

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
  GroupCommitter stores_;
  absl::Mutex in_flight_mu_;
  std::set<std::string> in_flight_ ABSL_GUARDED_BY(in_flight_mu_);
};

}  // namespace fleetca::storage
