#include "plugin/authorizer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "pki/openssl_util.h"
#include "tests/plugin/plugin_test_util.h"

namespace fleetca::plugin {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;
using testing::A;
using testing::ApplyAll;
using testing::AssignmentChange;
using testing::Cert;
using testing::CertificateChange;
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
using testing::Pairs;
using testing::TestLeaf;

constexpr int kRead = static_cast<int>(acl::Access::kRead);
constexpr int kReadWrite = static_cast<int>(acl::Access::kReadWrite);

class AuthorizerTest : public ::testing::Test {
 protected:
  AuthorizerTest() { ApplyAll(policy_, fleet_.Changes()); }

  // Read: ReadClientCertificate that must succeed.
  ClientCertificate Read(const TestLeaf& leaf, const Policy& policy) {
    ClientCertificate out;
    Decision refusal;
    EXPECT_TRUE(ReadClientCertificate(policy, leaf.cert.get(), &out, &refusal))
        << VerdictName(refusal.verdict) << ": " << refusal.message;
    return out;
  }
  ClientCertificate Read(const TestLeaf& leaf) { return Read(leaf, policy_); }

  // A time at which fleet certificates are valid.
  static absl::Time Now() { return absl::Now(); }

  Fleet fleet_;
  Policy policy_;
};

// ---- ReadClientCertificate -------------------------------------------------------------

TEST_F(AuthorizerTest, ReadNoCertificate) {
  ClientCertificate out;
  Decision refusal;
  EXPECT_FALSE(ReadClientCertificate(policy_, nullptr, &out, &refusal));
  EXPECT_EQ(refusal.verdict, Verdict::kNoCertificate);
  EXPECT_FALSE(refusal.allowed());
}

TEST_F(AuthorizerTest, ReadFillsTheCertificate) {
  const ClientCertificate c = Read(fleet_.dev1);
  EXPECT_EQ(c.issuer_id, "devices");
  EXPECT_EQ(c.serial, fleet_.dev1.serial_hex);
  auto der = pki::CertificateToDer(fleet_.dev1.cert.get());
  ASSERT_TRUE(der.ok());
  EXPECT_EQ(std::string(c.fingerprint.begin(), c.fingerprint.end()), pki::Sha256(*der));
  EXPECT_EQ(c.common_name, kDev1);
  EXPECT_EQ(c.not_after, fleet_.dev1.not_after);
  EXPECT_EQ(c.key(), CertificateKey("devices", fleet_.dev1.serial_hex));

  // The operators CA's certificates are found under it.
  const ClientCertificate w = Read(fleet_.watcher);
  EXPECT_EQ(w.issuer_id, "operators");
  EXPECT_EQ(w.common_name, kWatcher);
  EXPECT_EQ(w.serial, fleet_.watcher.serial_hex);

  // And an external CA's under it.
  const TestLeaf ext = fleet_.pki.Issue("external", kDev1);
  const ClientCertificate e = Read(ext);
  EXPECT_EQ(e.issuer_id, "external");
  EXPECT_EQ(e.serial, ext.serial_hex);
}

TEST_F(AuthorizerTest, ReadRefusesAForeignCa) {
  const TestLeaf foreign = fleet_.pki.Issue("foreign", kDev1);
  ClientCertificate out;
  Decision refusal;
  EXPECT_FALSE(ReadClientCertificate(policy_, foreign.cert.get(), &out, &refusal));
  EXPECT_EQ(refusal.verdict, Verdict::kUntrustedIssuer);
  EXPECT_TRUE(out.issuer_id.empty());
}

TEST_F(AuthorizerTest, ReadRefusesACertificateOfTheRootItself) {
  // The root is sent (purpose ROOT) but identifies no client.
  const TestLeaf by_root = fleet_.pki.Issue("root", kDev1);
  ClientCertificate out;
  Decision refusal;
  EXPECT_FALSE(ReadClientCertificate(policy_, by_root.cert.get(), &out, &refusal));
  EXPECT_EQ(refusal.verdict, Verdict::kUntrustedIssuer);
}

TEST_F(AuthorizerTest, ReadChecksTheSignatureNotOnlyTheNames) {
  // dev1's certificate with one byte of its signature changed: issuer name and key
  // identifier still match the devices CA, and its serial is in the inventory (with the
  // real certificate's fingerprint, not this one's).
  auto der = pki::CertificateToDer(fleet_.dev1.cert.get());
  ASSERT_TRUE(der.ok());
  std::string tampered = *der;
  tampered.back() = static_cast<char>(tampered.back() ^ 0x01);
  auto cert = pki::CertificateFromDer(tampered);
  ASSERT_TRUE(cert.ok()) << cert.status();
  ClientCertificate out;
  Decision refusal;
  EXPECT_FALSE(ReadClientCertificate(policy_, cert->get(), &out, &refusal));
  EXPECT_EQ(refusal.verdict, Verdict::kUntrustedIssuer);
}

TEST_F(AuthorizerTest, ReadRefusesWhenTheIssuerIsNotInThePolicy) {
  Policy p(policy_);
  ASSERT_TRUE(p.Apply(Deleted(IssuerChange("devices", v1::ISSUER_PURPOSE_DEVICES, ""))));
  ClientCertificate out;
  Decision refusal;
  EXPECT_FALSE(ReadClientCertificate(p, fleet_.dev1.cert.get(), &out, &refusal));
  EXPECT_EQ(refusal.verdict, Verdict::kUntrustedIssuer);
  // The operators CA still works.
  EXPECT_TRUE(ReadClientCertificate(p, fleet_.watcher.cert.get(), &out, &refusal));
}

// ---- Decide ------------------------------------------------------------------------------

TEST_F(AuthorizerTest, DeviceAllowedWithItsRules) {
  const Decision d = Decide(policy_, Read(fleet_.dev1), kDev1, Now());
  EXPECT_EQ(d.verdict, Verdict::kAllowed) << d.message;
  EXPECT_TRUE(d.allowed());
  EXPECT_EQ(d.principal_type, v1::PRINCIPAL_TYPE_DEVICE);
  EXPECT_EQ(d.principal_id, kDev1);
  EXPECT_THAT(Pairs(d.rules), ElementsAre(Pair(std::string("devices/") + kDev1 + "/#", kReadWrite),
                                          Pair("fleet/broadcast", kRead)));
}

TEST_F(AuthorizerTest, DeviceVerdicts) {
  const TestLeaf& leaf = fleet_.dev1;
  const std::string other_fp(64, 'a');
  struct Case {
    const char* name;
    std::vector<v1::SyncChange> changes;  // applied to the fleet's policy
    std::string client_id;
    Verdict verdict;
    const char* message_part;
  };
  const std::vector<Case> cases = {
      {"allowed", {}, kDev1, Verdict::kAllowed, ""},
      {"issuer_removed",
       {Deleted(IssuerChange("devices", v1::ISSUER_PURPOSE_DEVICES, ""))},
       kDev1,
       Verdict::kUntrustedIssuer,
       "devices"},
      {"issuer_disabled",
       {IssuerChange("devices", v1::ISSUER_PURPOSE_DEVICES, fleet_.pki.ca("devices").pem,
                     {/*external=*/false, /*enabled=*/false, /*accept=*/false})},
       kDev1,
       Verdict::kUntrustedIssuer,
       "disabled"},
      {"issuer_no_longer_for_clients",
       {IssuerChange("devices", v1::ISSUER_PURPOSE_BROKERS, fleet_.pki.ca("devices").pem)},
       kDev1,
       Verdict::kUntrustedIssuer,
       ""},
      {"unknown_serial",
       {Deleted(InventoryOf(leaf, v1::PRINCIPAL_TYPE_DEVICE, kDev1))},
       kDev1,
       Verdict::kCertificateUnknown,
       "inventory"},
      {"fingerprint_mismatch",
       {CertificateChange("devices", leaf.serial_hex, [&] {
          testing::CertFields f = Cert(other_fp);
          f.principal_type = v1::PRINCIPAL_TYPE_DEVICE;
          f.principal_id = kDev1;
          return f;
        }())},
       kDev1,
       Verdict::kCertificateMismatch,
       "another certificate"},
      {"revoked",
       {InventoryOf(leaf, v1::PRINCIPAL_TYPE_DEVICE, kDev1, v1::CERTIFICATE_STATUS_REVOKED,
                    v1::REVOCATION_REASON_KEY_COMPROMISE)},
       kDev1,
       Verdict::kCertificateRevoked,
       "KEY_COMPROMISE"},
      {"revoked_serial_known_only_from_a_crl",
       {CertificateChange("devices", leaf.serial_hex,
                          Cert("", v1::CERTIFICATE_STATUS_REVOKED,
                               v1::REVOCATION_REASON_SUPERSEDED))},
       kDev1,
       Verdict::kCertificateRevoked,
       ""},
      {"on_hold",
       {InventoryOf(leaf, v1::PRINCIPAL_TYPE_DEVICE, kDev1, v1::CERTIFICATE_STATUS_ON_HOLD,
                    v1::REVOCATION_REASON_CERTIFICATE_HOLD)},
       kDev1,
       Verdict::kCertificateOnHold,
       "on hold"},
      {"status_expired",
       {InventoryOf(leaf, v1::PRINCIPAL_TYPE_DEVICE, kDev1, v1::CERTIFICATE_STATUS_EXPIRED)},
       kDev1,
       Verdict::kCertificateUnknown,
       "not ACTIVE"},
      {"serial_without_principal_from_a_fleetca_ca",
       {CertificateChange("devices", leaf.serial_hex, Cert(leaf.fingerprint_hex))},
       kDev1,
       Verdict::kCertificateUnknown,
       ""},
      {"certificate_of_another_device",
       {InventoryOf(leaf, v1::PRINCIPAL_TYPE_DEVICE, kDev2)},
       kDev1,
       Verdict::kCertificateMismatch,
       "another principal"},
      {"certificate_of_an_identity_of_that_name",
       {InventoryOf(leaf, v1::PRINCIPAL_TYPE_IDENTITY, kDev1)},
       kDev1,
       Verdict::kCertificateMismatch,
       "another principal"},
      {"client_id_mismatch", {}, kDev2, Verdict::kClientIdMismatch, kDev2},
      {"empty_client_id", {}, "", Verdict::kClientIdMismatch, ""},
      {"device_missing", {Deleted(DeviceChange(kDev1))}, kDev1, Verdict::kPrincipalUnknown,
       "not registered"},
      {"device_suspended",
       {DeviceChange(kDev1, v1::DEVICE_STATUS_SUSPENDED)},
       kDev1,
       Verdict::kPrincipalInactive,
       "SUSPENDED"},
      {"device_decommissioned",
       {DeviceChange(kDev1, v1::DEVICE_STATUS_DECOMMISSIONED)},
       kDev1,
       Verdict::kPrincipalInactive,
       "DECOMMISSIONED"},
  };
  const ClientCertificate cert = Read(leaf);
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    Policy p(policy_);
    ApplyAll(p, c.changes);
    const Decision d = Decide(p, cert, c.client_id, Now());
    EXPECT_EQ(d.verdict, c.verdict) << VerdictName(d.verdict) << ": " << d.message;
    EXPECT_EQ(d.allowed(), c.verdict == Verdict::kAllowed);
    EXPECT_THAT(d.message, HasSubstr(c.message_part));
    if (!d.allowed()) {
      EXPECT_TRUE(d.rules.empty());
    }
  }
}

