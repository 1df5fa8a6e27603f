#pragma once

// SyncStore: what brokers' sync streams read (BrokerSyncService.Watch): the current state of
// the objects a broker enforces, by change-log key (a delta) or a page at a time in key
// order (a snapshot). Only what a broker sees is returned: issuers with a certificate (not
// pending, unexpired), each issuer's newest complete CRL, devices, identities, unexpired
// client certificates (device and identity kinds) with their revocation state, ACL profiles
// and assignments.

#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "storage/acl_store.h"
#include "storage/certificate_store.h"
#include "storage/device_store.h"
#include "storage/issuer_store.h"

namespace fleetca::storage {

// The kinds of objects; the values are BrokerSyncService's SyncObjectType numbers.
enum class SyncKind {
  kIssuer = 1,
  kCrl = 2,
  kDevice = 3,
  kIdentity = 4,
  kCertificate = 5,
  kAclProfile = 6,
  kAclAssignment = 7,
};
inline constexpr SyncKind kAllSyncKinds[] = {
    SyncKind::kIssuer,   SyncKind::kCrl,         SyncKind::kDevice,       SyncKind::kIdentity,
    SyncKind::kCertificate, SyncKind::kAclProfile, SyncKind::kAclAssignment};

// SyncKindOfChange: the kind a change-log entity type is streamed as ("revocation" and
// "certificate" are both certificates); nullopt for types brokers do not see ("broker").
std::optional<SyncKind> SyncKindOfChange(const std::string& entity_type);

struct SyncIssuer {
  std::string id;
  IssuerPurpose purpose = IssuerPurpose::kRoot;  // kDevices for an external CA
  bool external = false;                         // an external (customer) CA
  bool enabled = true;                           // false: a disabled external CA
  bool accept_unregistered = false;              // the external CA's option
  std::string certificate_der;
  std::optional<absl::Time> not_after;
};

struct SyncCrl {
  std::string issuer_id;
  int64_t crl_number = 0;
  absl::Time this_update, next_update;
  std::string der;
  bool imported = false;  // a customer CRL imported for an external CA
};

struct SyncDevice {
  std::string comm_id;
  DeviceStatus status = DeviceStatus::kActive;
  std::vector<std::string> groups;
  std::map<std::string, std::string> attributes;
};

struct SyncIdentity {
  std::string name;
  std::string role;  // database spelling
  bool active = false;
};

struct SyncCertificate {
  std::string serial;  // bytes
  std::string issuer_id;
  CertificateKind kind = CertificateKind::kDevice;
  std::string comm_id;        // device kinds
  std::string identity_name;  // identity kind
  CertificateStatus status = CertificateStatus::kIssued;
  int reason = -1;            // RFC 5280 reason code when revoked or on hold
  std::string fingerprint;    // SHA-256 of the DER, bytes
  absl::Time not_after;
  // A serial listed in an imported customer CRL that the inventory does not track: only
  // issuer_id, serial, status (revoked) and reason are set.
  bool from_imported_crl_only = false;
};

struct SyncObject {
  SyncKind kind = SyncKind::kDevice;
  std::string key;       // the change-log key (a certificate's: CertificateChangeKey)
  bool deleted = false;  // gone, or out of brokers' view (an expired certificate)
  // The object's state; for a deleted object, its key fields when known (a certificate's
  // issuer and serial, an assignment's three fields), else monostate.
  std::variant<std::monostate, SyncIssuer, SyncCrl, SyncDevice, SyncIdentity, SyncCertificate,
               AclProfileRow, AclAssignmentRow>
      value;
};

struct SyncPage {
  std::vector<SyncObject> objects;
  std::string next;  // the next page's cursor; "" after the last page
};

class SyncStore {
 public:
  virtual ~SyncStore() = default;
  // Read returns the current state of the objects of `kind` with these change-log keys, in
  // the order of `keys`: deleted ones (not found, or out of view) with deleted set. Keys of
  // objects brokers never see (a broker's own certificate) are left out.
  virtual absl::StatusOr<std::vector<SyncObject>> Read(SyncKind kind,
                                                       const std::vector<std::string>& keys) = 0;
  // List returns a page of the objects of `kind` for a snapshot or a load, from `cursor`
  // ("" for the first page) to page.next ("" after the last page). Pages hold about
  // `limit` objects (possibly none before the last). Devices, identities, issuers, CRLs,
  // profiles and assignments come in key order; certificates in the table's physical
  // order (a sequential read: key order would visit the heap at random). An object
  // changed during the listing may be missed or listed twice: its change, after the
  // revision read before the listing, brings it.
  virtual absl::StatusOr<SyncPage> List(SyncKind kind, const std::string& cursor, int limit) = 0;
  // OldestRevision: the oldest revision the change log still holds (0 when empty); a
  // consumer behind it must take a snapshot.
  virtual absl::StatusOr<int64_t> OldestRevision() = 0;
};

}  // namespace fleetca::storage
