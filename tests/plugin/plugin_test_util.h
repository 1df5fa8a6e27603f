#pragma once

// Helpers shared by the plugin tests: the SyncChange objects fleetca's stream would send,
// a small real PKI (a root, the devices and operators intermediates, an external CA and a
// foreign CA that fleetca does not know, all P-256 and made with fleetca's own builders),
// and a canonical dump of a Policy for comparisons.

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "acl/policy.h"
#include "fleetca/v1/broker_sync.pb.h"
#include "pki/certificate_builder.h"
#include "pki/key_store.h"
#include "pki/keys.h"
#include "pki/openssl_util.h"
#include "plugin/policy.h"

namespace fleetca::plugin::testing {

// ---- SyncChange builders -----------------------------------------------------------------

struct IssuerFlags {
  bool external = false;
  bool enabled = true;
  bool accept_unregistered = false;
};

inline v1::SyncChange IssuerChange(const std::string& id, v1::IssuerPurpose purpose,
                                   const std::string& pem, IssuerFlags flags = {},
                                   int64_t not_after = 0) {
  v1::SyncChange change;
  v1::SyncIssuer* s = change.mutable_issuer();
  s->set_issuer_id(id);
  s->set_purpose(purpose);
  s->set_external(flags.external);
  s->set_enabled(flags.enabled);
  s->set_accept_unregistered_certificates(flags.accept_unregistered);
  s->set_certificate_pem(pem);
  if (not_after != 0) s->mutable_not_after()->set_seconds(not_after);
  return change;
}

inline v1::SyncChange DeviceChange(const std::string& comm_id,
                                   v1::DeviceStatus status = v1::DEVICE_STATUS_ACTIVE,
                                   const std::vector<std::string>& groups = {},
                                   const std::map<std::string, std::string>& attributes = {}) {
  v1::SyncChange change;
  v1::SyncDevice* d = change.mutable_device();
  d->set_comm_id(comm_id);
  d->set_status(status);
  for (const std::string& g : groups) d->add_groups(g);
  d->mutable_attributes()->insert(attributes.begin(), attributes.end());
  return change;
}

inline v1::SyncChange IdentityChange(const std::string& name,
                                     v1::IdentityStatus status = v1::IDENTITY_STATUS_ACTIVE,
                                     v1::IdentityRole role = v1::IDENTITY_ROLE_MQTT_CLIENT) {
  v1::SyncChange change;
  v1::SyncIdentity* i = change.mutable_identity();
  i->set_name(name);
  i->set_status(status);
  i->set_role(role);
  return change;
}

struct CertFields {
  std::string fingerprint_hex;  // empty: a serial known only from a CRL
  v1::CertificateStatus status = v1::CERTIFICATE_STATUS_ACTIVE;
  v1::RevocationReason reason = v1::REVOCATION_REASON_UNSPECIFIED;
  v1::PrincipalType principal_type = v1::PRINCIPAL_TYPE_UNSPECIFIED;
  std::string principal_id;
  int64_t not_after = 0;
};

// Cert: the fields of a certificate known by fingerprint (or, empty, only from a CRL).
inline CertFields Cert(const std::string& fingerprint_hex,
                       v1::CertificateStatus status = v1::CERTIFICATE_STATUS_ACTIVE,
                       v1::RevocationReason reason = v1::REVOCATION_REASON_UNSPECIFIED) {
  CertFields f;
  f.fingerprint_hex = fingerprint_hex;
  f.status = status;
  f.reason = reason;
  return f;
}

inline v1::SyncChange CertificateChange(const std::string& issuer_id, const std::string& serial_hex,
                                        const CertFields& f) {
  v1::SyncChange change;
  v1::SyncCertificate* c = change.mutable_certificate();
  c->set_issuer_id(issuer_id);
  c->set_serial(serial_hex);
  c->set_sha256_fingerprint(f.fingerprint_hex);
  c->set_status(f.status);
  c->set_revocation_reason(f.reason);
  if (f.principal_type != v1::PRINCIPAL_TYPE_UNSPECIFIED) {
    c->mutable_principal()->set_type(f.principal_type);
    c->mutable_principal()->set_id(f.principal_id);
  }
  if (f.not_after != 0) c->mutable_not_after()->set_seconds(f.not_after);
  return change;
}

inline v1::SyncChange ProfileChange(
    const std::string& name, const std::vector<std::pair<std::string, v1::AclAccess>>& rules) {
  v1::SyncChange change;
  v1::SyncAclProfile* p = change.mutable_acl_profile();
  p->set_name(name);
  for (const auto& [pattern, access] : rules) {
    v1::AclRule* r = p->add_rules();
    r->set_topic_pattern(pattern);
    r->set_access(access);
  }
  return change;
}

inline v1::SyncChange AssignmentChange(v1::AclSubjectType type, const std::string& subject_id,
                                       const std::string& profile) {
  v1::SyncChange change;
  v1::AclAssignment* a = change.mutable_acl_assignment();
  a->set_subject_type(type);
  a->set_subject_id(subject_id);
  a->set_profile_name(profile);
  return change;
}

// Deleted: the deletion of a change's object (key fields only, as the stream sends it).
inline v1::SyncChange Deleted(const v1::SyncChange& change) {
  v1::SyncChange out;
  out.set_deleted(true);
  switch (change.object_case()) {
    case v1::SyncChange::kIssuer:
      out.mutable_issuer()->set_issuer_id(change.issuer().issuer_id());
      break;
    case v1::SyncChange::kDevice:
      out.mutable_device()->set_comm_id(change.device().comm_id());
      break;
    case v1::SyncChange::kIdentity:
      out.mutable_identity()->set_name(change.identity().name());
      break;
    case v1::SyncChange::kCertificate:
      out.mutable_certificate()->set_issuer_id(change.certificate().issuer_id());
      out.mutable_certificate()->set_serial(change.certificate().serial());
      break;
    case v1::SyncChange::kAclProfile:
      out.mutable_acl_profile()->set_name(change.acl_profile().name());
      break;
    case v1::SyncChange::kAclAssignment:
      *out.mutable_acl_assignment() = change.acl_assignment();
      break;
    case v1::SyncChange::kCrl:
      out.mutable_crl()->set_issuer_id(change.crl().issuer_id());
      break;
    case v1::SyncChange::OBJECT_NOT_SET:
      break;
  }
  return out;
}

inline void ApplyAll(Policy& policy, const std::vector<v1::SyncChange>& changes) {
  for (const v1::SyncChange& change : changes) {
    EXPECT_TRUE(policy.Apply(change)) << change.ShortDebugString();
  }
}

// ---- Policy dumps and rule sets ----------------------------------------------------------

// Dump: every object of a policy as text, sorted (text format prints map entries sorted by
// key, so equal objects give equal lines).
inline std::vector<std::string> Dump(const Policy& policy) {
  std::vector<std::string> lines;
  policy.ForEachObject(
      [&](const v1::SyncChange& change) { lines.push_back(change.ShortDebugString()); });
  std::sort(lines.begin(), lines.end());
  return lines;
}

using RuleSet = std::set<std::pair<std::string, int>>;

inline RuleSet ToSet(const std::vector<acl::ResolvedRule>& rules) {
  RuleSet out;
  for (const acl::ResolvedRule& r : rules) out.emplace(r.filter, static_cast<int>(r.access));
  return out;
}

// Pairs: the rules in their order, comparable with gtest matchers.
inline std::vector<std::pair<std::string, int>> Pairs(const std::vector<acl::ResolvedRule>& rules) {
  std::vector<std::pair<std::string, int>> out;
  for (const acl::ResolvedRule& r : rules) out.emplace_back(r.filter, static_cast<int>(r.access));
  return out;
}

inline int A(acl::Access access) { return static_cast<int>(access); }

// ---- PKI ---------------------------------------------------------------------------------

inline absl::Time WholeSeconds(absl::Time t) {
  return absl::FromUnixSeconds(absl::ToUnixSeconds(t));
}

struct TestCa {
  std::string id;
  pki::X509Ptr cert;
  std::string pem;
};

struct TestLeaf {
  pki::X509Ptr cert;
  std::string issuer_id;
  std::string serial_hex;       // lowercase hex of the serial bytes
  std::string fingerprint_hex;  // lowercase hex SHA-256 of the DER
  std::string cn;
  int64_t not_after = 0;  // Unix seconds
};

// TestPki: CAs by id, P-256 keys in a SoftwareKeyStore, certificates from pki::BuildCertificate.
class TestPki {
 public:
  // AddCa makes a CA: self-signed when parent is empty, else signed by parent.
  const TestCa& AddCa(const std::string& id, const std::string& common_name,
                      const std::string& parent = "") {
    auto key = pki::GenerateKey(pki::KeyAlgorithm::kEcdsaP256);
    EXPECT_TRUE(key.ok()) << key.status();
    pki::CertificateTemplate t;
    t.profile = parent.empty() ? pki::CertificateProfile::kRootCa
                               : pki::CertificateProfile::kIntermediateCa;
    t.serial = pki::RandomSerial();
    t.subject.common_name = common_name;
    t.not_before = WholeSeconds(absl::Now() - absl::Hours(1));
    t.not_after = WholeSeconds(absl::Now() + absl::Hours(24 * 365));
    t.public_key = key->get();
    store_.Add(id, std::move(*key));
    auto cert = parent.empty() ? pki::BuildCertificate(t, nullptr, store_, id)
                               : pki::BuildCertificate(t, cas_.at(parent).cert.get(), store_,
                                                       parent);
    EXPECT_TRUE(cert.ok()) << cert.status();
    TestCa ca;
    ca.id = id;
    ca.cert = std::move(*cert);
    auto pem = pki::CertificateToPem(ca.cert.get());
    EXPECT_TRUE(pem.ok()) << pem.status();
    ca.pem = *pem;
    return cas_[id] = std::move(ca);
  }

