#include "plugin/policy.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "pki/openssl_util.h"
#include "tests/plugin/plugin_test_util.h"

namespace fleetca::plugin {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::Pair;
using ::testing::UnorderedElementsAre;
using testing::A;
using testing::ApplyAll;
using testing::AssignmentChange;
using testing::Cert;
using testing::CertFields;
using testing::CertificateChange;
using testing::Deleted;
using testing::DeviceChange;
using testing::Dump;
using testing::IdentityChange;
using testing::IssuerChange;
using testing::Pairs;
using testing::ProfileChange;
using testing::TestPki;

constexpr char kFingerprint[] =
    "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

std::array<uint8_t, 32> FingerprintBytes() {
  std::array<uint8_t, 32> out{};
  for (size_t i = 0; i < 32; ++i) out[i] = static_cast<uint8_t>((i % 16) * 0x11);
  return out;
}

// A policy whose touched set starts empty (the first TakeTouched returns "all").
Policy Fresh() {
  Policy p;
  p.TakeTouched();
  return p;
}

std::vector<std::pair<std::string, int>> DeviceRules(const Policy& p, const std::string& id) {
  return Pairs(p.ResolveRules(v1::PRINCIPAL_TYPE_DEVICE, id, p.FindDevice(id)));
}

std::vector<std::pair<std::string, int>> IdentityRules(const Policy& p, const std::string& id) {
  return Pairs(p.ResolveRules(v1::PRINCIPAL_TYPE_IDENTITY, id, nullptr));
}

// ---- Touched ---------------------------------------------------------------------------

TEST(TouchedTest, ConcernsAndMerge) {
  Touched t;
  EXPECT_TRUE(t.empty());
  EXPECT_FALSE(t.Concerns(v1::PRINCIPAL_TYPE_DEVICE, "d1", "k1"));
  t.devices.insert("d1");
  t.identities.insert("i1");
  t.certificates.insert("k2");
  EXPECT_FALSE(t.empty());
  EXPECT_TRUE(t.Concerns(v1::PRINCIPAL_TYPE_DEVICE, "d1", "kx"));
  EXPECT_FALSE(t.Concerns(v1::PRINCIPAL_TYPE_IDENTITY, "d1", "kx"));  // another namespace
  EXPECT_TRUE(t.Concerns(v1::PRINCIPAL_TYPE_IDENTITY, "i1", "kx"));
  EXPECT_FALSE(t.Concerns(v1::PRINCIPAL_TYPE_DEVICE, "i1", "kx"));
  EXPECT_TRUE(t.Concerns(v1::PRINCIPAL_TYPE_DEVICE, "other", "k2"));
  EXPECT_FALSE(t.Concerns(v1::PRINCIPAL_TYPE_DEVICE, "other", "k3"));

  Touched more;
  more.devices.insert("d2");
  more.certificates.insert("k3");
  t.Merge(std::move(more));
  EXPECT_FALSE(t.all);
  EXPECT_THAT(t.devices, UnorderedElementsAre("d1", "d2"));
  EXPECT_THAT(t.identities, UnorderedElementsAre("i1"));
  EXPECT_THAT(t.certificates, UnorderedElementsAre("k2", "k3"));

  Touched everything;
  everything.all = true;
  t.Merge(std::move(everything));
  EXPECT_TRUE(t.all);
  EXPECT_FALSE(t.empty());
  EXPECT_TRUE(t.Concerns(v1::PRINCIPAL_TYPE_DEVICE, "anyone", "any"));

  Touched small;
  small.devices.insert("d9");
  Touched all_first;
  all_first.all = true;
  all_first.Merge(std::move(small));
  EXPECT_TRUE(all_first.all);
}

TEST(KeysTest, CertificateAndSubjectKeysDoNotCollide) {
  EXPECT_NE(CertificateKey("ab", "c"), CertificateKey("a", "bc"));
  EXPECT_EQ(CertificateKey("devices", "0a"), std::string("devices\0" "0a", 10));
  EXPECT_NE(SubjectKey(v1::ACL_SUBJECT_TYPE_DEVICE, "x"),
            SubjectKey(v1::ACL_SUBJECT_TYPE_IDENTITY, "x"));
  EXPECT_NE(SubjectKey(v1::ACL_SUBJECT_TYPE_GROUP, "x"),
            SubjectKey(v1::ACL_SUBJECT_TYPE_DEVICE, "x"));
}

// ---- Apply, object by object ---------------------------------------------------------------

TEST(PolicyApplyTest, Issuer) {
  TestPki pki;
  const std::string pem = pki.AddCa("devices", "Devices CA").pem;
  Policy p;
  EXPECT_EQ(p.FindIssuer("devices"), nullptr);
  ASSERT_TRUE(p.Apply(IssuerChange("devices", v1::ISSUER_PURPOSE_DEVICES, pem, {}, 1900000000)));
  const Issuer* issuer = p.FindIssuer("devices");
  ASSERT_NE(issuer, nullptr);
  EXPECT_EQ(issuer->id, "devices");
  EXPECT_EQ(issuer->purpose, v1::ISSUER_PURPOSE_DEVICES);
  EXPECT_FALSE(issuer->external);
  EXPECT_TRUE(issuer->enabled);
  EXPECT_FALSE(issuer->accept_unregistered);
  EXPECT_EQ(issuer->certificate_pem, pem);
  ASSERT_NE(issuer->certificate, nullptr);
  EXPECT_EQ(X509_cmp(issuer->certificate.get(), pki.ca("devices").cert.get()), 0);
  EXPECT_EQ(issuer->not_after, 1900000000);

  // An external CA, disabled, accepting unregistered certificates.
  const std::string ext_pem = pki.AddCa("ext", "Customer CA").pem;
  ASSERT_TRUE(p.Apply(IssuerChange("ext", v1::ISSUER_PURPOSE_DEVICES, ext_pem,
                                   {/*external=*/true, /*enabled=*/false, /*accept=*/true})));
  const Issuer* ext = p.FindIssuer("ext");
  ASSERT_NE(ext, nullptr);
  EXPECT_TRUE(ext->external);
  EXPECT_FALSE(ext->enabled);
  EXPECT_TRUE(ext->accept_unregistered);
  EXPECT_EQ(ext->not_after, 0);
  EXPECT_EQ(p.issuers().size(), 2u);

  // An update replaces the issuer of that id (still two issuers).
  ASSERT_TRUE(p.Apply(IssuerChange("ext", v1::ISSUER_PURPOSE_DEVICES, ext_pem,
                                   {/*external=*/true, /*enabled=*/true, /*accept=*/false})));
  EXPECT_EQ(p.issuers().size(), 2u);
  EXPECT_TRUE(p.FindIssuer("ext")->enabled);
  EXPECT_FALSE(p.FindIssuer("ext")->accept_unregistered);

  // A PEM that does not parse: kept, without a certificate.
  ASSERT_TRUE(p.Apply(IssuerChange("bad", v1::ISSUER_PURPOSE_OPERATORS, "not a PEM")));
  ASSERT_NE(p.FindIssuer("bad"), nullptr);
  EXPECT_EQ(p.FindIssuer("bad")->certificate, nullptr);
  EXPECT_EQ(p.FindIssuer("bad")->purpose, v1::ISSUER_PURPOSE_OPERATORS);

  // Delete.
  ASSERT_TRUE(p.Apply(Deleted(IssuerChange("devices", v1::ISSUER_PURPOSE_DEVICES, pem))));
  EXPECT_EQ(p.FindIssuer("devices"), nullptr);
  EXPECT_NE(p.FindIssuer("ext"), nullptr);
  EXPECT_EQ(p.issuers().size(), 2u);
  EXPECT_EQ(p.ObjectCount(), 2u);
}

TEST(PolicyApplyTest, DeviceWithoutGroupsOrAttributes) {
  Policy p;
  ASSERT_TRUE(p.Apply(DeviceChange("d1", v1::DEVICE_STATUS_SUSPENDED)));
  const Device* d = p.FindDevice("d1");
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->status, v1::DEVICE_STATUS_SUSPENDED);
  EXPECT_EQ(d->extra, nullptr);
  EXPECT_EQ(p.FindDevice("d2"), nullptr);
  EXPECT_EQ(p.ObjectCount(), 1u);
}

