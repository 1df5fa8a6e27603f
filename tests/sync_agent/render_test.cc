// Rendering of mosquitto's cafile, crlfile and acl_file from a PolicyState.
#include "sync_agent/render.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "sync_agent/validate.h"
#include "tests/sync_agent/sync_test_util.h"

namespace fleetca::sync_agent {
namespace {

using namespace ::fleetca::sync_agent::testing;  // NOLINT: message builders
using ::testing::HasSubstr;
using ::testing::Not;

PolicyState StateOf(const std::vector<v1::SyncChange>& changes) {
  PolicyState state;
  for (const v1::SyncChange& c : changes) {
    EXPECT_TRUE(ValidateChange(c).ok());
    ApplyChange(c, &state);
  }
  return state;
}

std::string UserBlock(const std::string& acl, const std::string& user) {
  const std::string head = absl::StrCat("user ", user, "\n");
  const size_t start = acl.find(head);
  if (start == std::string::npos) return "";
  const size_t end = acl.find("\nuser ", start + head.size() - 1);
  return acl.substr(start, end == std::string::npos ? std::string::npos : end + 1 - start);
}

bool HasNote(const std::vector<RenderNote>& notes, absl::string_view text) {
  for (const RenderNote& n : notes) {
    if (absl::StrContains(n.message, text)) return true;
  }
  return false;
}

class RenderPkiTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    pki_ = new TestPki();
    pki_->AddCa("root", "Render Root");
    pki_->AddCa("devices", "Render Devices", "root");
    pki_->AddCa("operators", "Render Operators", "root");
    pki_->AddCa("brokers", "Render Brokers", "root");
    pki_->AddCa("ext", "External CA");
    pki_->AddCa("ext-off", "Disabled External CA");
  }
  static void TearDownTestSuite() {
    delete pki_;
    pki_ = nullptr;
  }
  static TestPki* pki_;
};
TestPki* RenderPkiTest::pki_ = nullptr;

TEST_F(RenderPkiTest, CafileHoldsTheClientIssuersByIdButNoBrokersCa) {
  PolicyState state = StateOf({
      Change(Issuer("root", v1::ISSUER_PURPOSE_ROOT, pki_->ca("root").pem)),
      Change(Issuer("devices", v1::ISSUER_PURPOSE_DEVICES, pki_->ca("devices").pem)),
      Change(Issuer("operators", v1::ISSUER_PURPOSE_OPERATORS, pki_->ca("operators").pem)),
      Change(Issuer("brokers", v1::ISSUER_PURPOSE_BROKERS, pki_->ca("brokers").pem)),
      Change(Issuer("ext", v1::ISSUER_PURPOSE_DEVICES, pki_->ca("ext").pem, true, true)),
      Change(Issuer("ext-off", v1::ISSUER_PURPOSE_DEVICES, pki_->ca("ext-off").pem, true, false)),
  });
  std::vector<RenderNote> notes;
  const std::string cafile = RenderCaFile(state, &notes);
  // By issuer_id: devices, ext, operators, root.
  EXPECT_EQ(cafile, absl::StrCat(pki_->ca("devices").pem, pki_->ca("ext").pem,
                                 pki_->ca("operators").pem, pki_->ca("root").pem));
  EXPECT_THAT(cafile, Not(HasSubstr(pki_->ca("brokers").pem)));
  EXPECT_THAT(cafile, Not(HasSubstr(pki_->ca("ext-off").pem)));
  auto certs = ValidateCaFile(cafile);
  ASSERT_TRUE(certs.ok()) << certs.status();
  EXPECT_EQ(certs->size(), 4u);
}