  const TestCa& ca(const std::string& id) const { return cas_.at(id); }

  // Issue makes a client certificate with CN = cn signed by CA `ca_id`, valid from an hour
  // ago for `validity`.
  TestLeaf Issue(const std::string& ca_id, const std::string& cn,
                 absl::Duration validity = absl::Hours(24)) {
    auto key = pki::GenerateKey(pki::KeyAlgorithm::kEcdsaP256);
    EXPECT_TRUE(key.ok()) << key.status();
    pki::CertificateTemplate t;
    t.profile = pki::CertificateProfile::kClient;
    t.serial = pki::RandomSerial();
    t.subject.common_name = cn;
    t.not_before = WholeSeconds(absl::Now() - absl::Hours(1));
    t.not_after = t.not_before + absl::Hours(1) + validity;
    t.public_key = key->get();
    auto cert = pki::BuildCertificate(t, cas_.at(ca_id).cert.get(), store_, ca_id);
    EXPECT_TRUE(cert.ok()) << cert.status();
    TestLeaf leaf;
    leaf.cert = std::move(*cert);
    leaf.issuer_id = ca_id;
    leaf.serial_hex = pki::SerialToHex(t.serial);
    auto der = pki::CertificateToDer(leaf.cert.get());
    EXPECT_TRUE(der.ok()) << der.status();
    leaf.fingerprint_hex = pki::Sha256Hex(*der);
    leaf.cn = cn;
    leaf.not_after = absl::ToUnixSeconds(t.not_after);
    return leaf;
  }