TEST_F(AuthorizerTest, Expiry) {
  const ClientCertificate cert = Read(fleet_.dev1);
  const absl::Time not_after = absl::FromUnixSeconds(fleet_.dev1.not_after);
  EXPECT_EQ(Decide(policy_, cert, kDev1, not_after - absl::Seconds(1)).verdict, Verdict::kAllowed);
  EXPECT_EQ(Decide(policy_, cert, kDev1, not_after).verdict, Verdict::kCertificateExpired);
  const Decision d = Decide(policy_, cert, kDev1, not_after + absl::Hours(1));
  EXPECT_EQ(d.verdict, Verdict::kCertificateExpired);
  EXPECT_THAT(d.message, HasSubstr("expired"));
}

TEST_F(AuthorizerTest, IdentityViaTheOperatorsCa) {
  const ClientCertificate cert = Read(fleet_.watcher);
  const Decision d = Decide(policy_, cert, kWatcher, Now());
  EXPECT_EQ(d.verdict, Verdict::kAllowed) << d.message;
  EXPECT_EQ(d.principal_type, v1::PRINCIPAL_TYPE_IDENTITY);
  EXPECT_EQ(d.principal_id, kWatcher);
  EXPECT_THAT(Pairs(d.rules), ElementsAre(Pair("devices/+/telemetry", kRead)));

  Policy revoked(policy_);
  ASSERT_TRUE(revoked.Apply(IdentityChange(kWatcher, v1::IDENTITY_STATUS_REVOKED)));
  const Decision inactive = Decide(revoked, cert, kWatcher, Now());
  EXPECT_EQ(inactive.verdict, Verdict::kPrincipalInactive);
  EXPECT_THAT(inactive.message, HasSubstr("REVOKED"));

  Policy gone(policy_);
  ASSERT_TRUE(gone.Apply(Deleted(IdentityChange(kWatcher))));
  EXPECT_EQ(Decide(gone, cert, kWatcher, Now()).verdict, Verdict::kPrincipalUnknown);

  // An ACTIVE device of that name does not stand in for the identity.
  Policy device_only(gone);
  ASSERT_TRUE(device_only.Apply(DeviceChange(kWatcher)));
  EXPECT_EQ(Decide(device_only, cert, kWatcher, Now()).verdict, Verdict::kPrincipalUnknown);

  // An operators certificate recorded as a device's is a mismatch.
  Policy as_device(policy_);
  ASSERT_TRUE(as_device.Apply(InventoryOf(fleet_.watcher, v1::PRINCIPAL_TYPE_DEVICE, kWatcher)));
  EXPECT_EQ(Decide(as_device, cert, kWatcher, Now()).verdict, Verdict::kCertificateMismatch);
}

