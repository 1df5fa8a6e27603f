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
};

struct StoredCrl {
  std::string issuer_id;
  int64_t crl_number = 0;
  absl::Time this_update, next_update;
  int64_t changes = 0;  // crl_state.changes it reflects
  int entries = 0;
  std::string der;  // empty when read without it
};

// What the builder needs to decide about and build one issuer's next CRL.
struct CrlWork {
  int64_t changes = 0;                 // the issuer's revocation change count now
  std::optional<StoredCrl> latest;     // the newest CRL (without DER), if any
};

class CrlStore {
 public:
  virtual ~CrlStore() = default;

  // Latest: the newest CRL of issuer_id with its DER; NOT_FOUND when none was built yet.
  virtual absl::StatusOr<StoredCrl> Latest(const std::string& issuer_id) = 0;
  // Build runs build() for issuer_id under the builder lock (one builder at a time across
  // replicas) if decide(work) says so, and stores its CRL numbered latest + 1. Returns
  // whether a CRL was stored (false: another replica is building, or decide said no).
  // build receives the next number and the entries (revocations of certificates not yet
  // expired), and returns the DER and its thisUpdate/nextUpdate.
  struct Built {
    std::string der;
    absl::Time this_update, next_update;
  };
  virtual absl::StatusOr<bool> BuildIfNeeded(
      const std::string& issuer_id, const std::function<bool(const CrlWork&)>& decide,
      const std::function<absl::StatusOr<Built>(int64_t crl_number,
                                                const std::vector<CrlEntryRow>& entries)>&
          build) = 0;
};

}  // namespace fleetca::storage