TEST(PolicyApplyTest, DeviceWithGroupsAndAttributes) {
  Policy p;
  ASSERT_TRUE(p.Apply(DeviceChange("d1", v1::DEVICE_STATUS_ACTIVE, {"g1", "g2"},
                                   {{"site", "berlin"}, {"line", "4"}})));
  const Device* d = p.FindDevice("d1");
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->status, v1::DEVICE_STATUS_ACTIVE);
  ASSERT_NE(d->extra, nullptr);
  EXPECT_THAT(d->extra->groups, ElementsAre("g1", "g2"));
  EXPECT_THAT(d->extra->attributes, ElementsAre(Pair("line", "4"), Pair("site", "berlin")));

  // Only attributes.
  ASSERT_TRUE(p.Apply(DeviceChange("d2", v1::DEVICE_STATUS_ACTIVE, {}, {{"site", "x"}})));
  ASSERT_NE(p.FindDevice("d2")->extra, nullptr);
  EXPECT_THAT(p.FindDevice("d2")->extra->groups, IsEmpty());
  // Only groups.
  ASSERT_TRUE(p.Apply(DeviceChange("d3", v1::DEVICE_STATUS_ACTIVE, {"g"})));
  ASSERT_NE(p.FindDevice("d3")->extra, nullptr);
  EXPECT_THAT(p.FindDevice("d3")->extra->attributes, IsEmpty());

  // An update replaces everything: groups and attributes gone, status changed.
  ASSERT_TRUE(p.Apply(DeviceChange("d1", v1::DEVICE_STATUS_DECOMMISSIONED)));
  EXPECT_EQ(p.FindDevice("d1")->status, v1::DEVICE_STATUS_DECOMMISSIONED);
  EXPECT_EQ(p.FindDevice("d1")->extra, nullptr);
  EXPECT_EQ(p.ObjectCount(), 3u);

  ASSERT_TRUE(p.Apply(Deleted(DeviceChange("d1"))));
  EXPECT_EQ(p.FindDevice("d1"), nullptr);
  EXPECT_NE(p.FindDevice("d2"), nullptr);
  EXPECT_EQ(p.ObjectCount(), 2u);
  // Deleting what is not there is harmless.
  ASSERT_TRUE(p.Apply(Deleted(DeviceChange("nobody"))));
  EXPECT_EQ(p.ObjectCount(), 2u);
}

