// Policy::ResolveRules: the plugin's resolution of a principal's effective rules, and a
// cross-check against the server's (server/policy: the algorithm behind AclService.ResolveAcl)
// on the same profiles, assignments and devices.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "plugin/policy.h"
#include "server/policy/policy.h"
#include "storage/acl_store.h"
#include "tests/plugin/plugin_test_util.h"

namespace fleetca::plugin {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::Pair;
using testing::A;
using testing::ApplyAll;
using testing::AssignmentChange;
using testing::Deleted;
using testing::DeviceChange;
using testing::IdentityChange;
using testing::Pairs;
using testing::ProfileChange;
using testing::RuleSet;
using testing::ToSet;

constexpr int kRead = static_cast<int>(acl::Access::kRead);
constexpr int kWrite = static_cast<int>(acl::Access::kWrite);
constexpr int kReadWrite = static_cast<int>(acl::Access::kReadWrite);
constexpr int kSubscribe = static_cast<int>(acl::Access::kSubscribe);
constexpr int kDeny = static_cast<int>(acl::Access::kDeny);

std::vector<std::pair<std::string, int>> DeviceRules(const Policy& p, const std::string& id) {
  return Pairs(p.ResolveRules(v1::PRINCIPAL_TYPE_DEVICE, id, p.FindDevice(id)));
}

std::vector<std::pair<std::string, int>> IdentityRules(const Policy& p, const std::string& id) {
  return Pairs(p.ResolveRules(v1::PRINCIPAL_TYPE_IDENTITY, id, nullptr));
}

TEST(ResolveRulesTest, Substitutions) {
  Policy p;
  ApplyAll(p, {
                  DeviceChange("d1", v1::DEVICE_STATUS_ACTIVE, {},
                               {{"site", "berlin"}, {"line", "l4"}}),
                  ProfileChange("p", {{"devices/%c/up", v1::ACL_ACCESS_WRITE},
                                      {"users/%u/inbox", v1::ACL_ACCESS_READ},
                                      {"sites/%{site}/lines/%{line}/%c", v1::ACL_ACCESS_READWRITE},
                                      {"percent/%%/x", v1::ACL_ACCESS_SUBSCRIBE}}),
                  AssignmentChange(v1::ACL_SUBJECT_TYPE_DEVICE, "d1", "p"),
              });
  EXPECT_THAT(DeviceRules(p, "d1"), ElementsAre(Pair("devices/d1/up", kWrite),
                                                Pair("percent/%/x", kSubscribe),
                                                Pair("sites/berlin/lines/l4/d1", kReadWrite),
                                                Pair("users/d1/inbox", kRead)));
}

TEST(ResolveRulesTest, RulesThatCannotBeSubstitutedAreLeftOut) {
  Policy p;
  ApplyAll(p, {
                  DeviceChange("with-site", v1::DEVICE_STATUS_ACTIVE, {}, {{"site", "s1"}}),
                  DeviceChange("bare"),
                  DeviceChange("slash", v1::DEVICE_STATUS_ACTIVE, {}, {{"site", "a/b"}}),
                  DeviceChange("plus", v1::DEVICE_STATUS_ACTIVE, {}, {{"site", "+"}}),
                  DeviceChange("grouped", v1::DEVICE_STATUS_ACTIVE, {"g"}),  // no attributes
                  IdentityChange("w1"),
                  ProfileChange("p", {{"sites/%{site}/#", v1::ACL_ACCESS_READ},
                                      {"regions/%{region}/#", v1::ACL_ACCESS_DENY},
                                      {"devices/%c", v1::ACL_ACCESS_WRITE}}),
                  AssignmentChange(v1::ACL_SUBJECT_TYPE_ALL_DEVICES, "", "p"),
                  AssignmentChange(v1::ACL_SUBJECT_TYPE_IDENTITY, "w1", "p"),
              });
  // "region" is nobody's attribute: that DENY rule is left out, not applied half-way.
  EXPECT_THAT(DeviceRules(p, "with-site"),
              ElementsAre(Pair("devices/with-site", kWrite), Pair("sites/s1/#", kRead)));
  EXPECT_THAT(DeviceRules(p, "bare"), ElementsAre(Pair("devices/bare", kWrite)));
  EXPECT_THAT(DeviceRules(p, "grouped"), ElementsAre(Pair("devices/grouped", kWrite)));
  // A value that would change the filter's levels or widen it is never substituted.
  EXPECT_THAT(DeviceRules(p, "slash"), ElementsAre(Pair("devices/slash", kWrite)));
  EXPECT_THAT(DeviceRules(p, "plus"), ElementsAre(Pair("devices/plus", kWrite)));
  // An identity has no attributes.
  EXPECT_THAT(IdentityRules(p, "w1"), ElementsAre(Pair("devices/w1", kWrite)));
}

TEST(ResolveRulesTest, UnparsablePatternsAndUnknownAccessAreLeftOut) {
  Policy p;
  ApplyAll(p, {
                  DeviceChange("d1"),
                  ProfileChange("p", {{"a/#/b", v1::ACL_ACCESS_READ},      // '#' not last
                                      {"a/%x", v1::ACL_ACCESS_READ},       // unknown substitution
                                      {"ok/%c", v1::ACL_ACCESS_UNSPECIFIED},
                                      {"ok2/%c", static_cast<v1::AclAccess>(9)},
                                      {"fine/%c", v1::ACL_ACCESS_READ}}),
                  AssignmentChange(v1::ACL_SUBJECT_TYPE_DEVICE, "d1", "p"),
              });
  EXPECT_THAT(DeviceRules(p, "d1"), ElementsAre(Pair("fine/d1", kRead)));
}

TEST(ResolveRulesTest, DenyFirstThenByFilter) {
  Policy p;
  ApplyAll(p, {
                  DeviceChange("d1"),
                  ProfileChange("p", {{"z/%c", v1::ACL_ACCESS_READ},
                                      {"b/deny", v1::ACL_ACCESS_DENY},
                                      {"a/x", v1::ACL_ACCESS_WRITE},
                                      {"y/deny", v1::ACL_ACCESS_DENY},
                                      {"m/#", v1::ACL_ACCESS_SUBSCRIBE},
                                      {"a/x", v1::ACL_ACCESS_READ}}),
                  AssignmentChange(v1::ACL_SUBJECT_TYPE_DEVICE, "d1", "p"),
              });
  EXPECT_THAT(DeviceRules(p, "d1"),
              ElementsAre(Pair("b/deny", kDeny), Pair("y/deny", kDeny), Pair("a/x", kRead),
                          Pair("a/x", kWrite), Pair("m/#", kSubscribe), Pair("z/d1", kRead)));
}

TEST(ResolveRulesTest, SubjectsThatApply) {
  Policy p;
  ApplyAll(p, {
                  DeviceChange("d1", v1::DEVICE_STATUS_ACTIVE, {"g1", "g2"}),
                  DeviceChange("d2", v1::DEVICE_STATUS_ACTIVE, {"g2"}),
                  DeviceChange("d3"),
                  // An identity whose name is also a comm-ID and a group: namespaces apart.
                  IdentityChange("d3"),
                  ProfileChange("all", {{"all/%c", v1::ACL_ACCESS_READ}}),
                  ProfileChange("g1", {{"g1/%c", v1::ACL_ACCESS_READ}}),
                  ProfileChange("g2", {{"g2/%c", v1::ACL_ACCESS_READ}}),
                  ProfileChange("dev", {{"dev/%c", v1::ACL_ACCESS_READ}}),
                  ProfileChange("ident", {{"ident/%c", v1::ACL_ACCESS_READ}}),
                  AssignmentChange(v1::ACL_SUBJECT_TYPE_ALL_DEVICES, "", "all"),
                  AssignmentChange(v1::ACL_SUBJECT_TYPE_GROUP, "g1", "g1"),
                  AssignmentChange(v1::ACL_SUBJECT_TYPE_GROUP, "g2", "g2"),
                  AssignmentChange(v1::ACL_SUBJECT_TYPE_DEVICE, "d3", "dev"),
                  AssignmentChange(v1::ACL_SUBJECT_TYPE_IDENTITY, "d3", "ident"),
                  AssignmentChange(v1::ACL_SUBJECT_TYPE_GROUP, "d3", "g1"),
              });
  EXPECT_THAT(DeviceRules(p, "d1"),
              ElementsAre(Pair("all/d1", kRead), Pair("g1/d1", kRead), Pair("g2/d1", kRead)));
  EXPECT_THAT(DeviceRules(p, "d2"), ElementsAre(Pair("all/d2", kRead), Pair("g2/d2", kRead)));
  EXPECT_THAT(DeviceRules(p, "d3"), ElementsAre(Pair("all/d3", kRead), Pair("dev/d3", kRead)));
  EXPECT_THAT(IdentityRules(p, "d3"), ElementsAre(Pair("ident/d3", kRead)));
  // A device not (yet) registered still gets the all-devices and its own profiles.
  EXPECT_THAT(Pairs(p.ResolveRules(v1::PRINCIPAL_TYPE_DEVICE, "d3", nullptr)),
              ElementsAre(Pair("all/d3", kRead), Pair("dev/d3", kRead)));
  // An identity gets nothing of ALL_DEVICES.
  EXPECT_THAT(IdentityRules(p, "nobody"), IsEmpty());
}

TEST(ResolveRulesTest, AProfileAssignedTwiceCountsOnce) {
  Policy p;
  ApplyAll(p, {
                  DeviceChange("d1", v1::DEVICE_STATUS_ACTIVE, {"g1"}),
                  ProfileChange("p", {{"a/%c", v1::ACL_ACCESS_READ}, {"b", v1::ACL_ACCESS_DENY}}),
                  AssignmentChange(v1::ACL_SUBJECT_TYPE_ALL_DEVICES, "", "p"),
                  AssignmentChange(v1::ACL_SUBJECT_TYPE_GROUP, "g1", "p"),
                  AssignmentChange(v1::ACL_SUBJECT_TYPE_DEVICE, "d1", "p"),
              });
  EXPECT_THAT(DeviceRules(p, "d1"), ElementsAre(Pair("b", kDeny), Pair("a/d1", kRead)));
}

TEST(ResolveRulesTest, AnAssignmentBeforeItsProfileIsIgnoredUntilTheProfileArrives) {
  Policy p;
  ApplyAll(p, {
                  DeviceChange("d1"),
                  ProfileChange("present", {{"present/%c", v1::ACL_ACCESS_READ}}),
                  AssignmentChange(v1::ACL_SUBJECT_TYPE_DEVICE, "d1", "later"),
                  AssignmentChange(v1::ACL_SUBJECT_TYPE_DEVICE, "d1", "present"),
              });
  EXPECT_THAT(DeviceRules(p, "d1"), ElementsAre(Pair("present/d1", kRead)));
  ASSERT_TRUE(p.Apply(ProfileChange("later", {{"later/%c", v1::ACL_ACCESS_WRITE}})));
  EXPECT_THAT(DeviceRules(p, "d1"),
              ElementsAre(Pair("later/d1", kWrite), Pair("present/d1", kRead)));
  ASSERT_TRUE(p.Apply(Deleted(ProfileChange("later", {}))));
  EXPECT_THAT(DeviceRules(p, "d1"), ElementsAre(Pair("present/d1", kRead)));
}

// ---- Cross-check with the server's algorithm ------------------------------------------------

struct RuleSpec {
  std::string pattern;
  v1::AclAccess access;
};
struct ProfileSpec {
  std::string name;
  std::vector<RuleSpec> rules;
};
struct AssignmentSpec {
  v1::AclSubjectType type;
  std::string subject_id;
  std::string profile;
};
struct DeviceSpec {
  std::string comm_id;
  std::vector<std::string> groups;
  std::map<std::string, std::string> attributes;
};

storage::AclRuleAccess ToStorage(v1::AclAccess access) {
  switch (access) {
    case v1::ACL_ACCESS_READ:
      return storage::AclRuleAccess::kRead;
    case v1::ACL_ACCESS_WRITE:
      return storage::AclRuleAccess::kWrite;
    case v1::ACL_ACCESS_READWRITE:
      return storage::AclRuleAccess::kReadWrite;
    case v1::ACL_ACCESS_SUBSCRIBE:
      return storage::AclRuleAccess::kSubscribe;
    default:
      return storage::AclRuleAccess::kDeny;
  }
}

storage::AclSubject ToStorage(v1::AclSubjectType type) {
  switch (type) {
    case v1::ACL_SUBJECT_TYPE_DEVICE:
      return storage::AclSubject::kDevice;
    case v1::ACL_SUBJECT_TYPE_GROUP:
      return storage::AclSubject::kGroup;
    case v1::ACL_SUBJECT_TYPE_IDENTITY:
      return storage::AclSubject::kIdentity;
    default:
      return storage::AclSubject::kAllDevices;
  }
}

// ServerResolve: the server's resolution over the same data, as policy::Policy::Resolve
// gathers it (subjects in order; each subject's assignments by profile name, as the store
// lists them; assignments to a profile that is gone skipped).
RuleSet ServerResolve(const std::vector<ProfileSpec>& profile_specs,
                      const std::vector<AssignmentSpec>& assignment_specs,
                      policy::PrincipalType type, const std::string& id,
                      const DeviceSpec* device) {
  std::map<std::string, std::vector<storage::AclRuleRow>> profiles;
  for (const ProfileSpec& p : profile_specs) {
    std::vector<storage::AclRuleRow>& rows = profiles[p.name];
    for (const RuleSpec& r : p.rules) rows.push_back({r.pattern, ToStorage(r.access)});
  }
  std::vector<storage::AclAssignmentRow> assignments;
  for (const auto& [subject_type, subject_id] :
       policy::Subjects(type, id, device ? device->groups : std::vector<std::string>())) {
    std::vector<storage::AclAssignmentRow> of_subject;
    for (const AssignmentSpec& a : assignment_specs) {
      if (ToStorage(a.type) != subject_type || a.subject_id != subject_id) continue;
      storage::AclAssignmentRow row;
      row.subject_type = subject_type;
      row.subject_id = subject_id;
      row.profile_name = a.profile;
      of_subject.push_back(row);
    }
    std::sort(of_subject.begin(), of_subject.end(),
              [](const auto& x, const auto& y) { return x.profile_name < y.profile_name; });
    assignments.insert(assignments.end(), of_subject.begin(), of_subject.end());
  }
  std::vector<policy::AssignedProfile> assigned;
  for (const storage::AclAssignmentRow& a : assignments) {
    auto it = profiles.find(a.profile_name);
    if (it == profiles.end()) continue;
    policy::AssignedProfile ap;
    ap.assignment = &a;
    ap.rules = &it->second;
    assigned.push_back(ap);
  }
  policy::Resolution resolution;
  resolution.type = type;
  resolution.id = id;
  policy::ResolveRules(id, device ? &device->attributes : nullptr, assigned, &resolution);
  RuleSet out;
  bool deny_section = true;
  for (const policy::EffectiveRule& r : resolution.rules) {
    // The server's order too: DENY first.
    const bool deny = r.rule.access == acl::Access::kDeny;
    EXPECT_TRUE(deny_section || !deny) << "server order: a DENY rule after an allow rule";
    deny_section = deny_section && deny;
    out.emplace(r.rule.filter, static_cast<int>(r.rule.access));
  }
  return out;
}

TEST(ResolveRulesTest, AgreesWithTheServer) {
  const std::vector<ProfileSpec> profiles = {
      {"device",
       {{"devices/%c/#", v1::ACL_ACCESS_READWRITE},
        {"fleet/broadcast", v1::ACL_ACCESS_READ},
        {"$SYS/#", v1::ACL_ACCESS_DENY}}},
      {"site",
       {{"sites/%{site}/devices/%c/#", v1::ACL_ACCESS_WRITE},
        {"sites/%{site}/+/status", v1::ACL_ACCESS_READ},
        {"regions/%{region}/#", v1::ACL_ACCESS_SUBSCRIBE},
        {"sites/%{site}/secret", v1::ACL_ACCESS_DENY}}},
      {"ops",
       {{"ops/%u/cmd", v1::ACL_ACCESS_READWRITE},
        {"devices/+/telemetry", v1::ACL_ACCESS_READ},
        {"devices/+/cmd", v1::ACL_ACCESS_WRITE},
        {"lit/%%/x", v1::ACL_ACCESS_READ},
        {"devices/%{site}/x", v1::ACL_ACCESS_READ}}},
      {"quarantine", {{"#", v1::ACL_ACCESS_DENY}, {"quarantine/%c", v1::ACL_ACCESS_WRITE}}},
      {"shared", {{"fleet/broadcast", v1::ACL_ACCESS_READ}, {"shared/%c", v1::ACL_ACCESS_READ}}},
  };
  const std::vector<AssignmentSpec> assignments = {
      {v1::ACL_SUBJECT_TYPE_ALL_DEVICES, "", "device"},
      {v1::ACL_SUBJECT_TYPE_GROUP, "berlin", "site"},
      {v1::ACL_SUBJECT_TYPE_GROUP, "berlin", "shared"},
      {v1::ACL_SUBJECT_TYPE_GROUP, "lab", "quarantine"},
      {v1::ACL_SUBJECT_TYPE_GROUP, "lab", "device"},  // already via all devices
      {v1::ACL_SUBJECT_TYPE_DEVICE, "356938035643809", "shared"},
      {v1::ACL_SUBJECT_TYPE_DEVICE, "356938035643817", "ghost"},  // no such profile
      {v1::ACL_SUBJECT_TYPE_IDENTITY, "watcher-1", "ops"},
      {v1::ACL_SUBJECT_TYPE_IDENTITY, "watcher-1", "shared"},
      {v1::ACL_SUBJECT_TYPE_IDENTITY, "356938035643825", "ops"},
  };
  const std::vector<DeviceSpec> devices = {
      {"356938035643809", {"berlin", "lab"}, {{"site", "ber1"}, {"region", "eu"}}},
      {"356938035643817", {"berlin"}, {{"site", "ber2"}}},  // no region
      {"356938035643825", {}, {}},                          // no groups, no attributes
      {"356938035643833", {"lab"}, {{"site", "a/b"}}},      // an unsafe value
      {"356938035643841", {"unassigned-group"}, {{"region", "us"}}},
  };

  Policy p;
  for (const ProfileSpec& profile : profiles) {
    std::vector<std::pair<std::string, v1::AclAccess>> rules;
    for (const RuleSpec& r : profile.rules) rules.emplace_back(r.pattern, r.access);
    ASSERT_TRUE(p.Apply(ProfileChange(profile.name, rules)));
  }
  for (const AssignmentSpec& a : assignments) {
    ASSERT_TRUE(p.Apply(AssignmentChange(a.type, a.subject_id, a.profile)));
  }
  for (const DeviceSpec& d : devices) {
    ASSERT_TRUE(p.Apply(DeviceChange(d.comm_id, v1::DEVICE_STATUS_ACTIVE, d.groups, d.attributes)));
  }
  ASSERT_TRUE(p.Apply(IdentityChange("watcher-1")));

  for (const DeviceSpec& d : devices) {
    const std::vector<acl::ResolvedRule> mine =
        p.ResolveRules(v1::PRINCIPAL_TYPE_DEVICE, d.comm_id, p.FindDevice(d.comm_id));
    const RuleSet server =
        ServerResolve(profiles, assignments, policy::PrincipalType::kDevice, d.comm_id, &d);
    EXPECT_EQ(ToSet(mine), server) << "device " << d.comm_id;
    EXPECT_FALSE(server.empty()) << d.comm_id;  // every device has the all-devices profile
    // Each rule once.
    EXPECT_EQ(mine.size(), ToSet(mine).size()) << d.comm_id;
  }
  for (const std::string id : {"watcher-1", "356938035643825", "nobody"}) {
    const std::vector<acl::ResolvedRule> mine =
        p.ResolveRules(v1::PRINCIPAL_TYPE_IDENTITY, id, nullptr);
    EXPECT_EQ(ToSet(mine),
              ServerResolve(profiles, assignments, policy::PrincipalType::kIdentity, id, nullptr))
        << "identity " << id;
  }
  // The data exercises what it should: the lab device is quarantined, the berlin devices get
  // their site, the identity its own name.
  const Device* d1 = p.FindDevice("356938035643809");
  EXPECT_TRUE(ToSet(p.ResolveRules(v1::PRINCIPAL_TYPE_DEVICE, "356938035643809", d1))
                  .count({"#", kDeny}));
  EXPECT_TRUE(ToSet(p.ResolveRules(v1::PRINCIPAL_TYPE_DEVICE, "356938035643809", d1))
                  .count({"regions/eu/#", kSubscribe}));
  EXPECT_TRUE(ToSet(p.ResolveRules(v1::PRINCIPAL_TYPE_IDENTITY, "watcher-1", nullptr))
                  .count({"ops/watcher-1/cmd", kReadWrite}));
}

}  // namespace
}  // namespace fleetca::plugin