 private:
  pki::SoftwareKeyStore store_;
  std::map<std::string, TestCa> cas_;
};

// The inventory entry of a leaf: ACTIVE, belonging to `principal_id`.
inline v1::SyncChange InventoryOf(const TestLeaf& leaf, v1::PrincipalType type,
                                  const std::string& principal_id,
                                  v1::CertificateStatus status = v1::CERTIFICATE_STATUS_ACTIVE,
                                  v1::RevocationReason reason = v1::REVOCATION_REASON_UNSPECIFIED) {
  CertFields f;
  f.fingerprint_hex = leaf.fingerprint_hex;
  f.status = status;
  f.reason = reason;
  f.principal_type = type;
  f.principal_id = principal_id;
  f.not_after = leaf.not_after;
  return CertificateChange(leaf.issuer_id, leaf.serial_hex, f);
}

// ---- A small fleet ------------------------------------------------------------------------

inline constexpr char kDev1[] = "356938035643809";
inline constexpr char kDev2[] = "356938035643817";
inline constexpr char kDev3[] = "356938035643825";
inline constexpr char kWatcher[] = "watcher-1";

// Fleet: a PKI (root "root" -> "devices" and "operators"; "external" a customer CA;
// "foreign" a CA fleetca does not know) and leaves for two devices and an identity.
struct Fleet {
  TestPki pki;
  TestLeaf dev1, dev2, watcher;