TEST(PolicyApplyTest, Identity) {
  Policy p;
  ASSERT_TRUE(p.Apply(IdentityChange("watcher", v1::IDENTITY_STATUS_ACTIVE,
                                     v1::IDENTITY_ROLE_MQTT_CLIENT)));
  ASSERT_TRUE(
      p.Apply(IdentityChange("ops", v1::IDENTITY_STATUS_REVOKED, v1::IDENTITY_ROLE_VIEWER)));
  ASSERT_NE(p.FindIdentity("watcher"), nullptr);
  EXPECT_EQ(p.FindIdentity("watcher")->status, v1::IDENTITY_STATUS_ACTIVE);
  EXPECT_EQ(p.FindIdentity("watcher")->role, v1::IDENTITY_ROLE_MQTT_CLIENT);
  EXPECT_EQ(p.FindIdentity("ops")->status, v1::IDENTITY_STATUS_REVOKED);
  EXPECT_EQ(p.FindIdentity("ops")->role, v1::IDENTITY_ROLE_VIEWER);
  // Identities and devices are separate namespaces.
  EXPECT_EQ(p.FindDevice("watcher"), nullptr);
  ASSERT_TRUE(p.Apply(Deleted(IdentityChange("watcher"))));
  EXPECT_EQ(p.FindIdentity("watcher"), nullptr);
  EXPECT_NE(p.FindIdentity("ops"), nullptr);
  EXPECT_EQ(p.ObjectCount(), 1u);
}

TEST(PolicyApplyTest, Certificate) {
  Policy p;
  CertFields f;
  f.fingerprint_hex = kFingerprint;
  f.status = v1::CERTIFICATE_STATUS_REVOKED;
  f.reason = v1::REVOCATION_REASON_KEY_COMPROMISE;
  f.principal_type = v1::PRINCIPAL_TYPE_DEVICE;
  f.principal_id = "d1";
  f.not_after = 1800000000;
  ASSERT_TRUE(p.Apply(CertificateChange("devices", "0a0b", f)));
  const Certificate* c = p.FindCertificate("devices", "0a0b");
  ASSERT_NE(c, nullptr);
  EXPECT_TRUE(c->has_fingerprint);
  EXPECT_EQ(c->fingerprint, FingerprintBytes());
  EXPECT_EQ(c->status, v1::CERTIFICATE_STATUS_REVOKED);
  EXPECT_EQ(c->revocation_reason, v1::REVOCATION_REASON_KEY_COMPROMISE);
  EXPECT_EQ(c->principal_type, v1::PRINCIPAL_TYPE_DEVICE);
  EXPECT_EQ(c->principal_id, "d1");
  EXPECT_EQ(c->not_after, 1800000000);
  // The key is (issuer, serial): neither alone finds it.
  EXPECT_EQ(p.FindCertificate("other", "0a0b"), nullptr);
  EXPECT_EQ(p.FindCertificate("devices", "0a0c"), nullptr);

  // Upper-case hex is the same fingerprint.
  f.fingerprint_hex = absl::AsciiStrToUpper(kFingerprint);
  ASSERT_TRUE(p.Apply(CertificateChange("devices", "01", f)));
  EXPECT_TRUE(p.FindCertificate("devices", "01")->has_fingerprint);
  EXPECT_EQ(p.FindCertificate("devices", "01")->fingerprint, FingerprintBytes());

  // A serial known only from a CRL: no fingerprint, no principal, no expiry.
  ASSERT_TRUE(p.Apply(CertificateChange(
      "ext", "ff", Cert("", v1::CERTIFICATE_STATUS_REVOKED, v1::REVOCATION_REASON_SUPERSEDED))));
  const Certificate* crl_only = p.FindCertificate("ext", "ff");
  ASSERT_NE(crl_only, nullptr);
  EXPECT_FALSE(crl_only->has_fingerprint);
  EXPECT_EQ(crl_only->principal_type, v1::PRINCIPAL_TYPE_UNSPECIFIED);
  EXPECT_EQ(crl_only->not_after, 0);

  // A fingerprint that is not 64 hex digits counts as none.
  for (const std::string& bad : {std::string(63, 'a'), std::string(65, 'a'),
                                std::string(62, 'a') + "zz"}) {
    f.fingerprint_hex = bad;
    ASSERT_TRUE(p.Apply(CertificateChange("devices", "02", f)));
    EXPECT_FALSE(p.FindCertificate("devices", "02")->has_fingerprint) << bad;
  }
  EXPECT_EQ(p.ObjectCount(), 4u);

  ASSERT_TRUE(p.Apply(Deleted(CertificateChange("devices", "0a0b", f))));
  EXPECT_EQ(p.FindCertificate("devices", "0a0b"), nullptr);
  EXPECT_EQ(p.ObjectCount(), 3u);
}