TEST_F(RenderPkiTest, CrlfileHoldsTheCafileIssuersCrlsAndWarnsOfMissingOnes) {
  const std::string devices_crl = pki_->CrlDer("devices", {});
  const std::string root_crl = pki_->CrlDer("root", {});
  const std::string brokers_crl = pki_->CrlDer("brokers", {});
  PolicyState state = StateOf({
      Change(Issuer("root", v1::ISSUER_PURPOSE_ROOT, pki_->ca("root").pem)),
      Change(Issuer("devices", v1::ISSUER_PURPOSE_DEVICES, pki_->ca("devices").pem)),
      Change(Issuer("operators", v1::ISSUER_PURPOSE_OPERATORS, pki_->ca("operators").pem)),
      Change(Issuer("brokers", v1::ISSUER_PURPOSE_BROKERS, pki_->ca("brokers").pem)),
      Change(Crl("root", root_crl)),
      Change(Crl("devices", devices_crl)),
      Change(Crl("brokers", brokers_crl)),
  });
  std::vector<RenderNote> notes;
  const std::string crlfile = RenderCrlFile(state, &notes);
  EXPECT_EQ(crlfile, absl::StrCat(pki::DerToPem(devices_crl, "X509 CRL"),
                                  pki::DerToPem(root_crl, "X509 CRL")));
  // The operators CA has no CRL: its clients would be refused.
  EXPECT_TRUE(HasNote(notes, "issuer operators has no CRL")) << notes.size();
  EXPECT_FALSE(HasNote(notes, "issuer root"));
  EXPECT_FALSE(HasNote(notes, "issuer brokers"));
}

// The policy of the acl_file tests: the built-in profiles and a few of our own.
std::vector<v1::SyncChange> AclPolicy() {
  return {
      Change(Profile("device", {{"devices/%c/#", v1::ACL_ACCESS_READWRITE}})),
      Change(Profile("watcher", {{"#", v1::ACL_ACCESS_READ}})),
      Change(Assignment(v1::ACL_SUBJECT_TYPE_ALL_DEVICES, "", "device")),
      Change(Assignment(v1::ACL_SUBJECT_TYPE_IDENTITY, "watcher1", "watcher")),
      Change(Device("dev-A")),
      Change(Device("dev-S", v1::DEVICE_STATUS_SUSPENDED)),
      Change(Device("dev-D", v1::DEVICE_STATUS_DECOMMISSIONED)),
      Change(Identity("watcher1")),
      Change(Identity("watcher2", v1::IDENTITY_STATUS_REVOKED)),
  };
}

TEST(RenderAclTest, ActivePrincipalsGetTheirResolvedRules) {
  PolicyState state = StateOf(AclPolicy());
  std::vector<RenderNote> notes;
  const std::string acl = RenderAclFile(state, &notes);
  EXPECT_EQ(UserBlock(acl, "dev-A"), "user dev-A\ntopic readwrite devices/dev-A/#\n");
  EXPECT_EQ(UserBlock(acl, "watcher1"), "user watcher1\ntopic read #\n");
  // Suspended and decommissioned devices and revoked identities get no block at all.
  EXPECT_THAT(acl, Not(HasSubstr("dev-S")));
  EXPECT_THAT(acl, Not(HasSubstr("dev-D")));
  EXPECT_THAT(acl, Not(HasSubstr("watcher2")));
  EXPECT_TRUE(CheckAclFile(acl).ok()) << CheckAclFile(acl) << "\n" << acl;
  EXPECT_TRUE(notes.empty());
}

TEST(RenderAclTest, AccessWordsDenyFirstAndNoSubscribeOnlyLine) {
  std::vector<v1::SyncChange> changes = AclPolicy();
  changes.push_back(Change(Profile("mixed", {{"in/%c", v1::ACL_ACCESS_READ},
                                             {"out/%c", v1::ACL_ACCESS_WRITE},
                                             {"both/%c", v1::ACL_ACCESS_READWRITE},
                                             {"sub/#", v1::ACL_ACCESS_SUBSCRIBE},
                                             {"devices/%c/secret", v1::ACL_ACCESS_DENY}})));
  changes.push_back(Change(Assignment(v1::ACL_SUBJECT_TYPE_DEVICE, "dev-A", "mixed")));
  const std::string acl = RenderAclFile(StateOf(changes), nullptr);
  EXPECT_EQ(UserBlock(acl, "dev-A"),
            "user dev-A\n"
            "topic deny devices/dev-A/secret\n"
            "topic readwrite both/dev-A\n"
            "topic readwrite devices/dev-A/#\n"
            "topic read in/dev-A\n"
            "topic write out/dev-A\n");
  EXPECT_THAT(acl, Not(HasSubstr("sub/#")));
  EXPECT_EQ(MosquittoAccess(v1::ACL_ACCESS_SUBSCRIBE), "");
  EXPECT_EQ(MosquittoAccess(v1::ACL_ACCESS_DENY), "deny");
}

