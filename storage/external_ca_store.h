#pragma once

// ExternalCaStore: customer CAs fleetca trusts to verify device certificates without holding
// their keys (rows of issuers with purpose 'external'), the device certificates registered
// under them, and the customer CRLs imported for them. Every change commits with its audit
// entry and a change-log revision (entity "issuer" for a CA, "certificate" for a registered
// certificate, "revocation" and "crl" for an import), so brokers' sync streams carry it.

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/request_context.h"
#include "storage/certificate_store.h"

namespace fleetca::storage {

struct ExternalCa {
  std::string id;  // shares the issuers' id namespace
  std::string display_name;
  std::string subject;          // RFC 2253
  std::string certificate_der;  // the CA certificate
  absl::Time not_before, not_after;
  bool enabled = true;
  bool accept_unregistered = false;
  // The last imported customer CRL: its number (0 when it has none or none was imported),
  // its nextUpdate (nullopt when none was imported).
  int64_t crl_number = 0;
  std::optional<absl::Time> crl_next_update;
  int64_t version = 0;
  absl::Time create_time, update_time;
};

struct ExternalCaUpdate {
  std::optional<std::string> display_name;
  std::optional<bool> enabled;
  std::optional<bool> accept_unregistered;
};

struct RegisteredCertificate {
  CertificateRecord record;
  bool already_registered = false;  // the same certificate was registered before
};

// A customer CRL, parsed and verified by the caller.
struct ImportedCrl {
  std::string der;
  std::optional<int64_t> crl_number;  // nullopt: the CRL carries none
  absl::Time this_update;
  std::optional<absl::Time> next_update;
  struct Entry {
    std::string serial;  // bytes
    int reason = -1;     // RFC 5280 code, -1 when the entry has none
    absl::Time revoke_time;
  };
  std::vector<Entry> entries;
};

struct ImportCrlOutcome {
  bool already_imported = false;  // this very CRL was the last one imported: nothing changed
  int newly_revoked = 0;          // tracked certificates this import revoked
};

class ExternalCaStore {
 public:
  virtual ~ExternalCaStore() = default;

  // Create inserts an enabled external CA. ALREADY_EXISTS when the id is taken (by any
  // issuer, a removed external CA included) or the certificate is registered already.
  virtual absl::StatusOr<ExternalCa> Create(const ExternalCa& ca, const RequestContext& ctx) = 0;
  // Get: NOT_FOUND when unknown or removed.
  virtual absl::StatusOr<ExternalCa> Get(const std::string& id) = 0;
  // List: up to limit CAs with id > after, by id (removed ones left out).
  virtual absl::StatusOr<std::vector<ExternalCa>> List(const std::string& after, int limit) = 0;
  // Update: NOT_FOUND; ABORTED when expected_version is set and stale.
  virtual absl::StatusOr<ExternalCa> Update(const std::string& id, const ExternalCaUpdate& update,
                                            std::optional<int64_t> expected_version,
                                            const RequestContext& ctx) = 0;
  // Remove: NOT_FOUND; ABORTED as Update; FAILED_PRECONDITION while enabled. The row stays
  // (its certificates keep their issuer), out of every view; its id stays taken.
  virtual absl::Status Remove(const std::string& id, std::optional<int64_t> expected_version,
                              const RequestContext& ctx) = 0;

  // RegisterCertificate adds a device certificate of an external CA (record.kind
  // kExternalDevice, verified by the caller) to the inventory, in one transaction that
  // locks the CA (enabled: FAILED_PRECONDITION otherwise; NOT_FOUND when removed) and the
  // device (registered: NOT_FOUND; active: FAILED_PRECONDITION). The same certificate again
  // returns it with already_registered; another certificate with the same issuer and serial
  // is ALREADY_EXISTS.
  virtual absl::StatusOr<RegisteredCertificate> RegisterCertificate(const CertificateRecord& record,
                                                                    const RequestContext& ctx) = 0;

  // ImportCrl stores a customer CRL of an enabled or disabled CA (NOT_FOUND when unknown),
  // replacing the previous one, which it must be newer than (by CRL number when both have
  // one, else by thisUpdate: FAILED_PRECONDITION); the same CRL again is already_imported.
  // Tracked certificates it lists are revoked (from_imported_crl), and every listed serial
  // reaches brokers.
  virtual absl::StatusOr<ImportCrlOutcome> ImportCrl(const std::string& id, const ImportedCrl& crl,
                                                     const RequestContext& ctx) = 0;
  // GetImportedCrl: the DER of the last CRL imported for the CA; NOT_FOUND when none.
  virtual absl::StatusOr<ImportedCrl> GetImportedCrl(const std::string& id) = 0;
};

// AllExternalCas: every external CA (enabled or not, removed ones left out), by id, read a
// page of List at a time.
absl::StatusOr<std::vector<ExternalCa>> AllExternalCas(ExternalCaStore& store);

}  // namespace fleetca::storage