  Fleet() {
    pki.AddCa("root", "Fleet Root");
    pki.AddCa("devices", "Fleet Devices CA", "root");
    pki.AddCa("operators", "Fleet Operators CA", "root");
    pki.AddCa("external", "Customer CA");
    pki.AddCa("foreign", "Someone Else's CA");
    dev1 = pki.Issue("devices", kDev1);
    dev2 = pki.Issue("devices", kDev2);
    watcher = pki.Issue("operators", kWatcher);
  }

  // Issuers: the four issuers fleetca sends (not "foreign").
  std::vector<v1::SyncChange> Issuers(bool external_accepts = false) const {
    return {
        IssuerChange("root", v1::ISSUER_PURPOSE_ROOT, pki.ca("root").pem),
        IssuerChange("devices", v1::ISSUER_PURPOSE_DEVICES, pki.ca("devices").pem),
        IssuerChange("operators", v1::ISSUER_PURPOSE_OPERATORS, pki.ca("operators").pem),
        IssuerChange("external", v1::ISSUER_PURPOSE_DEVICES, pki.ca("external").pem,
                     {/*external=*/true, /*enabled=*/true, external_accepts}),
    };
  }

  // Changes: the issuers, dev1 and dev2 ACTIVE with their certificates, the identity with its
  // certificate, profile "device" (devices/%c/#, fleet/broadcast READ) for all devices and
  // "watcher" (devices/+/telemetry READ) for the identity.
  std::vector<v1::SyncChange> Changes() const {
    std::vector<v1::SyncChange> out = Issuers();
    out.push_back(DeviceChange(kDev1));
    out.push_back(DeviceChange(kDev2));
    out.push_back(IdentityChange(kWatcher));
    out.push_back(InventoryOf(dev1, v1::PRINCIPAL_TYPE_DEVICE, kDev1));
    out.push_back(InventoryOf(dev2, v1::PRINCIPAL_TYPE_DEVICE, kDev2));
    out.push_back(InventoryOf(watcher, v1::PRINCIPAL_TYPE_IDENTITY, kWatcher));
    out.push_back(DeviceProfile());
    out.push_back(ProfileChange("watcher", {{"devices/+/telemetry", v1::ACL_ACCESS_READ}}));
    out.push_back(AssignmentChange(v1::ACL_SUBJECT_TYPE_ALL_DEVICES, "", "device"));
    out.push_back(AssignmentChange(v1::ACL_SUBJECT_TYPE_IDENTITY, kWatcher, "watcher"));
    return out;
  }

  static v1::SyncChange DeviceProfile(
      std::vector<std::pair<std::string, v1::AclAccess>> extra = {}) {
    std::vector<std::pair<std::string, v1::AclAccess>> rules = {
        {"devices/%c/#", v1::ACL_ACCESS_READWRITE}, {"fleet/broadcast", v1::ACL_ACCESS_READ}};
    rules.insert(rules.end(), extra.begin(), extra.end());
    return ProfileChange("device", rules);
  }
};

}  // namespace fleetca::plugin::testing