TEST(PolicyApplyTest, ProfilesAndAssignments) {
  Policy p;
  ASSERT_TRUE(p.Apply(DeviceChange("d1")));
  ASSERT_TRUE(p.Apply(ProfileChange("a", {{"a/%c", v1::ACL_ACCESS_WRITE}})));
  ASSERT_TRUE(p.Apply(AssignmentChange(v1::ACL_SUBJECT_TYPE_DEVICE, "d1", "a")));
  EXPECT_THAT(DeviceRules(p, "d1"), ElementsAre(Pair("a/d1", A(acl::Access::kWrite))));
  EXPECT_EQ(p.ObjectCount(), 3u);

  // The same assignment again is one assignment.
  ASSERT_TRUE(p.Apply(AssignmentChange(v1::ACL_SUBJECT_TYPE_DEVICE, "d1", "a")));
  EXPECT_EQ(p.ObjectCount(), 3u);

  // A profile update replaces its rules.
  ASSERT_TRUE(p.Apply(ProfileChange("a", {{"b/%c", v1::ACL_ACCESS_READ}})));
  EXPECT_THAT(DeviceRules(p, "d1"), ElementsAre(Pair("b/d1", A(acl::Access::kRead))));
  EXPECT_EQ(p.ObjectCount(), 3u);

  // Deleting the assignment takes the rules away; the profile stays.
  ASSERT_TRUE(p.Apply(Deleted(AssignmentChange(v1::ACL_SUBJECT_TYPE_DEVICE, "d1", "a"))));
  EXPECT_THAT(DeviceRules(p, "d1"), IsEmpty());
  EXPECT_EQ(p.ObjectCount(), 2u);
  // Deleting an assignment that is not there changes nothing.
  ASSERT_TRUE(p.Apply(Deleted(AssignmentChange(v1::ACL_SUBJECT_TYPE_DEVICE, "d1", "zzz"))));
  EXPECT_EQ(p.ObjectCount(), 2u);

  // Deleting the profile: an assignment to it then brings nothing.
  ASSERT_TRUE(p.Apply(AssignmentChange(v1::ACL_SUBJECT_TYPE_DEVICE, "d1", "a")));
  EXPECT_THAT(DeviceRules(p, "d1"), ElementsAre(Pair("b/d1", A(acl::Access::kRead))));
  ASSERT_TRUE(p.Apply(Deleted(ProfileChange("a", {}))));
  EXPECT_THAT(DeviceRules(p, "d1"), IsEmpty());
  EXPECT_EQ(p.ObjectCount(), 2u);  // the device and the assignment
}

TEST(PolicyApplyTest, CrlAndUnknownObjectsAreNotKept) {
  Policy p = Fresh();
  v1::SyncChange crl;
  crl.mutable_crl()->set_issuer_id("devices");
  crl.mutable_crl()->set_crl_number(7);
  crl.mutable_crl()->set_crl_der("der");
  EXPECT_FALSE(p.Apply(crl));
  EXPECT_FALSE(p.Apply(Deleted(crl)));
  EXPECT_FALSE(p.Apply(v1::SyncChange()));
  EXPECT_EQ(p.ObjectCount(), 0u);
  EXPECT_EQ(p.FindIssuer("devices"), nullptr);
  EXPECT_TRUE(p.TakeTouched().empty());
  EXPECT_THAT(Dump(p), IsEmpty());
}