TEST(RenderAclTest, SubstitutionGroupsAndIdentitiesGoThroughTheServersResolution) {
  std::vector<v1::SyncChange> changes = AclPolicy();
  changes.push_back(
      Change(Device("dev-P", v1::DEVICE_STATUS_ACTIVE, {"paris"}, {{"site", "fr-par"}})));
  changes.push_back(Change(Device("dev-N", v1::DEVICE_STATUS_ACTIVE, {"paris"})));  // no site
  changes.push_back(
      Change(Profile("site", {{"sites/%{site}/devices/%c/#", v1::ACL_ACCESS_READWRITE},
                              {"sites/%{site}/all", v1::ACL_ACCESS_READ},
                              {"users/%u/inbox", v1::ACL_ACCESS_READ}})));
  changes.push_back(Change(Assignment(v1::ACL_SUBJECT_TYPE_GROUP, "paris", "site")));
  changes.push_back(Change(Profile("ops", {{"ops/%c/#", v1::ACL_ACCESS_READWRITE}})));
  changes.push_back(Change(Assignment(v1::ACL_SUBJECT_TYPE_IDENTITY, "watcher1", "ops")));
  std::vector<RenderNote> notes;
  const std::string acl = RenderAclFile(StateOf(changes), &notes);
  EXPECT_EQ(UserBlock(acl, "dev-P"),
            "user dev-P\n"
            "topic readwrite devices/dev-P/#\n"
            "topic read sites/fr-par/all\n"
            "topic readwrite sites/fr-par/devices/dev-P/#\n"
            "topic read users/dev-P/inbox\n");
  // A missing attribute skips the rule (it matches nothing), as the server's ResolveAcl.
  EXPECT_EQ(UserBlock(acl, "dev-N"),
            "user dev-N\n"
            "topic readwrite devices/dev-N/#\n"
            "topic read users/dev-N/inbox\n");
  EXPECT_TRUE(HasNote(notes,
                      "device dev-N: rule \"sites/%{site}/devices/%c/#\" of profile site "
                      "skipped: "));
  // Identities: their name for %c, and only their own assignments (no ALL_DEVICES).
  EXPECT_EQ(UserBlock(acl, "watcher1"),
            "user watcher1\ntopic read #\ntopic readwrite ops/watcher1/#\n");
}

TEST(RenderAclTest, FiltersMosquittoCannotReadBackAreLeftOut) {
  std::vector<v1::SyncChange> changes = AclPolicy();
  changes.push_back(Change(Device("dev-B")));
  changes.push_back(Change(Profile("odd", {{"trailing/space ", v1::ACL_ACCESS_READ},
                                           {" leading", v1::ACL_ACCESS_READ},
                                           {"tab\there", v1::ACL_ACCESS_WRITE},
                                           {"inner space/%c", v1::ACL_ACCESS_READ}})));
  changes.push_back(Change(Assignment(v1::ACL_SUBJECT_TYPE_DEVICE, "dev-A", "odd")));
  // A DENY rule that cannot be written takes the principal's whole block away.
  changes.push_back(Change(Profile("odd-deny", {{"secret ", v1::ACL_ACCESS_DENY}})));
  changes.push_back(Change(Assignment(v1::ACL_SUBJECT_TYPE_DEVICE, "dev-B", "odd-deny")));
  std::vector<RenderNote> notes;
  const std::string acl = RenderAclFile(StateOf(changes), &notes);
  EXPECT_EQ(UserBlock(acl, "dev-A"),
            "user dev-A\ntopic readwrite devices/dev-A/#\ntopic read inner space/dev-A\n");
  EXPECT_THAT(acl, Not(HasSubstr("user dev-B")));
  EXPECT_TRUE(HasNote(notes, "device dev-B: the DENY filter"));
  EXPECT_TRUE(HasNote(notes, "rule \"tab\there\""));
  EXPECT_TRUE(CheckAclFile(acl).ok()) << CheckAclFile(acl);

  EXPECT_FALSE(ExpressibleInAclFile("a/b "));
  EXPECT_FALSE(ExpressibleInAclFile(" a"));
  EXPECT_FALSE(ExpressibleInAclFile("a\nb"));
  EXPECT_FALSE(ExpressibleInAclFile("a/+b"));
  EXPECT_TRUE(ExpressibleInAclFile("a b/+/#"));
}

