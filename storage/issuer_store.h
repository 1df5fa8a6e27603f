#pragma once

// IssuerStore: fleetca's CAs (root and intermediates by purpose) as stored rows. Private
// keys appear here only wrapped (pki/kek.h).

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/request_context.h"

namespace fleetca::storage {

enum class IssuerPurpose { kRoot, kDevices, kBrokers, kOperators };
enum class IssuerState { kPending, kActive, kRetired };

// Database spellings: "root", "devices", "brokers", "operators"; "pending", "active",
// "retired".
const char* IssuerPurposeName(IssuerPurpose purpose);
absl::StatusOr<IssuerPurpose> IssuerPurposeFromName(const std::string& name);  // INTERNAL if unknown
const char* IssuerStateName(IssuerState state);

struct Issuer {
  std::string id;  // "<purpose>-<generation>", e.g. "devices-1"
  IssuerPurpose purpose = IssuerPurpose::kRoot;
  std::string parent_id;  // "" for a root, or while the parent is outside (offline root)
  IssuerState state = IssuerState::kActive;
  std::string algorithm;  // pki::KeyAlgorithmName
  std::string subject;
  std::string certificate_der;  // "" while pending
  std::string chain_der;        // offline root: the parent chain, DER certificates concatenated
  std::string csr_der;          // offline root: the CSR handed out
  std::optional<absl::Time> not_before, not_after;
  std::string key_ciphertext;  // wrapped private key (pki::WrapPrivateKey)
  std::string kek_id;
  int64_t version = 0;
  absl::Time create_time, update_time;
  std::optional<absl::Time> activate_time, retire_time;
};

class IssuerStore {
 public:
  virtual ~IssuerStore() = default;

  // CreateAll inserts issuers in one transaction (all or none), journaled. ALREADY_EXISTS
  // when an id is taken or a purpose already has an active issuer (a concurrent
  // initialisation won: read again).
  virtual absl::Status CreateAll(const std::vector<Issuer>& issuers, const RequestContext& ctx) = 0;

  // Get returns one issuer. NOT_FOUND when unknown.
  virtual absl::StatusOr<Issuer> Get(const std::string& id) = 0;

  // List returns every issuer, ordered by id (there are few).
  virtual absl::StatusOr<std::vector<Issuer>> List() = 0;

  // Replace inserts `issuer` (active) and retires the active issuer of its purpose, in one
  // transaction, journaled; new_root, when set, is inserted first (a keyless outside root). Returns the retired issuer's id, or "". ALREADY_EXISTS when the
  // id is taken.
  virtual absl::StatusOr<std::string> Replace(const Issuer& issuer,
                                              const std::optional<Issuer>& new_root,
                                              const RequestContext& ctx) = 0;

  // Activate turns a pending issuer active with its certificate (offline root), retiring the
  // previously active issuer of the same purpose, in one transaction; new_root, when set, is
  // inserted first (an offline root registered as a trusted issuer without a key). NOT_FOUND;
  // ABORTED when the issuer is no longer pending or changed since expected_version. Returns
  // the retired issuer's id, or "".
  virtual absl::StatusOr<std::string> Activate(const std::string& id, int64_t expected_version,
                                               const std::string& certificate_der,
                                               const std::string& chain_der,
                                               const std::string& parent_id, absl::Time not_before,
                                               absl::Time not_after,
                                               const std::optional<Issuer>& new_root,
                                               const RequestContext& ctx) = 0;
};

}  // namespace fleetca::storage