// ---- Snapshots -------------------------------------------------------------------------

std::vector<v1::SyncChange> Base() {
  return {
      IssuerChange("devices", v1::ISSUER_PURPOSE_DEVICES, "pem-1"),
      DeviceChange("d1", v1::DEVICE_STATUS_ACTIVE, {"g1"}, {{"site", "s1"}}),
      IdentityChange("w1"),
      CertificateChange("devices", "01", Cert(kFingerprint)),
      ProfileChange("p", {{"x/%c", v1::ACL_ACCESS_READ}}),
      AssignmentChange(v1::ACL_SUBJECT_TYPE_DEVICE, "d1", "p"),
      AssignmentChange(v1::ACL_SUBJECT_TYPE_IDENTITY, "w1", "p"),
  };
}

TEST(PolicySnapshotTest, ACopyIsUnaffectedByLaterChanges) {
  Policy p;
  ApplyAll(p, Base());
  const Policy snapshot(p);
  const std::vector<std::string> before = Dump(snapshot);
  ASSERT_EQ(before, Dump(p));

  ApplyAll(p, {
                  IssuerChange("devices", v1::ISSUER_PURPOSE_OPERATORS, "pem-2"),
                  IssuerChange("new", v1::ISSUER_PURPOSE_DEVICES, "pem-3"),
                  DeviceChange("d1", v1::DEVICE_STATUS_SUSPENDED),
                  DeviceChange("d2"),
                  IdentityChange("w1", v1::IDENTITY_STATUS_REVOKED),
                  CertificateChange("devices", "01",
                                    Cert(kFingerprint, v1::CERTIFICATE_STATUS_REVOKED)),
                  ProfileChange("p", {{"y/%c", v1::ACL_ACCESS_WRITE}}),
                  AssignmentChange(v1::ACL_SUBJECT_TYPE_ALL_DEVICES, "", "p"),
                  Deleted(AssignmentChange(v1::ACL_SUBJECT_TYPE_IDENTITY, "w1", "p")),
              });

  // The snapshot: as before, object by object.
  EXPECT_EQ(Dump(snapshot), before);
  EXPECT_EQ(snapshot.issuers().size(), 1u);
  EXPECT_EQ(snapshot.FindIssuer("devices")->purpose, v1::ISSUER_PURPOSE_DEVICES);
  EXPECT_EQ(snapshot.FindIssuer("new"), nullptr);
  EXPECT_EQ(snapshot.FindDevice("d1")->status, v1::DEVICE_STATUS_ACTIVE);
  ASSERT_NE(snapshot.FindDevice("d1")->extra, nullptr);
  EXPECT_EQ(snapshot.FindDevice("d2"), nullptr);
  EXPECT_EQ(snapshot.FindIdentity("w1")->status, v1::IDENTITY_STATUS_ACTIVE);
  EXPECT_EQ(snapshot.FindCertificate("devices", "01")->status, v1::CERTIFICATE_STATUS_ACTIVE);
  EXPECT_THAT(DeviceRules(snapshot, "d1"), ElementsAre(Pair("x/d1", A(acl::Access::kRead))));
  EXPECT_THAT(IdentityRules(snapshot, "w1"), ElementsAre(Pair("x/w1", A(acl::Access::kRead))));
  EXPECT_EQ(snapshot.ObjectCount(), 7u);

  // The policy: changed.
  EXPECT_EQ(p.FindIssuer("devices")->purpose, v1::ISSUER_PURPOSE_OPERATORS);
  EXPECT_NE(p.FindIssuer("new"), nullptr);
  EXPECT_EQ(p.FindDevice("d1")->status, v1::DEVICE_STATUS_SUSPENDED);
  EXPECT_NE(p.FindDevice("d2"), nullptr);
  EXPECT_EQ(p.FindIdentity("w1")->status, v1::IDENTITY_STATUS_REVOKED);
  EXPECT_EQ(p.FindCertificate("devices", "01")->status, v1::CERTIFICATE_STATUS_REVOKED);
  EXPECT_THAT(DeviceRules(p, "d2"), ElementsAre(Pair("y/d2", A(acl::Access::kWrite))));
  EXPECT_THAT(IdentityRules(p, "w1"), IsEmpty());
}

