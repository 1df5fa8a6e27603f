#pragma once

#include <deque>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
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
  // Issue waits for IssueAsync.
  absl::StatusOr<IssueOutcome> Issue(const CertificateRecord& record,
                                     const std::function<absl::StatusOr<std::string>()>& sign,
                                     const RequestContext& ctx) override;
  // IssueAsync: done runs on the group committer's thread once the batch holding the
  // request has committed (or failed).
  void IssueAsync(CertificateRecord record, SignFn sign, RequestContext ctx,
                  IssueDone done) override;
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

  // One request id at a time in this process (Admit, Release): a retry sent while its
  // first attempt is still running waits for it and then gets its answer, without a second
  // signature.
  void Admit(Pending* pending);
  void Release(const std::string& request_id);
  // Outcome: what Issue returns for a pending request whose batch has run.
  absl::StatusOr<IssueOutcome> Outcome(Pending& pending);

  ConnectionPool& pool_;
  absl::Mutex in_flight_mu_;
  // Request ids being issued, each with the requests waiting for it to finish.
  absl::flat_hash_map<std::string, std::deque<Pending*>> in_flight_ ABSL_GUARDED_BY(in_flight_mu_);
  // Last: its workers stop (running what is queued) before the members above go.
  GroupCommitter stores_;
};

}  // namespace fleetca::storage