TEST_F(AuthorizerTest, ExternalCaAcceptingUnregisteredCertificates) {
  Policy accepting(policy_);
  ApplyAll(accepting, {IssuerChange("external", v1::ISSUER_PURPOSE_DEVICES,
                                    fleet_.pki.ca("external").pem,
                                    {/*external=*/true, /*enabled=*/true, /*accept=*/true}),
                       DeviceChange(kDev3, v1::DEVICE_STATUS_SUSPENDED)});
  const TestLeaf ext = fleet_.pki.Issue("external", kDev1);
  const ClientCertificate cert = Read(ext, accepting);
  ASSERT_EQ(cert.issuer_id, "external");
  ASSERT_EQ(accepting.FindCertificate("external", ext.serial_hex), nullptr);

  // Not in the inventory, but the CN is a registered ACTIVE device: allowed with its rules.
  const Decision d = Decide(accepting, cert, kDev1, Now());
  EXPECT_EQ(d.verdict, Verdict::kAllowed) << d.message;
  EXPECT_EQ(d.principal_type, v1::PRINCIPAL_TYPE_DEVICE);
  EXPECT_EQ(d.principal_id, kDev1);
  EXPECT_THAT(Pairs(d.rules), ElementsAre(Pair(std::string("devices/") + kDev1 + "/#", kReadWrite),
                                          Pair("fleet/broadcast", kRead)));

  // The same certificate when the CA does not accept unregistered ones.
  const Decision refused = Decide(policy_, cert, kDev1, Now());
  EXPECT_EQ(refused.verdict, Verdict::kCertificateUnknown) << refused.message;

  // Still: the CN must be a registered ACTIVE device, and the client id.
  const ClientCertificate unknown = Read(fleet_.pki.Issue("external", "356938035649999"),
                                         accepting);
  EXPECT_EQ(Decide(accepting, unknown, "356938035649999", Now()).verdict,
            Verdict::kPrincipalUnknown);
  const ClientCertificate suspended = Read(fleet_.pki.Issue("external", kDev3), accepting);
  EXPECT_EQ(Decide(accepting, suspended, kDev3, Now()).verdict, Verdict::kPrincipalInactive);
  EXPECT_EQ(Decide(accepting, cert, kDev2, Now()).verdict, Verdict::kClientIdMismatch);

  // A serial the customer's CRL revokes is refused.
  Policy crl(accepting);
  ASSERT_TRUE(crl.Apply(CertificateChange(
      "external", ext.serial_hex,
      Cert("", v1::CERTIFICATE_STATUS_REVOKED, v1::REVOCATION_REASON_KEY_COMPROMISE))));
  EXPECT_EQ(Decide(crl, cert, kDev1, Now()).verdict, Verdict::kCertificateRevoked);

  // A disabled external CA is refused altogether.
  Policy disabled(accepting);
  ASSERT_TRUE(disabled.Apply(IssuerChange("external", v1::ISSUER_PURPOSE_DEVICES,
                                          fleet_.pki.ca("external").pem,
                                          {/*external=*/true, /*enabled=*/false,
                                           /*accept=*/true})));
  EXPECT_EQ(Decide(disabled, cert, kDev1, Now()).verdict, Verdict::kUntrustedIssuer);

  // accept_unregistered on a fleetca (not external) issuer does not open it.
  Policy fleetca_accepting(policy_);
  ApplyAll(fleetca_accepting,
           {IssuerChange("devices", v1::ISSUER_PURPOSE_DEVICES, fleet_.pki.ca("devices").pem,
                         {/*external=*/false, /*enabled=*/true, /*accept=*/true}),
            Deleted(InventoryOf(fleet_.dev1, v1::PRINCIPAL_TYPE_DEVICE, kDev1))});
  EXPECT_EQ(Decide(fleetca_accepting, Read(fleet_.dev1), kDev1, Now()).verdict,
            Verdict::kCertificateUnknown);
}

