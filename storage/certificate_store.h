#pragma once

// CertificateStore: the certificate inventory, and the issuance transaction that makes
// "nothing lost, nothing doubled" hold (issue: certificate issuance, item 5).

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/request_context.h"

namespace fleetca::storage {

// kServer: fleetca's own API server certificates (from the brokers CA).
enum class CertificateKind { kDevice, kBroker, kIdentity, kExternalDevice, kServer };
enum class CertificateStatus { kReserved, kIssued, kRevoked, kOnHold };

const char* CertificateKindName(CertificateKind kind);      // "device", "broker", ...
absl::StatusOr<CertificateKind> CertificateKindFromName(const std::string& name);
const char* CertificateStatusName(CertificateStatus status);  // "reserved", "issued", ...
absl::StatusOr<CertificateStatus> CertificateStatusFromName(const std::string& name);

struct CertificateRecord {
  std::string serial;  // bytes, big-endian
  std::string issuer_id;
  CertificateKind kind = CertificateKind::kDevice;
  std::string comm_id;        // device kinds
  std::string broker_name;    // broker kind
  std::string identity_name;  // identity kind
  std::string subject;        // RFC 2253
  std::string key_algorithm;  // pki::KeyAlgorithmName
  std::vector<std::string> dns_names;
  std::vector<std::string> ip_addresses;
  CertificateStatus status = CertificateStatus::kReserved;
  std::string profile;
  absl::Time not_before;
  absl::Time not_after;
  std::string der;          // "" while reserved
  std::string fingerprint;  // SHA-256 of der, bytes
  std::string request_id;
  std::string csr_sha256;  // bytes
  std::string requester;
  std::string renewed_from;  // serial bytes, or ""
  absl::Time create_time;
};

struct IssueOutcome {
  CertificateRecord record;
  bool replayed = false;  // the request id was used before: record is that certificate
};

struct CertificateFilter {
  std::string comm_id;
  std::string issuer_id;
  std::string broker_name;
  std::optional<CertificateKind> kind;  // kDevice includes kExternalDevice
  std::optional<CertificateStatus> status;
  std::optional<absl::Time> expires_after;   // not_after >= this
  std::optional<absl::Time> expires_before;  // not_after < this
  std::string requester;                     // who asked for it ("" = anyone)
};

// A position in List's order; the default is the start.
struct CertificateCursor {
  int64_t create_micros = 0;  // create_time, microseconds since the epoch
  std::string serial;         // bytes
};

// CertificateChangeKey: a certificate's change-log key (entity types "certificate" and
// "revocation"): its serial in hex for fleetca's own certificates, "<issuer_id>/<serial in
// hex>" for an external CA's (whose serials are unique only per issuer).
std::string CertificateChangeKey(CertificateKind kind, const std::string& issuer_id,
                                 const std::string& serial);

// AmbiguousSerial: INVALID_ARGUMENT (issuer_id) for a serial that names certificates of
// several issuers, listing them (some of them, with "..." after, unless complete).
absl::Status AmbiguousSerial(const std::string& serial, const std::vector<std::string>& issuers,
                             bool complete);

// OneCertificate: the single certificate of a lookup by serial (found: the matches, at
// most a few): NOT_FOUND for none, INVALID_ARGUMENT (issuer_id) for several.
absl::StatusOr<CertificateRecord> OneCertificate(std::vector<CertificateRecord> found,
                                                 const std::string& serial,
                                                 const std::string& issuer_id);

class CertificateStore {
 public:
  virtual ~CertificateStore() = default;

  // Issue:
  //   1. if the request id was used before, returns that certificate with replayed = true
  //      (the caller checks that the request is the same) and does nothing else; a retry
  //      that arrives while the first attempt is running waits for it;
  //   2. the subject must exist: a device kind's comm_id registered and active (NOT_FOUND,
  //      FAILED_PRECONDITION otherwise), a broker kind's broker registered (NOT_FOUND);
  //      only then is sign() called for the DER;
  //   3. the DER is stored with the record's fields (status issued) and its audit entry,
  //      in one transaction that checks 1 and 2 again with the subject's row locked (a
  //      device suspended meanwhile gets nothing). Serial uniqueness is the primary key's.
  // The caller gets the record only once it is committed; a failure anywhere leaves nothing.
  virtual absl::StatusOr<IssueOutcome> Issue(const CertificateRecord& record,
                                             const std::function<absl::StatusOr<std::string>()>& sign,
                                             const RequestContext& ctx) = 0;

  // IssueAsync is Issue without a waiting caller: done gets what Issue would return, on a
  // thread of the store's (or at once, on the caller's). sign and done own what they
  // capture. The default runs Issue on the caller's thread.
  using SignFn = std::function<absl::StatusOr<std::string>()>;
  using IssueDone = std::function<void(absl::StatusOr<IssueOutcome>)>;
  virtual void IssueAsync(CertificateRecord record, SignFn sign, RequestContext ctx,
                          IssueDone done) {
    done(Issue(record, sign, ctx));
  }

  // GetBySerial / GetByFingerprint: NOT_FOUND when unknown. Reserved rows are never visible
  // (they only exist inside an uncommitted issuance). A serial names one certificate of
  // fleetca's, but external CAs' serials may repeat (another's, or one of fleetca's):
  // issuer_id ("" for any) narrows it, and a serial of several issuers without it is
  // INVALID_ARGUMENT (issuer_id).
  virtual absl::StatusOr<CertificateRecord> GetBySerial(const std::string& serial,
                                                        const std::string& issuer_id = "") = 0;
  virtual absl::StatusOr<CertificateRecord> GetByFingerprint(const std::string& fingerprint) = 0;
  // GetByRequestId: the certificate issued for a request id; NOT_FOUND when none.
  virtual absl::StatusOr<CertificateRecord> GetByRequestId(const std::string& request_id) = 0;

  // List returns up to `limit` certificates after the cursor, ordered by (create_time,
  // serial): the order they were issued in, stable while more are issued.
  virtual absl::StatusOr<std::vector<CertificateRecord>> List(const CertificateFilter& filter,
                                                              const CertificateCursor& after,
                                                              int limit) = 0;
};

}  // namespace fleetca::storage
