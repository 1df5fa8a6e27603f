#pragma once

// PolicyIndex: the broker policy in memory, for the authorization queries brokers make
// per connection and per topic (BrokerAuthService): every device's status, groups and
// attributes, every identity's status, the ACL profiles and their assignments, every
// unexpired client certificate's state (by serial and by fingerprint) and the issuers
// client certificates chain to. Loaded
// once, then kept current from the change log (Refresh, on a thread of the caller's, woken
// by NOTIFY fleetca_changes): a decision never waits for the database, and reflects every
// change committed up to the revision it reports.
//
// Consistency: Load reads the change log's head first, then every table (each row at its
// state then or later); Refresh re-reads the current state of every key changed after that
// head. Re-reading is idempotent, so the index converges on the database whatever
// interleaving happened during the load.

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "acl/policy.h"
#include "server/policy/policy.h"
#include "storage/acl_store.h"
#include "storage/change_log.h"
#include "storage/device_store.h"
#include "storage/identity_store.h"
#include "storage/sync_store.h"

namespace fleetca::policy {

// Why CheckTopic refused (TopicDenyReason).
enum class TopicVerdict { kAllowed, kNoMatchingRule, kDenyRule, kPrincipalUnknown, kPrincipalInactive };

struct TopicAnswer {
  TopicVerdict verdict = TopicVerdict::kNoMatchingRule;
  std::optional<EffectiveRule> matched;  // the rule that decided, if one did
  int64_t revision = 0;                  // the change-log revision the answer reflects
};

// Why AuthorizeConnect refused (ConnectDenyReason).
enum class ConnectVerdict {
  kAllowed,
  kCertificateUnknown,
  kUntrustedIssuer,
  kCertificateExpired,
  kCertificateRevoked,
  kCertificateOnHold,
  kClientIdMismatch,
  kPrincipalUnknown,
  kPrincipalInactive,
  kIssuerDisabled,  // a disabled external CA
};

// An issuer of client certificates as the index holds it: fleetca's roots, devices and
// operators CAs, and the external CAs (disabled ones included).
struct ClientIssuer {
  std::string id;
  std::string der;
  bool external = false;
  bool enabled = true;
  bool accept_unregistered = false;
};

// The client certificate AuthorizeConnect asks about: by SHA-256 fingerprint (bytes), or
// by serial (bytes, with its issuer when given).
struct CertificateRef {
  std::string fingerprint;
  std::string serial;
  std::string issuer_id;
};

struct ConnectAnswer {
  ConnectVerdict verdict = ConnectVerdict::kCertificateUnknown;
  std::string message;  // for the broker's log
  // The certificate's principal, when the certificate is known.
  std::optional<PrincipalType> principal_type;
  std::string principal_id;
  std::string serial;  // bytes, when known
  std::string issuer_id;
  std::vector<EffectiveRule> rules;  // when allowed
  int64_t revision = 0;
};

class PolicyIndex {
 public:
  PolicyIndex(storage::DeviceStore& devices, storage::IdentityStore& identities,
              storage::AclStore& acls, storage::SyncStore& sync, storage::ChangeLogReader& log)
      : devices_store_(devices),
        identities_store_(identities),
        acl_store_(acls),
        sync_store_(sync),
        log_(log) {}

  // Load reads everything (replacing what is held). Then the index answers.
  absl::Status Load();
  // Refresh applies the changes committed since the last Load or Refresh; returns how many
  // changes it read. FAILED_PRECONDITION before Load.
  absl::StatusOr<int> Refresh();

  bool loaded() const;
  int64_t revision() const;

  // CheckTopic decides op on topic (a filter for kSubscribe) for a device (comm-ID) or an
  // identity (name), per AclService's evaluation. UNAVAILABLE until loaded. The topic must
  // be valid (the caller says INVALID_ARGUMENT otherwise; here it is denied).
  absl::StatusOr<TopicAnswer> CheckTopic(PrincipalType type, const std::string& id,
                                         acl::Operation op, absl::string_view topic) const;

  // Resolve: the principal's effective rules as the index holds them (ResolveAcl's answer
  // from memory). NOT_FOUND for an unknown principal; UNAVAILABLE until loaded.
  absl::StatusOr<Resolution> Resolve(PrincipalType type, const std::string& id) const;

  // AuthorizeConnect decides whether the holder of a client certificate may connect with
  // this MQTT client id (BrokerAuthService.AuthorizeConnect's rules, in that order: known
  // client certificate, validity at `now`, not revoked or held, CN = client id, principal
  // registered and active). UNAVAILABLE until loaded. A certificate the inventory does not
  // hold is kCertificateUnknown: the caller may tell an untrusted one apart with
  // ClientIssuerDers.
  absl::StatusOr<ConnectAnswer> AuthorizeConnect(const CertificateRef& certificate,
                                                 const std::string& client_id,
                                                 absl::Time now) const;
  // ClientIssuers: the issuers client certificates chain to: the roots, the devices and
  // operators CAs, and the external CAs (disabled ones too: enabled tells).
  std::vector<ClientIssuer> ClientIssuers() const;

