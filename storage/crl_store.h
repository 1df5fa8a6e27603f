#pragma once

// CrlStore: the CRLs fleetca publishes, per issuer, and what building one needs.

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace fleetca::storage {

// One revoked certificate, as a CRL lists it.
struct CrlEntryRow {
  std::string serial;  // bytes
  absl::Time revocation_date;
  int reason = 0;
  std::optional<absl::Time> invalidity_date;
  absl::Time not_after;  // the certificate's: it leaves the CRL once expired
};

// An issuer's revocations as the builder reads them: all of them, or what changed since the
// change count it already holds.
struct CrlEntryChanges {
  bool full = false;                 // entries are all the revocations (replace what is held)
  std::vector<CrlEntryRow> entries;  // full: every revocation; else: those changed, now
  std::vector<std::string> removed;  // not full: serials no longer revoked (hold released)
  int64_t changes = 0;               // the change count these reflect (at least)
};

struct StoredCrl {
  std::string issuer_id;
  int64_t crl_number = 0;
  int64_t base_crl_number = 0;  // a delta CRL's base (the complete CRL it updates); 0: complete
  absl::Time this_update, next_update;
  int64_t changes = 0;  // crl_state.changes it reflects
  int entries = 0;
  std::string der;  // empty when read without it
  bool der_stored = true;  // false: numbered, its DER not stored yet (or its builder failed)
};

// What the builder needs to decide about and build one issuer's next CRL.
struct CrlWork {
  int64_t changes = 0;                   // the issuer's revocation change count now
  std::optional<StoredCrl> latest;       // the newest complete CRL numbered (no DER), if any
  std::optional<StoredCrl> latest_delta; // the newest delta CRL numbered (no DER), if any
};

// Which CRL the builder's decide() asks for. Complete and delta CRLs share one sequence of
// numbers (RFC 5280 5.2.4); a delta's base is the newest complete CRL (CrlWork::latest).
enum class CrlKind { kNone, kComplete, kDelta };

class CrlStore {
 public:
  virtual ~CrlStore() = default;

  // Latest: the newest complete (or delta) CRL of issuer_id whose DER is stored (with the
  // DER when with_der); NOT_FOUND when none was stored yet.
  virtual absl::StatusOr<StoredCrl> Latest(const std::string& issuer_id, bool delta,
                                           bool with_der) = 0;
  // BuildIfNeeded runs build() for issuer_id under the builder lock (one builder at a time
  // across replicas) if decide(work) asks for a CRL, and commits the new CRL's number (the
  // newest number, complete or delta, + 1) with its metadata, without its DER: the caller
  // may serve the CRL from then on, and stores its DER with StoreDer. A delta's base is
  // work.latest (decide asks for one only when there is a complete CRL). Returns whether a
  // CRL was built (false: another replica is building, or decide said kNone). build receives the number and the
  // revocations: only those changed since known_changes when the change log still holds
  // them all (known_changes >= 0), else all of them (full). It returns the CRL's
  // thisUpdate, nextUpdate and entry count.
  struct Built {  // what is recorded of the CRL built (its DER goes to StoreDer)
    int entries = 0;  // how many it lists
    absl::Time this_update, next_update;
  };
  virtual absl::StatusOr<bool> BuildIfNeeded(
      const std::string& issuer_id, int64_t known_changes,
      const std::function<CrlKind(const CrlWork&)>& decide,
      const std::function<absl::StatusOr<Built>(int64_t crl_number, CrlEntryChanges& changes)>&
          build) = 0;
  // StoreDer stores the DER of a CRL numbered by BuildIfNeeded (other replicas serve it
  // from then on) and deletes the older CRLs of the issuer but the newest few of each kind.
  virtual absl::Status StoreDer(const std::string& issuer_id, int64_t crl_number,
                                const std::string& der) = 0;
};

}  // namespace fleetca::storage