TEST(PolicySnapshotTest, DeletionsInTheOriginalDoNotReachTheCopy) {
  Policy p;
  ApplyAll(p, Base());
  const Policy snapshot(p);
  for (const v1::SyncChange& change : Base()) ASSERT_TRUE(p.Apply(Deleted(change)));
  EXPECT_EQ(p.ObjectCount(), 0u);
  EXPECT_THAT(Dump(p), IsEmpty());
  EXPECT_EQ(snapshot.ObjectCount(), 7u);
  EXPECT_NE(snapshot.FindIssuer("devices"), nullptr);
  EXPECT_NE(snapshot.FindDevice("d1"), nullptr);
  EXPECT_NE(snapshot.FindIdentity("w1"), nullptr);
  EXPECT_NE(snapshot.FindCertificate("devices", "01"), nullptr);
  EXPECT_THAT(DeviceRules(snapshot, "d1"), ElementsAre(Pair("x/d1", A(acl::Access::kRead))));
}

TEST(PolicySnapshotTest, ChangesToTheCopyDoNotReachTheOriginal) {
  Policy p;
  ApplyAll(p, Base());
  const std::vector<std::string> before = Dump(p);
  Policy copy(p);
  ApplyAll(copy, {DeviceChange("d1", v1::DEVICE_STATUS_SUSPENDED), DeviceChange("d9"),
                  ProfileChange("p", {}), Deleted(IdentityChange("w1"))});
  EXPECT_EQ(Dump(p), before);
  EXPECT_EQ(p.FindDevice("d1")->status, v1::DEVICE_STATUS_ACTIVE);
  EXPECT_EQ(p.FindDevice("d9"), nullptr);
  EXPECT_NE(p.FindIdentity("w1"), nullptr);
  EXPECT_THAT(DeviceRules(p, "d1"), ElementsAre(Pair("x/d1", A(acl::Access::kRead))));
}

// ---- TakeTouched -----------------------------------------------------------------------

TEST(PolicyTouchedTest, ANewPolicyCountsAsAllTouched) {
  Policy p;
  ApplyAll(p, Base());
  Touched t = p.TakeTouched();
  EXPECT_TRUE(t.all);
  // Nothing recorded key by key while everything counts as touched.
  EXPECT_THAT(t.devices, IsEmpty());
  EXPECT_THAT(t.certificates, IsEmpty());
  // Taken: a new set begins.
  EXPECT_TRUE(p.TakeTouched().empty());
}

TEST(PolicyTouchedTest, ACopyStartsUntouched) {
  Policy p;
  const Policy copy(p);
  Policy copy2(copy);
  EXPECT_TRUE(copy2.TakeTouched().empty());
}

TEST(PolicyTouchedTest, DevicesIdentitiesAndCertificatesByKey) {
  Policy p = Fresh();
  ApplyAll(p, {DeviceChange("d1"), Deleted(DeviceChange("d2")), IdentityChange("w1"),
               Deleted(IdentityChange("w2")),
               CertificateChange("devices", "0a", Cert(kFingerprint)),
               Deleted(CertificateChange("ext", "0b", Cert("")))});
  Touched t = p.TakeTouched();
  EXPECT_FALSE(t.all);
  EXPECT_THAT(t.devices, UnorderedElementsAre("d1", "d2"));
  EXPECT_THAT(t.identities, UnorderedElementsAre("w1", "w2"));
  EXPECT_THAT(t.certificates,
              UnorderedElementsAre(CertificateKey("devices", "0a"), CertificateKey("ext", "0b")));
  EXPECT_TRUE(p.TakeTouched().empty());
}

TEST(PolicyTouchedTest, AssignmentsToADeviceOrIdentityTouchOnlyThem) {
  Policy p = Fresh();
  ApplyAll(p, {AssignmentChange(v1::ACL_SUBJECT_TYPE_DEVICE, "d1", "p"),
               Deleted(AssignmentChange(v1::ACL_SUBJECT_TYPE_IDENTITY, "w1", "p"))});
  Touched t = p.TakeTouched();
  EXPECT_FALSE(t.all);
  EXPECT_THAT(t.devices, UnorderedElementsAre("d1"));
  EXPECT_THAT(t.identities, UnorderedElementsAre("w1"));
  EXPECT_THAT(t.certificates, IsEmpty());
}