TEST_F(AuthorizerTest, ExternalCaRegisteredCertificateAllowedWithoutAccept) {
  const TestLeaf ext = fleet_.pki.Issue("external", kDev2);
  Policy p(policy_);
  ASSERT_TRUE(p.Apply(InventoryOf(ext, v1::PRINCIPAL_TYPE_DEVICE, kDev2)));
  const Decision d = Decide(p, Read(ext, p), kDev2, Now());
  EXPECT_EQ(d.verdict, Verdict::kAllowed) << d.message;
  EXPECT_EQ(d.principal_id, kDev2);
}

// ---- LosesRights -------------------------------------------------------------------------

std::vector<acl::ResolvedRule> Rules(
    const std::vector<std::pair<std::string, v1::AclAccess>>& rules) {
  Policy p;
  ApplyAll(p, {DeviceChange("d"), testing::ProfileChange("p", rules),
               AssignmentChange(v1::ACL_SUBJECT_TYPE_DEVICE, "d", "p")});
  return p.ResolveRules(v1::PRINCIPAL_TYPE_DEVICE, "d", p.FindDevice("d"));
}

TEST(LosesRightsTest, Cases) {
  const auto before = Rules({{"a/#", v1::ACL_ACCESS_READWRITE},
                             {"b", v1::ACL_ACCESS_READ},
                             {"z", v1::ACL_ACCESS_DENY}});
  struct Case {
    const char* name;
    std::vector<std::pair<std::string, v1::AclAccess>> after;
    bool loses;
  };
  const std::vector<Case> cases = {
      {"unchanged",
       {{"b", v1::ACL_ACCESS_READ}, {"z", v1::ACL_ACCESS_DENY}, {"a/#", v1::ACL_ACCESS_READWRITE}},
       false},
      {"rule_removed", {{"a/#", v1::ACL_ACCESS_READWRITE}, {"z", v1::ACL_ACCESS_DENY}}, true},
      {"access_narrowed",
       {{"a/#", v1::ACL_ACCESS_READ}, {"b", v1::ACL_ACCESS_READ}, {"z", v1::ACL_ACCESS_DENY}},
       true},
      {"filter_changed",
       {{"a/+", v1::ACL_ACCESS_READWRITE}, {"b", v1::ACL_ACCESS_READ}, {"z", v1::ACL_ACCESS_DENY}},
       true},
      {"allow_rule_added",
       {{"a/#", v1::ACL_ACCESS_READWRITE},
        {"b", v1::ACL_ACCESS_READ},
        {"c", v1::ACL_ACCESS_WRITE},
        {"0", v1::ACL_ACCESS_SUBSCRIBE},
        {"z", v1::ACL_ACCESS_DENY}},
       false},
      {"deny_rule_added",
       {{"a/#", v1::ACL_ACCESS_READWRITE},
        {"b", v1::ACL_ACCESS_READ},
        {"a/secret", v1::ACL_ACCESS_DENY},
        {"z", v1::ACL_ACCESS_DENY}},
       true},
      {"everything_removed", {}, true},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(LosesRights(before, Rules(c.after)), c.loses) << c.name;
  }
  EXPECT_FALSE(LosesRights({}, {}));
  EXPECT_FALSE(LosesRights({}, Rules({{"x", v1::ACL_ACCESS_READ}})));
  EXPECT_TRUE(LosesRights({}, Rules({{"x", v1::ACL_ACCESS_DENY}})));
}

TEST(VerdictNameTest, DistinctNames) {
  const std::vector<Verdict> all = {
      Verdict::kAllowed,           Verdict::kNoCertificate,       Verdict::kUntrustedIssuer,
      Verdict::kCertificateUnknown, Verdict::kCertificateMismatch, Verdict::kCertificateRevoked,
      Verdict::kCertificateOnHold, Verdict::kCertificateExpired,  Verdict::kClientIdMismatch,
      Verdict::kPrincipalUnknown,  Verdict::kPrincipalInactive,   Verdict::kNoPolicy,
      Verdict::kUnavailable};
  std::set<std::string> names;
  for (Verdict v : all) names.insert(std::string(VerdictName(v)));
  EXPECT_EQ(names.size(), all.size());
  EXPECT_EQ(VerdictName(Verdict::kCertificateRevoked), "certificate_revoked");
  EXPECT_EQ(VerdictName(Verdict::kNoPolicy), "no_policy");
  EXPECT_EQ(VerdictName(Verdict::kUnavailable), "fleetca_unavailable");
}

}  // namespace
}  // namespace fleetca::plugin
