// PolicyIndex against a real PostgreSQL: what it loads, and that Refresh follows every kind
// of change the stores journal (devices, identities, profiles, assignments), deletions
// included, so its answers match ResolveAcl's from the database.
#include "server/policy/index.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "storage/pg_acl_store.h"
#include "storage/pg_change_log.h"
#include "storage/pg_sync_store.h"
#include "storage/pg_device_store.h"
#include "storage/pg_identity_store.h"
#include "tests/testing/test_database.h"

namespace fleetca::policy {
namespace {

using storage::AclAssignmentRow;
using storage::AclProfileRow;
using storage::AclRuleAccess;
using storage::AclSubject;

class PolicyIndexTest : public ::testing::Test {
 protected:
  void RegisterDevice(const std::string& comm_id, std::map<std::string, std::string> attributes,
                      std::vector<std::string> groups) {
    storage::Device d;
    d.comm_id = comm_id;
    d.attributes = std::move(attributes);
    d.groups = std::move(groups);
    ASSERT_TRUE(devices_.Create(d, ctx_).ok());
  }
  void CreateProfile(const std::string& name, std::vector<storage::AclRuleRow> rules) {
    AclProfileRow p;
    p.name = name;
    p.rules = std::move(rules);
    ASSERT_TRUE(acls_.CreateProfile(p, ctx_).ok());
  }
  void Assign(AclSubject type, const std::string& id, const std::string& profile) {
    ASSERT_TRUE(acls_.Assign(AclAssignmentRow{type, id, profile, absl::Time()}, ctx_).ok());
  }
  TopicVerdict Check(const std::string& id, acl::Operation op, const std::string& topic) {
    auto answer = index_.CheckTopic(PrincipalType::kDevice, id, op, topic);
    EXPECT_TRUE(answer.ok()) << answer.status();
    return answer.ok() ? answer->verdict : TopicVerdict::kPrincipalUnknown;
  }
  // The index's resolution equals the database's (Policy::Resolve).
  void ExpectSameAsDatabase(const std::string& id) {
    auto from_index = index_.Resolve(PrincipalType::kDevice, id);
    auto from_db = policy_.Resolve(PrincipalType::kDevice, id);
    ASSERT_EQ(from_index.ok(), from_db.ok()) << from_index.status() << " / " << from_db.status();
    if (!from_db.ok()) return;
    EXPECT_EQ(from_index->active, from_db->active);
    EXPECT_EQ(from_index->profile_names, from_db->profile_names);
    ASSERT_EQ(from_index->rules.size(), from_db->rules.size());
    for (size_t i = 0; i < from_db->rules.size(); ++i) {
      EXPECT_EQ(from_index->rules[i].rule.filter, from_db->rules[i].rule.filter);
      EXPECT_EQ(from_index->rules[i].rule.access, from_db->rules[i].rule.access);
    }
    EXPECT_EQ(from_index->skipped.size(), from_db->skipped.size());
  }