TEST(PolicyTouchedTest, WideChangesTouchAll) {
  struct Case {
    const char* name;
    v1::SyncChange change;
  };
  const std::vector<Case> cases = {
      {"issuer", IssuerChange("devices", v1::ISSUER_PURPOSE_DEVICES, "pem")},
      {"issuer_deleted", Deleted(IssuerChange("devices", v1::ISSUER_PURPOSE_DEVICES, ""))},
      {"profile", ProfileChange("p", {{"a", v1::ACL_ACCESS_READ}})},
      {"profile_deleted", Deleted(ProfileChange("p", {}))},
      {"group_assignment", AssignmentChange(v1::ACL_SUBJECT_TYPE_GROUP, "g1", "p")},
      {"group_unassignment", Deleted(AssignmentChange(v1::ACL_SUBJECT_TYPE_GROUP, "g1", "p"))},
      {"all_devices_assignment", AssignmentChange(v1::ACL_SUBJECT_TYPE_ALL_DEVICES, "", "p")},
  };
  for (const Case& c : cases) {
    Policy p = Fresh();
    ASSERT_TRUE(p.Apply(c.change)) << c.name;
    // Later key-by-key changes are not recorded apart once everything is touched.
    ASSERT_TRUE(p.Apply(DeviceChange("d1")));
    Touched t = p.TakeTouched();
    EXPECT_TRUE(t.all) << c.name;
    EXPECT_THAT(t.devices, IsEmpty()) << c.name;
    EXPECT_TRUE(p.TakeTouched().empty()) << c.name;
  }
}

TEST(PolicyTouchedTest, MarkAllTouched) {
  Policy p = Fresh();
  p.MarkAllTouched();
  EXPECT_TRUE(p.TakeTouched().all);
}

// ---- ObjectCount and ForEachObject -----------------------------------------------------------

std::vector<v1::SyncChange> Everything(const TestPki& pki) {
  CertFields dev;
  dev.fingerprint_hex = kFingerprint;
  dev.status = v1::CERTIFICATE_STATUS_ON_HOLD;
  dev.reason = v1::REVOCATION_REASON_CERTIFICATE_HOLD;
  dev.principal_type = v1::PRINCIPAL_TYPE_DEVICE;
  dev.principal_id = "d1";
  dev.not_after = 1800000000;
  CertFields id;
  id.fingerprint_hex = std::string(64, 'f');
  id.principal_type = v1::PRINCIPAL_TYPE_IDENTITY;
  id.principal_id = "w1";
  id.not_after = 1800000001;
  return {
      IssuerChange("devices", v1::ISSUER_PURPOSE_DEVICES, pki.ca("devices").pem, {}, 1900000000),
      IssuerChange("ext", v1::ISSUER_PURPOSE_DEVICES, pki.ca("ext").pem,
                   {/*external=*/true, /*enabled=*/false, /*accept=*/true}),
      DeviceChange("d1", v1::DEVICE_STATUS_ACTIVE, {"g1", "g2"}, {{"site", "s1"}, {"k", "v"}}),
      DeviceChange("d2", v1::DEVICE_STATUS_SUSPENDED),
      DeviceChange("d3", v1::DEVICE_STATUS_ACTIVE, {}, {{"only", "attrs"}}),
      IdentityChange("w1", v1::IDENTITY_STATUS_ACTIVE, v1::IDENTITY_ROLE_MQTT_CLIENT),
      IdentityChange("w2", v1::IDENTITY_STATUS_REVOKED, v1::IDENTITY_ROLE_VIEWER),
      CertificateChange("devices", "0a", dev),
      CertificateChange("operators", "0b", id),
      CertificateChange(
          "ext", "0c",
          Cert("", v1::CERTIFICATE_STATUS_REVOKED, v1::REVOCATION_REASON_KEY_COMPROMISE)),
      ProfileChange("p1", {{"a/%c/#", v1::ACL_ACCESS_READWRITE}, {"b/%{site}", v1::ACL_ACCESS_DENY}}),
      ProfileChange("p2", {{"c/+", v1::ACL_ACCESS_SUBSCRIBE}}),
      ProfileChange("empty", {}),
      AssignmentChange(v1::ACL_SUBJECT_TYPE_ALL_DEVICES, "", "p1"),
      AssignmentChange(v1::ACL_SUBJECT_TYPE_GROUP, "g2", "p2"),
      AssignmentChange(v1::ACL_SUBJECT_TYPE_GROUP, "g2", "p1"),
      AssignmentChange(v1::ACL_SUBJECT_TYPE_DEVICE, "d1", "p2"),
      AssignmentChange(v1::ACL_SUBJECT_TYPE_IDENTITY, "w1", "p2"),
      AssignmentChange(v1::ACL_SUBJECT_TYPE_IDENTITY, "w1", "missing"),
  };
}

