#pragma once

// Policy: what the mosquitto plugin enforces, kept from BrokerSyncService.Watch: the
// issuers client certificates chain to, every device and identity with its state, every
// client certificate fleetca tracks, the ACL profiles and their assignments. A Policy is
// one thread's to change (the sync thread applies the stream to it); copies are cheap
// (CowMap) and are published as immutable snapshots that broker callbacks read.
//
// Memory is what a million devices ask for: a device is its comm-ID and a status (groups
// and attributes only when it has some); a certificate is its key, fingerprint, status,
// principal and expiry. CRL objects are not kept: revoked serials arrive as certificates.

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "acl/pattern.h"
#include "acl/policy.h"
#include "fleetca/v1/broker_sync.pb.h"
#include "pki/openssl_util.h"
#include "plugin/cow_map.h"
#include "sync_client/stream_applier.h"

namespace fleetca::plugin {

struct Issuer {
  std::string id;
  v1::IssuerPurpose purpose = v1::ISSUER_PURPOSE_UNSPECIFIED;
  bool external = false;
  bool enabled = true;
  bool accept_unregistered = false;
  std::string certificate_pem;
  std::shared_ptr<X509> certificate;  // parsed certificate_pem (null when it did not parse)
  int64_t not_after = 0;              // Unix seconds
};

// DeviceExtra: a device's groups and attributes, apart so that a device without any costs
// a null pointer.
struct DeviceExtra {
  std::vector<std::string> groups;
  std::map<std::string, std::string> attributes;
};

struct Device {
  v1::DeviceStatus status = v1::DEVICE_STATUS_UNSPECIFIED;
  std::shared_ptr<const DeviceExtra> extra;  // null: no groups, no attributes
};

struct Identity {
  v1::IdentityStatus status = v1::IDENTITY_STATUS_UNSPECIFIED;
  v1::IdentityRole role = v1::IDENTITY_ROLE_UNSPECIFIED;
};

struct Certificate {
  std::array<uint8_t, 32> fingerprint{};  // SHA-256 of the DER
  bool has_fingerprint = false;           // false for a serial known only from a CRL
  v1::CertificateStatus status = v1::CERTIFICATE_STATUS_UNSPECIFIED;
  v1::RevocationReason revocation_reason = v1::REVOCATION_REASON_UNSPECIFIED;
  v1::PrincipalType principal_type = v1::PRINCIPAL_TYPE_UNSPECIFIED;
  std::string principal_id;
  int64_t not_after = 0;  // Unix seconds; 0 when unknown
};

// Profile: an ACL profile as received, with its patterns parsed once.
struct Profile {
  v1::SyncAclProfile proto;
  std::vector<std::optional<acl::TopicPattern>> patterns;  // nullopt: did not parse
};

// Touched: what changes touched since the set was last taken, so that the broker thread
// re-checks only the connected clients they may concern. `all` when a change may concern
// anyone (an issuer, a profile, an assignment to a group or to every device, a snapshot).
struct Touched {
  bool all = false;
  absl::flat_hash_set<std::string> devices;     // comm-IDs
  absl::flat_hash_set<std::string> identities;  // names
  absl::flat_hash_set<std::string> certificates;  // CertificateKey()s

  bool empty() const {
    return !all && devices.empty() && identities.empty() && certificates.empty();
  }
  void Merge(Touched&& other);
  // Concerns: whether a client with this principal and certificate may be concerned.
  bool Concerns(v1::PrincipalType type, absl::string_view id, absl::string_view cert_key) const;
};

// CertificateKey: the key of a certificate, "<issuer_id>\0<serial hex>".
std::string CertificateKey(absl::string_view issuer_id, absl::string_view serial_hex);

// SubjectKey: the key of an assignment's subject, "<type digit>\0<subject_id>".
std::string SubjectKey(v1::AclSubjectType type, absl::string_view subject_id);

class Policy final : public sync_client::SyncState {
 public:
  // A new Policy counts as all touched (it replaces whatever was before): nothing is
  // recorded key by key until the first TakeTouched, so receiving a snapshot of a million
  // devices builds no set of a million keys.
  Policy() { touched_.all = true; }
  // A copy shares every table with the original until either changes; touched() is not
  // copied.
  Policy(const Policy& other);
  Policy& operator=(const Policy&) = delete;

  bool Apply(const v1::SyncChange& change) override;

  // Lookups. Pointers are valid while this Policy is alive and unchanged.
  const Issuer* FindIssuer(absl::string_view id) const;
  const std::vector<std::shared_ptr<const Issuer>>& issuers() const { return *issuers_; }
  const Device* FindDevice(absl::string_view comm_id) const { return devices_.Find(comm_id); }
  const Identity* FindIdentity(absl::string_view name) const { return identities_.Find(name); }
  const Certificate* FindCertificate(absl::string_view issuer_id,
                                     absl::string_view serial_hex) const;

  // ResolveRules: a principal's effective rules, as AclService.ResolveAcl computes them
  // (profiles of every subject that applies, each once; patterns substituted with
  // %c = %u = id and the device's attributes; rules that cannot be substituted left out),
  // DENY first, then by filter. `device` is the device's entry (null for an identity).
  std::vector<acl::ResolvedRule> ResolveRules(v1::PrincipalType type, absl::string_view id,
                                              const Device* device) const;

  // ObjectCount: the objects held, as a snapshot would count them.
  size_t ObjectCount() const;

  // ForEachObject calls f with every object as a SyncChange (for the persisted cache); the
  // order is unspecified.
  void ForEachObject(const std::function<void(const v1::SyncChange&)>& f) const;

  // TakeTouched returns what was touched since the last call, and starts a new set.
  Touched TakeTouched();
  // MarkAllTouched: everything may have changed (a snapshot swapped in, a cache loaded).
  void MarkAllTouched() { touched_.all = true; }

 private:
  using ProfileMap = absl::flat_hash_map<std::string, std::shared_ptr<const Profile>>;

  // Touch records a touched key, unless everything counts as touched already.
  void Touch(absl::flat_hash_set<std::string>& keys, std::string key);
  void ApplyIssuer(const v1::SyncIssuer& issuer, bool deleted);
  void ApplyAssignment(const v1::AclAssignment& a, bool deleted);

  std::shared_ptr<const std::vector<std::shared_ptr<const Issuer>>> issuers_ =
      std::make_shared<const std::vector<std::shared_ptr<const Issuer>>>();
  CowMap<Device> devices_;
  CowMap<Identity> identities_;
  CowMap<Certificate> certificates_;
  std::shared_ptr<const ProfileMap> profiles_ = std::make_shared<const ProfileMap>();
  // SubjectKey -> names of the profiles assigned to it (sorted).
  CowMap<std::vector<std::string>> assignments_;
  Touched touched_;
};

}  // namespace fleetca::plugin
