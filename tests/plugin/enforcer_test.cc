#include "plugin/enforcer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "tests/plugin/plugin_test_util.h"

namespace fleetca::plugin {
namespace {

using ::testing::ElementsAre;
using ::testing::Field;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;
using testing::ApplyAll;
using testing::AssignmentChange;
using testing::Deleted;
using testing::DeviceChange;
using testing::Fleet;
using testing::IdentityChange;
using testing::InventoryOf;
using testing::IssuerChange;
using testing::kDev1;
using testing::kDev2;
using testing::kDev3;
using testing::kWatcher;
using testing::ProfileChange;

constexpr acl::Operation kPublish = acl::Operation::kPublish;
constexpr acl::Operation kSubscribe = acl::Operation::kSubscribe;
constexpr acl::Operation kReceive = acl::Operation::kReceive;

std::string Topic(const std::string& id, const std::string& rest) {
  return absl::StrCat("devices/", id, "/", rest);
}

// MakeTouched: a touched set naming these devices, identities and certificate keys.
Touched MakeTouched(const std::vector<std::string>& devices,
                    const std::vector<std::string>& identities,
                    const std::vector<std::string>& certificates) {
  Touched t;
  t.devices.insert(devices.begin(), devices.end());
  t.identities.insert(identities.begin(), identities.end());
  t.certificates.insert(certificates.begin(), certificates.end());
  return t;
}

// ---- SnapshotBox ---------------------------------------------------------------------------

TEST(SnapshotBoxTest, TakeHandsOverTheNewestAndMergesTouched) {
  SnapshotBox box;
  std::shared_ptr<const Policy> policy;
  int64_t revision = -1;
  Touched touched;
  EXPECT_FALSE(box.Take(&policy, &revision, &touched));
  EXPECT_EQ(box.Latest().first, nullptr);

  auto p1 = std::make_shared<const Policy>();
  auto p2 = std::make_shared<const Policy>();
  Touched t1;
  t1.devices.insert("d1");
  Touched t2;
  t2.identities.insert("w1");
  t2.certificates.insert("k");
  box.Publish(p1, 5, std::move(t1));
  box.Publish(p2, 6, std::move(t2));
  EXPECT_EQ(box.Latest().first, p2);
  EXPECT_EQ(box.Latest().second, 6);

  ASSERT_TRUE(box.Take(&policy, &revision, &touched));
  EXPECT_EQ(policy, p2);
  EXPECT_EQ(revision, 6);
  EXPECT_FALSE(touched.all);
  EXPECT_THAT(touched.devices, UnorderedElementsAre("d1"));
  EXPECT_THAT(touched.identities, UnorderedElementsAre("w1"));
  EXPECT_THAT(touched.certificates, UnorderedElementsAre("k"));
  // Nothing new: false, and the touched set starts again.
  EXPECT_FALSE(box.Take(&policy, &revision, &touched));
  box.Publish(p1, 7, Touched());
  ASSERT_TRUE(box.Take(&policy, &revision, &touched));
  EXPECT_EQ(policy, p1);
  EXPECT_EQ(revision, 7);
  EXPECT_TRUE(touched.empty());
  EXPECT_EQ(box.Latest().second, 7);
}

TEST(SnapshotBoxTest, RetiredSnapshotsAreFreedAtTheNextPublish) {
  SnapshotBox box;
  auto old_policy = std::make_shared<const Policy>();
  std::weak_ptr<const Policy> weak = old_policy;
  box.Retire(std::move(old_policy));
  box.Retire(nullptr);  // nothing to hand back: harmless
  EXPECT_FALSE(weak.expired());  // kept until the sync thread publishes again
  box.Publish(std::make_shared<const Policy>(), 1, Touched());
  EXPECT_TRUE(weak.expired());
}

// ---- Enforcer --------------------------------------------------------------------------

// The sync thread's side: a Policy changes, each change published as a snapshot with what
// it touched.
class EnforcerTest : public ::testing::Test {
 protected:
  EnforcerTest() { now_ = absl::FromUnixSeconds(fleet_.dev1.not_after) - absl::Hours(2); }

  std::unique_ptr<Enforcer> MakeEnforcer(EnforcerOptions options = {}) {
    return std::make_unique<Enforcer>(box_, options, [this] { return now_; });
  }

  // Publish applies changes to the sync thread's policy and publishes a snapshot of it.
  void Publish(const std::vector<v1::SyncChange>& changes) {
    ApplyAll(master_, changes);
    box_.Publish(std::make_shared<const Policy>(master_), ++revision_, master_.TakeTouched());
  }
  // PublishWeak is Publish, returning a weak reference to the snapshot published.
  std::weak_ptr<const Policy> PublishWeak(const std::vector<v1::SyncChange>& changes) {
    ApplyAll(master_, changes);
    auto snapshot = std::make_shared<const Policy>(master_);
    std::weak_ptr<const Policy> weak = snapshot;
    box_.Publish(std::move(snapshot), ++revision_, master_.TakeTouched());
    return weak;
  }
  // PublishClaiming publishes the changes, but says that they touched only `touched`.
  void PublishClaiming(const std::vector<v1::SyncChange>& changes, Touched touched) {
    ApplyAll(master_, changes);
    master_.TakeTouched();
    box_.Publish(std::make_shared<const Policy>(master_), ++revision_, std::move(touched));
  }