TEST(RenderAclTest, NameOfBothAnActiveDeviceAndAnActiveIdentityGetsNothing) {
  std::vector<v1::SyncChange> changes = AclPolicy();
  changes.push_back(Change(Device("watcher1")));
  std::vector<RenderNote> notes;
  const std::string acl = RenderAclFile(StateOf(changes), &notes);
  EXPECT_THAT(acl, Not(HasSubstr("user watcher1")));
  EXPECT_TRUE(HasNote(notes, "both an active device and an active identity"));
  // Once the device is suspended the identity gets its rules again.
  changes.push_back(Change(Device("watcher1", v1::DEVICE_STATUS_SUSPENDED)));
  EXPECT_EQ(UserBlock(RenderAclFile(StateOf(changes), nullptr), "watcher1"),
            "user watcher1\ntopic read #\n");
}

TEST(RenderAclTest, AssignmentOfAnUnknownProfileIsIgnored) {
  std::vector<v1::SyncChange> changes = AclPolicy();
  changes.push_back(Change(Assignment(v1::ACL_SUBJECT_TYPE_DEVICE, "dev-A", "not-yet")));
  EXPECT_EQ(UserBlock(RenderAclFile(StateOf(changes), nullptr), "dev-A"),
            "user dev-A\ntopic readwrite devices/dev-A/#\n");
}

TEST_F(RenderPkiTest, RenderingIsDeterministicWhateverTheOrderChangesArrived) {
  std::vector<v1::SyncChange> changes = AclPolicy();
  changes.push_back(Change(Issuer("root", v1::ISSUER_PURPOSE_ROOT, pki_->ca("root").pem)));
  changes.push_back(Change(Issuer("devices", v1::ISSUER_PURPOSE_DEVICES, pki_->ca("devices").pem)));
  changes.push_back(Change(Crl("devices", pki_->CrlDer("devices", {}))));
  changes.push_back(
      Change(Device("dev-Z", v1::DEVICE_STATUS_ACTIVE, {"g2", "g1"}, {{"b", "2"}, {"a", "1"}})));
  std::vector<v1::SyncChange> reversed(changes.rbegin(), changes.rend());
  const RenderedFiles a = Render(StateOf(changes));
  const RenderedFiles b = Render(StateOf(reversed));
  const RenderedFiles c = Render(StateOf(changes));
  EXPECT_EQ(a.cafile, b.cafile);
  EXPECT_EQ(a.crlfile, b.crlfile);
  EXPECT_EQ(a.acl_file, b.acl_file);
  EXPECT_EQ(a.acl_file, c.acl_file);
  EXPECT_EQ(a.issuer_pems.size(), 2u);
  EXPECT_FALSE(a.cafile.empty());
  EXPECT_FALSE(a.crlfile.empty());
}

TEST(RenderAclTest, EmptyPolicyIsAValidFileThatAllowsNothing) {
  const std::string acl = RenderAclFile(PolicyState(), nullptr);
  EXPECT_TRUE(CheckAclFile(acl).ok());
  EXPECT_THAT(acl, Not(HasSubstr("user ")));
  EXPECT_THAT(acl, Not(HasSubstr("topic ")));
}

}  // namespace
}  // namespace fleetca::sync_agent