TEST(PolicyForEachObjectTest, RoundTripIntoAFreshPolicy) {
  TestPki pki;
  pki.AddCa("devices", "Devices CA");
  pki.AddCa("ext", "Customer CA");
  const std::vector<v1::SyncChange> all = Everything(pki);
  Policy p;
  ApplyAll(p, all);
  EXPECT_EQ(p.ObjectCount(), all.size());

  size_t calls = 0;
  Policy copy;
  p.ForEachObject([&](const v1::SyncChange& change) {
    ++calls;
    EXPECT_FALSE(change.deleted());
    EXPECT_TRUE(copy.Apply(change)) << change.ShortDebugString();
  });
  EXPECT_EQ(calls, all.size());
  EXPECT_EQ(copy.ObjectCount(), p.ObjectCount());
  EXPECT_EQ(Dump(copy), Dump(p));

  // The same lookups.
  for (const char* id : {"devices", "ext"}) {
    const Issuer* a = p.FindIssuer(id);
    const Issuer* b = copy.FindIssuer(id);
    ASSERT_NE(b, nullptr) << id;
    EXPECT_EQ(b->purpose, a->purpose);
    EXPECT_EQ(b->external, a->external);
    EXPECT_EQ(b->enabled, a->enabled);
    EXPECT_EQ(b->accept_unregistered, a->accept_unregistered);
    EXPECT_EQ(b->certificate_pem, a->certificate_pem);
    EXPECT_NE(b->certificate, nullptr);
    EXPECT_EQ(b->not_after, a->not_after);
  }
  EXPECT_FALSE(copy.FindIssuer("ext")->enabled);
  EXPECT_EQ(copy.FindIssuer("devices")->not_after, 1900000000);
  for (const char* id : {"d1", "d2", "d3"}) {
    const Device* a = p.FindDevice(id);
    const Device* b = copy.FindDevice(id);
    ASSERT_NE(b, nullptr) << id;
    EXPECT_EQ(b->status, a->status);
    EXPECT_EQ(b->extra == nullptr, a->extra == nullptr) << id;
    if (a->extra != nullptr && b->extra != nullptr) {
      EXPECT_EQ(b->extra->groups, a->extra->groups);
      EXPECT_EQ(b->extra->attributes, a->extra->attributes);
    }
    EXPECT_EQ(Pairs(copy.ResolveRules(v1::PRINCIPAL_TYPE_DEVICE, id, b)),
              Pairs(p.ResolveRules(v1::PRINCIPAL_TYPE_DEVICE, id, a)))
        << id;
  }
  EXPECT_THAT(copy.FindDevice("d1")->extra->groups, ElementsAre("g1", "g2"));
  for (const char* id : {"w1", "w2"}) {
    ASSERT_NE(copy.FindIdentity(id), nullptr);
    EXPECT_EQ(copy.FindIdentity(id)->status, p.FindIdentity(id)->status);
    EXPECT_EQ(copy.FindIdentity(id)->role, p.FindIdentity(id)->role);
    EXPECT_EQ(IdentityRules(copy, id), IdentityRules(p, id));
  }
  EXPECT_THAT(IdentityRules(copy, "w1"), ElementsAre(Pair("c/+", A(acl::Access::kSubscribe))));
  for (const auto& [issuer, serial] : std::vector<std::pair<std::string, std::string>>{
           {"devices", "0a"}, {"operators", "0b"}, {"ext", "0c"}}) {
    const Certificate* a = p.FindCertificate(issuer, serial);
    const Certificate* b = copy.FindCertificate(issuer, serial);
    ASSERT_NE(b, nullptr) << serial;
    EXPECT_EQ(b->has_fingerprint, a->has_fingerprint);
    EXPECT_EQ(b->fingerprint, a->fingerprint);
    EXPECT_EQ(b->status, a->status);
    EXPECT_EQ(b->revocation_reason, a->revocation_reason);
    EXPECT_EQ(b->principal_type, a->principal_type);
    EXPECT_EQ(b->principal_id, a->principal_id);
    EXPECT_EQ(b->not_after, a->not_after);
  }
  EXPECT_EQ(copy.FindCertificate("devices", "0a")->fingerprint, FingerprintBytes());
  EXPECT_EQ(copy.FindCertificate("operators", "0b")->principal_id, "w1");
  EXPECT_FALSE(copy.FindCertificate("ext", "0c")->has_fingerprint);
}

TEST(PolicyForEachObjectTest, EmptyPolicy) {
  Policy p;
  int calls = 0;
  p.ForEachObject([&](const v1::SyncChange&) { ++calls; });
  EXPECT_EQ(calls, 0);
  EXPECT_EQ(p.ObjectCount(), 0u);
}

}  // namespace
}  // namespace fleetca::plugin