  Decision Connect(Enforcer& e, const void* client, const std::string& client_id,
                   const testing::TestLeaf& leaf) {
    return e.OnConnect(client, client_id, leaf.cert.get());
  }

  Fleet fleet_;
  SnapshotBox box_;
  Policy master_;
  int64_t revision_ = 100;
  absl::Time now_;
  // Client handles (mosquitto's pointers).
  int c1_ = 0, c2_ = 0, c3_ = 0;
};

TEST_F(EnforcerTest, NoPolicyRefusesEveryone) {
  auto e = MakeEnforcer();
  EXPECT_FALSE(e->has_policy());
  const Decision d = Connect(*e, &c1_, kDev1, fleet_.dev1);
  EXPECT_EQ(d.verdict, Verdict::kNoPolicy);
  EXPECT_EQ(e->client_count(), 0u);
  EXPECT_FALSE(e->Allowed(&c1_, kDev1, kPublish, Topic(kDev1, "up")));
  EXPECT_THAT(e->OnTick(), IsEmpty());
  EXPECT_EQ(e->OnConnect(&c1_, kDev1, nullptr).verdict, Verdict::kNoPolicy);
}

TEST_F(EnforcerTest, AdmitWithoutPolicyThenKickedOnTheFirstSnapshot) {
  EnforcerOptions options;
  options.admit_without_policy = true;
  auto e = MakeEnforcer(options);

  // CN = client id: admitted, everything allowed.
  const Decision d = Connect(*e, &c1_, kDev1, fleet_.dev1);
  EXPECT_EQ(d.verdict, Verdict::kAllowed) << d.message;
  EXPECT_EQ(e->client_count(), 1u);
  EXPECT_TRUE(e->Allowed(&c1_, kDev1, kPublish, "anything/at/all"));
  EXPECT_TRUE(e->Allowed(&c1_, kDev1, kSubscribe, "#"));
  EXPECT_TRUE(e->Allowed(&c1_, kDev1, kReceive, Topic(kDev2, "up")));
  // Not with another client id, nor without a certificate.
  EXPECT_EQ(Connect(*e, &c2_, kDev2, fleet_.dev1).verdict, Verdict::kNoPolicy);
  EXPECT_EQ(e->OnConnect(&c3_, kDev1, nullptr).verdict, Verdict::kNoPolicy);
  EXPECT_EQ(e->client_count(), 1u);
  // Even a certificate of a CA fleetca does not know: there is no policy to know it by.
  const testing::TestLeaf foreign = fleet_.pki.Issue("foreign", kDev3);
  EXPECT_EQ(Connect(*e, &c3_, kDev3, foreign).verdict, Verdict::kAllowed);
  EXPECT_THAT(e->OnTick(), IsEmpty());

  // The first policy: every client admitted without one is kicked, once.
  Publish(fleet_.Changes());
  const std::vector<Kick> kicks = e->OnTick();
  EXPECT_THAT(kicks, UnorderedElementsAre(Field(&Kick::client_id, kDev1),
                                          Field(&Kick::client_id, kDev3)));
  EXPECT_TRUE(e->has_policy());
  EXPECT_FALSE(e->Allowed(&c1_, kDev1, kPublish, Topic(kDev1, "up")));
  EXPECT_FALSE(e->Allowed(&c1_, kDev1, kPublish, "anything/at/all"));
  EXPECT_THAT(e->OnTick(), IsEmpty());

  // Reconnecting: decided under the policy.
  e->OnDisconnect(&c1_);
  e->OnDisconnect(&c3_);
  EXPECT_EQ(Connect(*e, &c1_, kDev1, fleet_.dev1).verdict, Verdict::kAllowed);
  EXPECT_TRUE(e->Allowed(&c1_, kDev1, kPublish, Topic(kDev1, "up")));
  EXPECT_FALSE(e->Allowed(&c1_, kDev1, kPublish, "anything/at/all"));
  EXPECT_EQ(Connect(*e, &c3_, kDev3, foreign).verdict, Verdict::kUntrustedIssuer);
}

TEST_F(EnforcerTest, AdmitWithoutPolicyKickedWhenAConnectTookTheFirstSnapshot) {
  EnforcerOptions options;
  options.admit_without_policy = true;
  auto e = MakeEnforcer(options);
  ASSERT_TRUE(Connect(*e, &c1_, kDev1, fleet_.dev1).allowed());
  Publish(fleet_.Changes());
  // Another client's CONNECT takes the snapshot before any TICK.
  EXPECT_EQ(Connect(*e, &c2_, kDev2, fleet_.dev2).verdict, Verdict::kAllowed);
  EXPECT_THAT(e->OnTick(), ElementsAre(Field(&Kick::client_id, kDev1)));
}

TEST_F(EnforcerTest, AllowedPerRules) {
  Publish(fleet_.Changes());
  auto e = MakeEnforcer();
  const Decision d = Connect(*e, &c1_, kDev1, fleet_.dev1);
  ASSERT_EQ(d.verdict, Verdict::kAllowed) << d.message;
  EXPECT_TRUE(e->has_policy());
  EXPECT_EQ(e->revision(), revision_);
  EXPECT_EQ(e->client_count(), 1u);
  ASSERT_EQ(Connect(*e, &c2_, kWatcher, fleet_.watcher).verdict, Verdict::kAllowed);

  // The device: devices/<id>/# READWRITE, fleet/broadcast READ.
  EXPECT_TRUE(e->Allowed(&c1_, kDev1, kPublish, Topic(kDev1, "up")));
  EXPECT_FALSE(e->Allowed(&c1_, kDev1, kPublish, Topic(kDev2, "up")));
  EXPECT_TRUE(e->Allowed(&c1_, kDev1, kSubscribe, Topic(kDev1, "#")));
  EXPECT_FALSE(e->Allowed(&c1_, kDev1, kSubscribe, "devices/+/up"));
  EXPECT_TRUE(e->Allowed(&c1_, kDev1, kReceive, Topic(kDev1, "cmd")));
  EXPECT_TRUE(e->Allowed(&c1_, kDev1, kSubscribe, "fleet/broadcast"));
  EXPECT_TRUE(e->Allowed(&c1_, kDev1, kReceive, "fleet/broadcast"));
  EXPECT_FALSE(e->Allowed(&c1_, kDev1, kPublish, "fleet/broadcast"));
  // The identity: devices/+/telemetry READ.
  EXPECT_TRUE(e->Allowed(&c2_, kWatcher, kSubscribe, "devices/+/telemetry"));
  EXPECT_TRUE(e->Allowed(&c2_, kWatcher, kReceive, Topic(kDev1, "telemetry")));
  EXPECT_FALSE(e->Allowed(&c2_, kWatcher, kPublish, Topic(kDev1, "telemetry")));
  EXPECT_FALSE(e->Allowed(&c2_, kWatcher, kSubscribe, "devices/#"));
}

TEST_F(EnforcerTest, RefusedConnectsAreNotRemembered) {
  Publish(fleet_.Changes());
  auto e = MakeEnforcer();
  EXPECT_EQ(e->OnConnect(&c1_, kDev1, nullptr).verdict, Verdict::kNoCertificate);
  EXPECT_EQ(Connect(*e, &c1_, kDev2, fleet_.dev1).verdict, Verdict::kClientIdMismatch);
  EXPECT_EQ(e->client_count(), 0u);
  // A connection that reuses a handle replaces what was remembered under it.
  ASSERT_TRUE(Connect(*e, &c1_, kDev1, fleet_.dev1).allowed());
  EXPECT_EQ(e->client_count(), 1u);
  EXPECT_EQ(Connect(*e, &c1_, kDev2, fleet_.dev1).verdict, Verdict::kClientIdMismatch);
  EXPECT_EQ(e->client_count(), 0u);
}

TEST_F(EnforcerTest, UnknownClientsAreDecidedByClientId) {
  Publish(fleet_.Changes());
  Publish({DeviceChange(kDev3, v1::DEVICE_STATUS_SUSPENDED), IdentityChange("gone-watcher",
                                                                            v1::IDENTITY_STATUS_REVOKED),
           AssignmentChange(v1::ACL_SUBJECT_TYPE_IDENTITY, "gone-watcher", "watcher")});
  auto e = MakeEnforcer();
  ASSERT_TRUE(Connect(*e, &c1_, kDev1, fleet_.dev1).allowed());

  // Another pointer (an offline session's queued message): kDev1's rules by its client id.
  EXPECT_TRUE(e->Allowed(&c2_, kDev1, kReceive, Topic(kDev1, "cmd")));
  EXPECT_FALSE(e->Allowed(&c2_, kDev1, kReceive, Topic(kDev2, "cmd")));
  // The connected client's pointer with another client id: that id's rules.
  EXPECT_TRUE(e->Allowed(&c1_, kDev2, kReceive, Topic(kDev2, "cmd")));
  EXPECT_FALSE(e->Allowed(&c1_, kDev2, kReceive, Topic(kDev1, "cmd")));
  // An identity by its name.
  EXPECT_TRUE(e->Allowed(&c3_, kWatcher, kReceive, Topic(kDev2, "telemetry")));
  EXPECT_FALSE(e->Allowed(&c3_, kWatcher, kReceive, Topic(kDev2, "cmd")));
  // Inactive or unknown: nothing.
  EXPECT_FALSE(e->Allowed(&c3_, kDev3, kReceive, Topic(kDev3, "cmd")));
  EXPECT_FALSE(e->Allowed(&c3_, "gone-watcher", kReceive, Topic(kDev2, "telemetry")));
  EXPECT_FALSE(e->Allowed(&c3_, "356938035649999", kReceive, "fleet/broadcast"));
}

TEST_F(EnforcerTest, ClientIdFallbackTakesNoSnapshotOfItsOwnButUsesTheTakenOne) {
  auto e = MakeEnforcer();
  Publish(fleet_.Changes());
  // Published but not yet taken by a CONNECT or a TICK.
  EXPECT_FALSE(e->has_policy());
  EXPECT_FALSE(e->Allowed(&c2_, kDev1, kReceive, Topic(kDev1, "cmd")));
  e->OnTick();
  EXPECT_TRUE(e->Allowed(&c2_, kDev1, kReceive, Topic(kDev1, "cmd")));
}

TEST_F(EnforcerTest, RevokedCertificateIsKicked) {
  Publish(fleet_.Changes());
  auto e = MakeEnforcer();
  ASSERT_TRUE(Connect(*e, &c1_, kDev1, fleet_.dev1).allowed());
  ASSERT_TRUE(Connect(*e, &c2_, kDev2, fleet_.dev2).allowed());
  ASSERT_TRUE(Connect(*e, &c3_, kWatcher, fleet_.watcher).allowed());
  EXPECT_THAT(e->OnTick(), IsEmpty());

  Publish({InventoryOf(fleet_.dev1, v1::PRINCIPAL_TYPE_DEVICE, kDev1,
                       v1::CERTIFICATE_STATUS_REVOKED, v1::REVOCATION_REASON_KEY_COMPROMISE)});
  const std::vector<Kick> kicks = e->OnTick();
  ASSERT_THAT(kicks, ElementsAre(Field(&Kick::client_id, kDev1)));
  EXPECT_THAT(kicks[0].reason, HasSubstr("revoked"));
  EXPECT_FALSE(e->Allowed(&c1_, kDev1, kPublish, Topic(kDev1, "up")));
  EXPECT_FALSE(e->Allowed(&c1_, kDev1, kReceive, "fleet/broadcast"));
  EXPECT_TRUE(e->Allowed(&c2_, kDev2, kPublish, Topic(kDev2, "up")));
  EXPECT_EQ(e->revision(), revision_);
  // Kicked once, not on every tick.
  EXPECT_THAT(e->OnTick(), IsEmpty());
  // And a reconnect with that certificate is refused.
  e->OnDisconnect(&c1_);
  EXPECT_EQ(Connect(*e, &c1_, kDev1, fleet_.dev1).verdict, Verdict::kCertificateRevoked);
}

TEST_F(EnforcerTest, SuspendedDeviceAndRevokedIdentityAreKicked) {
  Publish(fleet_.Changes());
  auto e = MakeEnforcer();
  ASSERT_TRUE(Connect(*e, &c1_, kDev1, fleet_.dev1).allowed());
  ASSERT_TRUE(Connect(*e, &c2_, kDev2, fleet_.dev2).allowed());
  ASSERT_TRUE(Connect(*e, &c3_, kWatcher, fleet_.watcher).allowed());
  e->OnTick();
  Publish({DeviceChange(kDev2, v1::DEVICE_STATUS_SUSPENDED),
           IdentityChange(kWatcher, v1::IDENTITY_STATUS_REVOKED)});
  EXPECT_THAT(e->OnTick(), UnorderedElementsAre(Field(&Kick::client_id, kDev2),
                                                Field(&Kick::client_id, kWatcher)));
  EXPECT_TRUE(e->Allowed(&c1_, kDev1, kPublish, Topic(kDev1, "up")));
}

TEST_F(EnforcerTest, RemovedIssuerKicksItsClients) {
  Publish(fleet_.Changes());
  auto e = MakeEnforcer();
  ASSERT_TRUE(Connect(*e, &c1_, kDev1, fleet_.dev1).allowed());
  ASSERT_TRUE(Connect(*e, &c3_, kWatcher, fleet_.watcher).allowed());
  e->OnTick();
  Publish({Deleted(IssuerChange("devices", v1::ISSUER_PURPOSE_DEVICES, ""))});
  EXPECT_THAT(e->OnTick(), ElementsAre(Field(&Kick::client_id, kDev1)));
}

TEST_F(EnforcerTest, ASnapshotTouchingOnlyAnotherDeviceDoesNotRedecide) {
  Publish(fleet_.Changes());
  auto e = MakeEnforcer();
  ASSERT_TRUE(Connect(*e, &c1_, kDev1, fleet_.dev1).allowed());
  EXPECT_THAT(e->OnTick(), IsEmpty());  // everyone decided on the first policy

  // dev1's certificate is revoked, but the snapshot says it touched only dev2: dev1 is not
  // decided again (which is how a change elsewhere costs nothing).
  PublishClaiming({InventoryOf(fleet_.dev1, v1::PRINCIPAL_TYPE_DEVICE, kDev1,
                               v1::CERTIFICATE_STATUS_REVOKED)},
                  MakeTouched({kDev2}, {}, {}));
  EXPECT_THAT(e->OnTick(), IsEmpty());
  EXPECT_EQ(e->revision(), revision_);
  now_ += absl::Minutes(59);
  EXPECT_THAT(e->OnTick(), IsEmpty());
  EXPECT_TRUE(e->Allowed(&c1_, kDev1, kPublish, Topic(kDev1, "up")));

  // A snapshot that does name dev1's certificate finds it.
  PublishClaiming({}, MakeTouched({}, {}, {CertificateKey("devices", fleet_.dev1.serial_hex)}));
  EXPECT_THAT(e->OnTick(), ElementsAre(Field(&Kick::client_id, kDev1)));
  EXPECT_FALSE(e->Allowed(&c1_, kDev1, kPublish, Topic(kDev1, "up")));
}

TEST_F(EnforcerTest, TouchedByCertificateKeyOrIdentityName) {
  Publish(fleet_.Changes());
  auto e = MakeEnforcer();
  ASSERT_TRUE(Connect(*e, &c1_, kDev1, fleet_.dev1).allowed());
  ASSERT_TRUE(Connect(*e, &c3_, kWatcher, fleet_.watcher).allowed());
  e->OnTick();
  // Both lose their standing; the touched set names dev1 by its certificate only, and the
  // watcher by its name.
  PublishClaiming({DeviceChange(kDev1, v1::DEVICE_STATUS_SUSPENDED),
                   IdentityChange(kWatcher, v1::IDENTITY_STATUS_REVOKED)},
                  MakeTouched({}, {kWatcher}, {CertificateKey("devices", fleet_.dev1.serial_hex)}));
  EXPECT_THAT(e->OnTick(), UnorderedElementsAre(Field(&Kick::client_id, kDev1),
                                                Field(&Kick::client_id, kWatcher)));
}

TEST_F(EnforcerTest, ARealChangeToAnotherDeviceKicksOnlyIt) {
  Publish(fleet_.Changes());
  auto e = MakeEnforcer();
  ASSERT_TRUE(Connect(*e, &c1_, kDev1, fleet_.dev1).allowed());
  ASSERT_TRUE(Connect(*e, &c2_, kDev2, fleet_.dev2).allowed());
  e->OnTick();
  Publish({ProfileChange("lockdown", {{"#", v1::ACL_ACCESS_DENY}}),
           AssignmentChange(v1::ACL_SUBJECT_TYPE_DEVICE, kDev2, "lockdown")});
  // The profile is a wide change (everyone decided again), but only dev2 lost a right.
  EXPECT_THAT(e->OnTick(), ElementsAre(Field(&Kick::client_id, kDev2)));
  Publish({AssignmentChange(v1::ACL_SUBJECT_TYPE_DEVICE, kDev1, "lockdown")});
  EXPECT_THAT(e->OnTick(), ElementsAre(Field(&Kick::client_id, kDev1)));
}

TEST_F(EnforcerTest, NarrowedRulesKickWidenedRulesDoNot) {
  Publish(fleet_.Changes());
  auto e = MakeEnforcer();
  ASSERT_TRUE(Connect(*e, &c1_, kDev1, fleet_.dev1).allowed());
  ASSERT_TRUE(Connect(*e, &c3_, kWatcher, fleet_.watcher).allowed());
  EXPECT_THAT(e->OnTick(), IsEmpty());

  // Widened: a new WRITE rule. Nobody kicked; the new right works at once.
  EXPECT_FALSE(e->Allowed(&c1_, kDev1, kPublish, "fleet/hello"));
  Publish({Fleet::DeviceProfile({{"fleet/hello", v1::ACL_ACCESS_WRITE}})});
  EXPECT_THAT(e->OnTick(), IsEmpty());
  EXPECT_TRUE(e->Allowed(&c1_, kDev1, kPublish, "fleet/hello"));
  EXPECT_TRUE(e->Allowed(&c1_, kDev1, kReceive, "fleet/broadcast"));

  // Narrowed: fleet/broadcast taken away. The device is kicked, the watcher is not.
  Publish({ProfileChange("device", {{"devices/%c/#", v1::ACL_ACCESS_READWRITE},
                                    {"fleet/hello", v1::ACL_ACCESS_WRITE}})});
  const std::vector<Kick> kicks = e->OnTick();
  ASSERT_THAT(kicks, ElementsAre(Field(&Kick::client_id, kDev1)));
  EXPECT_THAT(kicks[0].reason, HasSubstr("lost a right"));
  EXPECT_FALSE(e->Allowed(&c1_, kDev1, kPublish, Topic(kDev1, "up")));
  EXPECT_TRUE(e->Allowed(&c3_, kWatcher, kReceive, Topic(kDev1, "telemetry")));

  // Reconnected: under the new rules.
  e->OnDisconnect(&c1_);
  ASSERT_TRUE(Connect(*e, &c1_, kDev1, fleet_.dev1).allowed());
  EXPECT_FALSE(e->Allowed(&c1_, kDev1, kReceive, "fleet/broadcast"));
  EXPECT_TRUE(e->Allowed(&c1_, kDev1, kPublish, "fleet/hello"));
}

TEST_F(EnforcerTest, AnAddedDenyRuleKicks) {
  Publish(fleet_.Changes());
  auto e = MakeEnforcer();
  ASSERT_TRUE(Connect(*e, &c1_, kDev1, fleet_.dev1).allowed());
  e->OnTick();
  Publish({Fleet::DeviceProfile({{"devices/%c/secret", v1::ACL_ACCESS_DENY}})});
  EXPECT_THAT(e->OnTick(), ElementsAre(Field(&Kick::client_id, kDev1)));
}

TEST_F(EnforcerTest, UnassigningAProfileFromTheDeviceKicksIt) {
  Publish(fleet_.Changes());
  Publish({ProfileChange("extra", {{"extra/%c", v1::ACL_ACCESS_READ}}),
           AssignmentChange(v1::ACL_SUBJECT_TYPE_DEVICE, kDev1, "extra")});
  auto e = MakeEnforcer();
  ASSERT_TRUE(Connect(*e, &c1_, kDev1, fleet_.dev1).allowed());
  ASSERT_TRUE(Connect(*e, &c2_, kDev2, fleet_.dev2).allowed());
  EXPECT_TRUE(e->Allowed(&c1_, kDev1, kReceive, std::string("extra/") + kDev1));
  e->OnTick();
  Publish({Deleted(AssignmentChange(v1::ACL_SUBJECT_TYPE_DEVICE, kDev1, "extra"))});
  EXPECT_THAT(e->OnTick(), ElementsAre(Field(&Kick::client_id, kDev1)));
}

TEST_F(EnforcerTest, AnExpiredCertificateIsKickedWithoutAnyChange) {
  Publish(fleet_.Changes());
  auto e = MakeEnforcer();
  const absl::Time not_after = absl::FromUnixSeconds(fleet_.dev1.not_after);
  now_ = not_after - absl::Seconds(30);
  ASSERT_TRUE(Connect(*e, &c1_, kDev1, fleet_.dev1).allowed());
  EXPECT_THAT(e->OnTick(), IsEmpty());
  now_ = not_after - absl::Seconds(1);
  EXPECT_THAT(e->OnTick(), IsEmpty());
  EXPECT_TRUE(e->Allowed(&c1_, kDev1, kPublish, Topic(kDev1, "up")));
  // At notAfter (as Decide counts it): kicked, by the clock alone.
  now_ = not_after;
  const std::vector<Kick> kicks = e->OnTick();
  ASSERT_THAT(kicks, ElementsAre(Field(&Kick::client_id, kDev1)));
  EXPECT_THAT(kicks[0].reason, HasSubstr("expired"));
  EXPECT_FALSE(e->Allowed(&c1_, kDev1, kPublish, Topic(kDev1, "up")));
  // Once.
  now_ += absl::Hours(1);
  EXPECT_THAT(e->OnTick(), IsEmpty());
}

TEST_F(EnforcerTest, ExpiryOfACertificateIssuedLaterIsTrackedPerClient) {
  // A second certificate for dev2 expiring an hour before dev1's.
  const testing::TestLeaf short_lived = fleet_.pki.Issue("devices", kDev2, absl::Minutes(30));
  Publish(fleet_.Changes());
  Publish({InventoryOf(short_lived, v1::PRINCIPAL_TYPE_DEVICE, kDev2)});
  auto e = MakeEnforcer();
  now_ = absl::FromUnixSeconds(short_lived.not_after) - absl::Seconds(5);
  ASSERT_TRUE(Connect(*e, &c1_, kDev1, fleet_.dev1).allowed());
  ASSERT_TRUE(Connect(*e, &c2_, kDev2, short_lived).allowed());
  EXPECT_THAT(e->OnTick(), IsEmpty());
  now_ += absl::Seconds(5);
  EXPECT_THAT(e->OnTick(), ElementsAre(Field(&Kick::client_id, kDev2)));
  EXPECT_TRUE(e->Allowed(&c1_, kDev1, kPublish, Topic(kDev1, "up")));
}

TEST_F(EnforcerTest, OnConnectUsesTheInjectedClock) {
  Publish(fleet_.Changes());
  auto e = MakeEnforcer();
  now_ = absl::FromUnixSeconds(fleet_.dev1.not_after);
  EXPECT_EQ(Connect(*e, &c1_, kDev1, fleet_.dev1).verdict, Verdict::kCertificateExpired);
}

TEST_F(EnforcerTest, OnConnectTakesTheNewestSnapshot) {
  Publish(fleet_.Changes());
  auto e = MakeEnforcer();
  ASSERT_TRUE(Connect(*e, &c2_, kDev2, fleet_.dev2).allowed());
  Publish({DeviceChange(kDev1, v1::DEVICE_STATUS_SUSPENDED)});
  // No TICK in between: the CONNECT decides on the newest policy.
  EXPECT_EQ(Connect(*e, &c1_, kDev1, fleet_.dev1).verdict, Verdict::kPrincipalInactive);
  EXPECT_EQ(e->revision(), revision_);
}

TEST_F(EnforcerTest, OnDisconnectForgets) {
  Publish(fleet_.Changes());
  auto e = MakeEnforcer();
  ASSERT_TRUE(Connect(*e, &c1_, kDev1, fleet_.dev1).allowed());
  ASSERT_TRUE(Connect(*e, &c2_, kDev2, fleet_.dev2).allowed());
  e->OnTick();
  e->OnDisconnect(&c1_);
  EXPECT_EQ(e->client_count(), 1u);
  e->OnDisconnect(&c1_);  // twice: harmless
  EXPECT_EQ(e->client_count(), 1u);
  // A forgotten client is not kicked any more.
  Publish({InventoryOf(fleet_.dev1, v1::PRINCIPAL_TYPE_DEVICE, kDev1,
                       v1::CERTIFICATE_STATUS_REVOKED)});
  EXPECT_THAT(e->OnTick(), IsEmpty());
  // Its pointer now falls back to the client-id resolution (the device is still ACTIVE).
  EXPECT_TRUE(e->Allowed(&c1_, kDev1, kPublish, Topic(kDev1, "up")));
  e->OnDisconnect(&c2_);
  EXPECT_EQ(e->client_count(), 0u);
}

TEST_F(EnforcerTest, AKickedClientIsDeniedEvenByTheClientIdFallback) {
  Publish(fleet_.Changes());
  auto e = MakeEnforcer();
  ASSERT_TRUE(Connect(*e, &c1_, kDev1, fleet_.dev1).allowed());
  e->OnTick();
  Publish({InventoryOf(fleet_.dev1, v1::PRINCIPAL_TYPE_DEVICE, kDev1,
                       v1::CERTIFICATE_STATUS_ON_HOLD)});
  ASSERT_THAT(e->OnTick(), ElementsAre(Field(&Kick::client_id, kDev1)));
  // The device itself is ACTIVE, but this connection is being kicked.
  EXPECT_FALSE(e->Allowed(&c1_, kDev1, kReceive, Topic(kDev1, "cmd")));
}

TEST_F(EnforcerTest, AReplacedSnapshotIsFreedOnTheSyncThreadNotTheBrokerThread) {
  auto e = MakeEnforcer();
  const std::weak_ptr<const Policy> first = PublishWeak(fleet_.Changes());
  e->OnTick();
  ASSERT_FALSE(first.expired());
  PublishWeak({DeviceChange(kDev3)});
  e->OnTick();  // the broker thread drops the first snapshot: handed back, not freed
  EXPECT_FALSE(first.expired());
  PublishWeak({DeviceChange("356938035649999")});  // the sync thread frees it
  EXPECT_TRUE(first.expired());
  // The enforcer works on the newest.
  e->OnTick();
  EXPECT_EQ(e->revision(), revision_);
  EXPECT_TRUE(e->Allowed(&c1_, "356938035649999", kReceive, "fleet/broadcast"));
}

TEST_F(EnforcerTest, OfflineRulesFollowEachNewSnapshot) {
  Publish(fleet_.Changes());
  auto e = MakeEnforcer();
  e->OnTick();
  EXPECT_TRUE(e->Allowed(&c1_, kDev1, kReceive, Topic(kDev1, "cmd")));
  EXPECT_TRUE(e->Allowed(&c1_, kWatcher, kReceive, Topic(kDev1, "telemetry")));
  EXPECT_FALSE(e->Allowed(&c1_, kDev3, kReceive, Topic(kDev3, "cmd")));  // not registered yet

  Publish({DeviceChange(kDev1, v1::DEVICE_STATUS_SUSPENDED), DeviceChange(kDev3),
           IdentityChange(kWatcher, v1::IDENTITY_STATUS_REVOKED)});
  e->OnTick();
  EXPECT_FALSE(e->Allowed(&c1_, kDev1, kReceive, Topic(kDev1, "cmd")));
  EXPECT_FALSE(e->Allowed(&c1_, kWatcher, kReceive, Topic(kDev1, "telemetry")));
  EXPECT_TRUE(e->Allowed(&c1_, kDev3, kReceive, Topic(kDev3, "cmd")));

  // Rules changed too.
  Publish({DeviceChange(kDev1), Fleet::DeviceProfile({{"devices/%c/#", v1::ACL_ACCESS_DENY}})});
  e->OnTick();
  EXPECT_FALSE(e->Allowed(&c1_, kDev1, kReceive, Topic(kDev1, "cmd")));
  EXPECT_TRUE(e->Allowed(&c1_, kDev1, kReceive, "fleet/broadcast"));
}

TEST_F(EnforcerTest, OfflineRulesStayRightWhenTheirCacheIsFull) {
  Publish(fleet_.Changes());
  Publish({DeviceChange(kDev3, v1::DEVICE_STATUS_SUSPENDED)});
  EnforcerOptions options;
  options.max_offline_cached = 1;
  auto e = MakeEnforcer(options);
  e->OnTick();
  for (int round = 0; round < 3; ++round) {
    SCOPED_TRACE(round);
    EXPECT_TRUE(e->Allowed(&c1_, kDev1, kPublish, Topic(kDev1, "up")));
    EXPECT_FALSE(e->Allowed(&c1_, kDev1, kPublish, Topic(kDev2, "up")));
    EXPECT_TRUE(e->Allowed(&c1_, kDev2, kPublish, Topic(kDev2, "up")));
    EXPECT_FALSE(e->Allowed(&c1_, kDev2, kPublish, Topic(kDev1, "up")));
    EXPECT_FALSE(e->Allowed(&c1_, kDev3, kPublish, Topic(kDev3, "up")));
    EXPECT_TRUE(e->Allowed(&c1_, kWatcher, kReceive, Topic(kDev2, "telemetry")));
    EXPECT_FALSE(e->Allowed(&c1_, kWatcher, kPublish, Topic(kDev2, "telemetry")));
  }
}

TEST_F(EnforcerTest, TwoConnectionsOfOneDeviceAreBothFoundAndForgottenApart) {
  Publish(fleet_.Changes());
  auto e = MakeEnforcer();
  ASSERT_TRUE(Connect(*e, &c1_, kDev1, fleet_.dev1).allowed());
  ASSERT_TRUE(Connect(*e, &c2_, kDev1, fleet_.dev1).allowed());
  ASSERT_TRUE(Connect(*e, &c3_, kDev2, fleet_.dev2).allowed());
  e->OnTick();
  EXPECT_EQ(e->client_count(), 3u);
  e->OnDisconnect(&c1_);

  // The remaining connection of dev1 is still found by the device and by its certificate.
  Publish({DeviceChange(kDev1, v1::DEVICE_STATUS_SUSPENDED)});
  EXPECT_THAT(e->OnTick(), ElementsAre(Field(&Kick::client_id, kDev1)));
  EXPECT_FALSE(e->Allowed(&c2_, kDev1, kPublish, Topic(kDev1, "up")));
  EXPECT_TRUE(e->Allowed(&c3_, kDev2, kPublish, Topic(kDev2, "up")));

  // The disconnected one left no trace behind: not in the expiry index either.
  now_ = absl::FromUnixSeconds(fleet_.dev1.not_after) + absl::Seconds(1);
  e->OnDisconnect(&c2_);
  const std::vector<Kick> kicks = e->OnTick();
  EXPECT_THAT(kicks, ElementsAre(Field(&Kick::client_id, kDev2)));
  EXPECT_EQ(e->client_count(), 1u);
}

TEST_F(EnforcerTest, AHandleReusedByAnotherClientIsReindexed) {
  Publish(fleet_.Changes());
  auto e = MakeEnforcer();
  ASSERT_TRUE(Connect(*e, &c1_, kDev1, fleet_.dev1).allowed());
  e->OnTick();
  // The same handle now holds dev2's connection: dev1's changes no longer concern it.
  ASSERT_TRUE(Connect(*e, &c1_, kDev2, fleet_.dev2).allowed());
  EXPECT_EQ(e->client_count(), 1u);
  Publish({DeviceChange(kDev1, v1::DEVICE_STATUS_SUSPENDED),
           InventoryOf(fleet_.dev1, v1::PRINCIPAL_TYPE_DEVICE, kDev1,
                       v1::CERTIFICATE_STATUS_REVOKED)});
  EXPECT_THAT(e->OnTick(), IsEmpty());
  EXPECT_TRUE(e->Allowed(&c1_, kDev2, kPublish, Topic(kDev2, "up")));
  Publish({DeviceChange(kDev2, v1::DEVICE_STATUS_SUSPENDED)});
  EXPECT_THAT(e->OnTick(), ElementsAre(Field(&Kick::client_id, kDev2)));
}

}  // namespace
}  // namespace fleetca::plugin