  testing::TestDatabase db_;
  RequestContext ctx_ = RequestContext::Local("tester", "req-1");
  storage::PgDeviceStore devices_{db_.pool()};
  storage::PgIdentityStore identities_{db_.pool()};
  storage::PgAclStore acls_{db_.pool()};
  storage::PgChangeLogReader log_{db_.pool()};
  storage::PgSyncStore sync_{db_.pool(), acls_};
  PolicyIndex index_{devices_, identities_, acls_, sync_, log_};
  Policy policy_{acls_, devices_, identities_};
};

TEST_F(PolicyIndexTest, UnavailableUntilLoadedThenAnswersFromWhatItLoaded) {
  RegisterDevice("imei-1", {{"site", "lyon"}}, {"line-a"});
  EXPECT_EQ(index_.CheckTopic(PrincipalType::kDevice, "imei-1", acl::Operation::kPublish, "a")
                .status()
                .code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(index_.Refresh().status().code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(index_.Load().ok());
  EXPECT_TRUE(index_.loaded());
  EXPECT_GT(index_.revision(), 0);
  const PolicyIndex::Counts c = index_.counts();
  EXPECT_EQ(c.devices, 1u);
  EXPECT_EQ(c.profiles, 3u);     // the built-ins
  EXPECT_EQ(c.assignments, 1u);  // all devices -> device
  EXPECT_EQ(Check("imei-1", acl::Operation::kPublish, "devices/imei-1/up"), TopicVerdict::kAllowed);
  EXPECT_EQ(Check("imei-1", acl::Operation::kPublish, "devices/imei-2/up"),
            TopicVerdict::kNoMatchingRule);
  EXPECT_EQ(Check("imei-2", acl::Operation::kPublish, "devices/imei-2/up"),
            TopicVerdict::kPrincipalUnknown);
  ExpectSameAsDatabase("imei-1");
}

TEST_F(PolicyIndexTest, RefreshFollowsEveryKindOfChange) {
  RegisterDevice("imei-1", {{"site", "lyon"}}, {"line-a"});
  ASSERT_TRUE(index_.Load().ok());
  const int64_t loaded_at = index_.revision();

  // A profile assigned to the device's group, with a DENY and an attribute.
  CreateProfile("site", {{"sites/%{site}/#", AclRuleAccess::kRead},
                         {"devices/%c/secret/#", AclRuleAccess::kDeny}});
  Assign(AclSubject::kGroup, "line-a", "site");
  RegisterDevice("imei-2", {}, {});
  EXPECT_EQ(Check("imei-1", acl::Operation::kReceive, "sites/lyon/x"), TopicVerdict::kNoMatchingRule);
  auto read = index_.Refresh();
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(*read, 3);
  EXPECT_GT(index_.revision(), loaded_at);
  EXPECT_EQ(Check("imei-1", acl::Operation::kReceive, "sites/lyon/x"), TopicVerdict::kAllowed);
  EXPECT_EQ(Check("imei-1", acl::Operation::kPublish, "devices/imei-1/secret/k"),
            TopicVerdict::kDenyRule);
  EXPECT_EQ(Check("imei-2", acl::Operation::kPublish, "devices/imei-2/up"), TopicVerdict::kAllowed);
  ExpectSameAsDatabase("imei-1");
  ExpectSameAsDatabase("imei-2");  // no site: the site rule skipped, as from the database

  // The device's attributes and groups, then its status.
  storage::DeviceUpdate update;
  update.attributes = std::map<std::string, std::string>{{"site", "paris"}};
  ASSERT_TRUE(devices_.Update("imei-1", update, std::nullopt, ctx_).ok());
  ASSERT_TRUE(index_.Refresh().ok());
  EXPECT_EQ(Check("imei-1", acl::Operation::kReceive, "sites/paris/x"), TopicVerdict::kAllowed);
  EXPECT_EQ(Check("imei-1", acl::Operation::kReceive, "sites/lyon/x"), TopicVerdict::kNoMatchingRule);
  ASSERT_TRUE(devices_
                  .SetStatus("imei-1", storage::DeviceStatus::kSuspended, "test", std::nullopt, ctx_)
                  .ok());
  ASSERT_TRUE(index_.Refresh().ok());
  EXPECT_EQ(Check("imei-1", acl::Operation::kPublish, "devices/imei-1/up"),
            TopicVerdict::kPrincipalInactive);
  ASSERT_TRUE(devices_
                  .SetStatus("imei-1", storage::DeviceStatus::kActive, "test", std::nullopt, ctx_)
                  .ok());

  // A profile's rules edited, then unassigned and deleted; a device deleted.
  storage::AclProfileUpdate edit;
  edit.rules = std::vector<storage::AclRuleRow>{{"sites/%{site}/alerts", AclRuleAccess::kRead}};
  ASSERT_TRUE(acls_.UpdateProfile("site", edit, std::nullopt, ctx_).ok());
  ASSERT_TRUE(index_.Refresh().ok());
  EXPECT_EQ(Check("imei-1", acl::Operation::kReceive, "sites/paris/x"), TopicVerdict::kNoMatchingRule);
  EXPECT_EQ(Check("imei-1", acl::Operation::kReceive, "sites/paris/alerts"), TopicVerdict::kAllowed);
  ExpectSameAsDatabase("imei-1");
  ASSERT_TRUE(acls_.Unassign(AclAssignmentRow{AclSubject::kGroup, "line-a", "site", absl::Time()},
                             ctx_)
                  .ok());
  ASSERT_TRUE(acls_.DeleteProfile("site", std::nullopt, ctx_).ok());
  ASSERT_TRUE(devices_.Delete("imei-2", std::nullopt, ctx_).ok());
  ASSERT_TRUE(index_.Refresh().ok());
  EXPECT_EQ(Check("imei-1", acl::Operation::kReceive, "sites/paris/alerts"),
            TopicVerdict::kNoMatchingRule);
  EXPECT_EQ(Check("imei-2", acl::Operation::kPublish, "devices/imei-2/up"),
            TopicVerdict::kPrincipalUnknown);
  EXPECT_EQ(index_.counts().profiles, 3u);
  EXPECT_EQ(index_.counts().assignments, 1u);
  ExpectSameAsDatabase("imei-1");
  // Nothing new: nothing read.
  EXPECT_EQ(*index_.Refresh(), 0);
}

TEST_F(PolicyIndexTest, ALoadAgainReplacesEverythingAndStartsAtTheNewHead) {
  // Changes journaled before a Load's head are in the load itself; Refresh then reads only
  // what comes after it.
  RegisterDevice("imei-1", {}, {});
  ASSERT_TRUE(index_.Load().ok());
  CreateProfile("extra", {{"extra/%c", AclRuleAccess::kWrite}});
  Assign(AclSubject::kDevice, "imei-1", "extra");
  ASSERT_TRUE(index_.Load().ok());  // a reload sees both at once
  EXPECT_EQ(Check("imei-1", acl::Operation::kPublish, "extra/imei-1"), TopicVerdict::kAllowed);
  auto read = index_.Refresh();
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(*read, 0);  // nothing after the head
  EXPECT_EQ(Check("imei-1", acl::Operation::kPublish, "extra/imei-1"), TopicVerdict::kAllowed);
}

}  // namespace
}  // namespace fleetca::policy