  // AuthorizeUnregistered decides for a certificate the inventory does not hold that the
  // caller verified to chain to external CA issuer_id: the CA must be enabled and accept
  // unregistered certificates, the serial not be listed in the CA's imported CRL, the
  // certificate be within its validity, its CN the client id, and the CN a registered,
  // active device. UNAVAILABLE until loaded.
  absl::StatusOr<ConnectAnswer> AuthorizeUnregistered(const std::string& issuer_id,
                                                      const std::string& serial,
                                                      const std::string& common_name,
                                                      absl::Time not_after,
                                                      const std::string& client_id,
                                                      absl::Time now) const;

  // Sizes, for logs and metrics.
  struct Counts {
    size_t devices = 0, identities = 0, profiles = 0, assignments = 0, certificates = 0;
  };
  Counts counts() const;

 private:
  struct DeviceEntry {
    bool active = false;
    std::vector<std::string> groups;
    std::map<std::string, std::string> attributes;
  };
  // A profile with its patterns parsed once (not on every decision).
  struct HeldProfile {
    storage::AclProfileRow row;
    std::vector<std::optional<acl::TopicPattern>> parsed;
  };
  static HeldProfile Hold(storage::AclProfileRow row);
  // Assignments by subject ("<subject type name>\n<subject id>"), each with its profiles.
  using AssignmentMap =
      absl::flat_hash_map<std::string, std::vector<storage::AclAssignmentRow>>;

  // Client certificates (device and identity kinds, unexpired when read), with fixed-size
  // keys and nothing allocated per certificate but a principal id longer than 15 bytes:
  // about 150 bytes each (a million certificates: ~150 MiB, not the ~600 of string keys).
  using FingerprintKey = std::array<uint8_t, 32>;
  struct SerialKey {
    std::array<uint8_t, 20> bytes{};  // RFC 5280: at most 20 octets
    uint8_t size = 0;
    uint16_t issuer = 0;  // index into issuer_ids (external CAs' serials repeat)
    bool operator==(const SerialKey& o) const {
      return size == o.size && issuer == o.issuer && bytes == o.bytes;
    }
    template <typename H>
    friend H AbslHashValue(H h, const SerialKey& k) {
      return H::combine(std::move(h), k.size, k.issuer, k.bytes);
    }
  };
  static std::optional<SerialKey> ToSerialKey(absl::string_view serial);
  static std::optional<FingerprintKey> ToFingerprintKey(absl::string_view fingerprint);
  struct CertificateEntry {
    SerialKey serial;
    uint16_t issuer = 0;  // index into issuer_ids_
    PrincipalType principal_type = PrincipalType::kDevice;
    storage::CertificateStatus status = storage::CertificateStatus::kIssued;
    int64_t not_after = 0;     // seconds since the epoch
    std::string principal_id;  // the comm-ID or identity name (the certificate's CN)
  };
  struct CertificateMaps {
    absl::flat_hash_map<FingerprintKey, CertificateEntry> by_fingerprint;
    absl::flat_hash_map<SerialKey, FingerprintKey> fingerprint_by_serial;
    std::vector<std::string> issuer_ids;
    // Serials listed in imported customer CRLs and not tracked: "<issuer>/<serial bytes>".
    absl::flat_hash_set<std::string> imported_revoked;
    // Put adds or replaces a certificate; Drop removes one (by issuer and serial).
    void Put(const storage::SyncCertificate& c);
    void Drop(const std::string& issuer_id, absl::string_view serial);
    // IssuerIndex: the index of issuer_id in issuer_ids, or nullopt.
    std::optional<uint16_t> IssuerIndex(const std::string& issuer_id) const;
  };
  absl::StatusOr<std::vector<ClientIssuer>> ReadClientIssuers();
  const ClientIssuer* FindClientIssuerLocked(const std::string& id) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);
  // ConnectAllowedLocked: steps 3 and 4 of AuthorizeConnect (CN = client id; the principal
  // registered and active, with its rules), filling answer.
  ConnectAnswer ConnectAllowedLocked(PrincipalType type, const std::string& principal_id,
                                     const std::string& client_id, ConnectAnswer answer) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);

  static std::string SubjectKey(storage::AclSubject type, absl::string_view id);
  // Re-reads one changed key into the maps (mu_ held for writing).
  absl::Status Reload(const storage::ChangeRow& change) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status ReloadAssignment(const std::string& key) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // ResolveLocked: false when the principal is unknown.
  bool ResolveLocked(PrincipalType type, const std::string& id, Resolution* out) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);

  storage::DeviceStore& devices_store_;
  storage::IdentityStore& identities_store_;
  storage::AclStore& acl_store_;
  storage::SyncStore& sync_store_;
  storage::ChangeLogReader& log_;

  mutable absl::Mutex mu_;
  bool loaded_ ABSL_GUARDED_BY(mu_) = false;
  int64_t revision_ ABSL_GUARDED_BY(mu_) = 0;
  absl::flat_hash_map<std::string, DeviceEntry> devices_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, bool> identities_ ABSL_GUARDED_BY(mu_);  // name -> active
  absl::flat_hash_map<std::string, HeldProfile> profiles_ ABSL_GUARDED_BY(mu_);
  AssignmentMap assignments_ ABSL_GUARDED_BY(mu_);
  CertificateMaps certificates_ ABSL_GUARDED_BY(mu_);
  std::vector<ClientIssuer> client_issuers_ ABSL_GUARDED_BY(mu_);
};

}  // namespace fleetca::policy
