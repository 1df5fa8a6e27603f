#include "storage/pg_acl_store.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <pqxx/pqxx>
#include <thread>

#include "absl/strings/str_cat.h"
#include "tests/testing/test_database.h"

namespace fleetca::storage {
namespace {

using ::testing::HasSubstr;

AclProfileRow Profile(const std::string& name, std::vector<AclRuleRow> rules = {
                                                   {"devices/%c/#", AclRuleAccess::kReadWrite}}) {
  AclProfileRow p;
  p.name = name;
  p.description = "profile " + name;
  p.rules = std::move(rules);
  return p;
}

AclAssignmentRow Assignment(AclSubject type, const std::string& id, const std::string& profile) {
  AclAssignmentRow a;
  a.subject_type = type;
  a.subject_id = id;
  a.profile_name = profile;
  return a;
}

std::string Key(const AclAssignmentRow& a) {
  return absl::StrCat(AclSubjectName(a.subject_type), "/", a.subject_id, "/", a.profile_name);
}

std::vector<std::string> Keys(const std::vector<AclAssignmentRow>& rows) {
  std::vector<std::string> out;
  for (const auto& r : rows) out.push_back(Key(r));
  return out;
}

std::vector<std::string> Names(const std::vector<AclProfileRow>& rows) {
  std::vector<std::string> out;
  for (const auto& r : rows) out.push_back(r.name);
  return out;
}

bool SameRules(const std::vector<AclRuleRow>& a, const std::vector<AclRuleRow>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].pattern != b[i].pattern || a[i].access != b[i].access) return false;
  }
  return true;
}

class PgAclStoreTest : public ::testing::Test {
 protected:
  // The change-log and audit rows written after the migration's seed, in order:
  // "entity_type entity_key op" and "action target".
  std::string Changes() {
    return db_.Exec(
        "SELECT coalesce(string_agg(entity_type || ' ' || entity_key || ' ' || op, ',' "
        "ORDER BY revision), '') FROM change_log WHERE revision > " +
        seed_revision_);
  }
  std::string Audits() {
    return db_.Exec(
        "SELECT coalesce(string_agg(action || ' ' || target, ',' ORDER BY id), '') "
        "FROM audit_log");
  }
  std::string Counts() {
    return db_.Exec(
        "SELECT (SELECT count(*) FROM change_log) || '/' || (SELECT count(*) FROM audit_log) "
        "|| '/' || (SELECT count(*) FROM acl_profiles) || '/' || "
        "(SELECT count(*) FROM acl_assignments) || '/' || "
        "(SELECT coalesce(sum(version), 0) FROM acl_profiles)");
  }

  testing::TestDatabase db_;
  PgAclStore store_{db_.pool()};
  RequestContext ctx_ = RequestContext::Local("tester", "req-1");
  const std::string seed_revision_ = db_.Exec("SELECT coalesce(max(revision), 0) FROM change_log");
};

TEST(AclStoreNamesTest, RoundTrip) {
  for (AclRuleAccess a : {AclRuleAccess::kRead, AclRuleAccess::kWrite, AclRuleAccess::kReadWrite,
                          AclRuleAccess::kSubscribe, AclRuleAccess::kDeny}) {
    EXPECT_EQ(AclRuleAccessFromName(AclRuleAccessName(a)), a);
  }
  EXPECT_STREQ(AclRuleAccessName(AclRuleAccess::kReadWrite), "readwrite");
  EXPECT_FALSE(AclRuleAccessFromName("READ").has_value());
  EXPECT_FALSE(AclRuleAccessFromName("").has_value());
  for (AclSubject s : {AclSubject::kDevice, AclSubject::kGroup, AclSubject::kIdentity,
                       AclSubject::kAllDevices}) {
    EXPECT_EQ(AclSubjectFromName(AclSubjectName(s)), s);
  }
  EXPECT_STREQ(AclSubjectName(AclSubject::kAllDevices), "all_devices");
  EXPECT_FALSE(AclSubjectFromName("devices").has_value());
}

TEST_F(PgAclStoreTest, TheMigrationSeedsTheBuiltInProfilesAndTheirChanges) {
  auto device = store_.GetProfile("device");
  ASSERT_TRUE(device.ok()) << device.status();
  EXPECT_TRUE(device->builtin);
  EXPECT_EQ(device->version, 1);
  EXPECT_EQ(device->description, "a device's own subtree");
  EXPECT_TRUE(SameRules(device->rules, {{"devices/%c/#", AclRuleAccess::kReadWrite}}));
  auto watcher = store_.GetProfile("watcher");
  ASSERT_TRUE(watcher.ok()) << watcher.status();
  EXPECT_TRUE(watcher->builtin);
  EXPECT_EQ(watcher->description, "subscribe to everything, publish nothing");
  EXPECT_TRUE(SameRules(watcher->rules, {{"#", AclRuleAccess::kRead}}));
  auto controller = store_.GetProfile("controller");
  ASSERT_TRUE(controller.ok()) << controller.status();
  EXPECT_TRUE(controller->builtin);
  EXPECT_EQ(controller->description, "every topic");
  EXPECT_TRUE(SameRules(controller->rules, {{"#", AclRuleAccess::kReadWrite}}));
  EXPECT_EQ(Names(*store_.ListProfiles("", 100)),
            (std::vector<std::string>{"controller", "device", "watcher"}));

  auto assignments = store_.ListAssignments({}, std::nullopt, 100);
  ASSERT_TRUE(assignments.ok()) << assignments.status();
  EXPECT_EQ(Keys(*assignments), std::vector<std::string>{"all_devices//device"});

  // Brokers following the change log see them; no audit entry (no one called anything).
  EXPECT_EQ(db_.Exec("SELECT string_agg(entity_type || ' ' || entity_key || ' ' || op, ',' "
                     "ORDER BY revision) FROM change_log"),
            "acl_profile device upsert,acl_profile watcher upsert,"
            "acl_profile controller upsert,acl_assignment all_devices//device upsert");
  EXPECT_EQ(db_.Exec("SELECT count(*) FROM audit_log"), "0");
}

TEST_F(PgAclStoreTest, CreateThenGetRoundTripsEveryField) {
  AclProfileRow p = Profile("line-2.sensors", {{"sites/%{site}/\"q\"\\x,{y}", AclRuleAccess::kRead},
                                               {"caf\xc3\xa9/+/NULL", AclRuleAccess::kWrite},
                                               {"a/b", AclRuleAccess::kSubscribe},
                                               {"$SYS/#", AclRuleAccess::kDeny},
                                               {"x", AclRuleAccess::kReadWrite}});
  p.description = "Pompe \"n\xc2\xb0" "1\" \\ caf\xc3\xa9";
  p.builtin = true;  // ignored
  auto created = store_.CreateProfile(p, ctx_);
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_EQ(created->version, 1);
  EXPECT_FALSE(created->builtin);
  EXPECT_GT(created->create_time, absl::Now() - absl::Minutes(5));
  EXPECT_EQ(created->update_time, created->create_time);
  auto got = store_.GetProfile(p.name);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->name, p.name);
  EXPECT_EQ(got->description, p.description);
  EXPECT_TRUE(SameRules(got->rules, p.rules));
  EXPECT_FALSE(got->builtin);
  EXPECT_EQ(got->version, 1);
  EXPECT_EQ(got->create_time, created->create_time);
  // Stored as the documented jsonb shape.
  EXPECT_EQ(db_.Exec("SELECT rules -> 3 ->> 'pattern' || ' ' || (rules -> 3 ->> 'access') "
                     "FROM acl_profiles WHERE name = 'line-2.sensors'"),
            "$SYS/# deny");
  // No rules at all is a profile too.
  auto empty = store_.CreateProfile(Profile("empty", {}), ctx_);
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_TRUE(store_.GetProfile("empty")->rules.empty());

  EXPECT_EQ(Changes(), "acl_profile line-2.sensors upsert,acl_profile empty upsert");
  EXPECT_EQ(Audits(), "CreateAclProfile line-2.sensors,CreateAclProfile empty");
  EXPECT_EQ(db_.Exec("SELECT details->>'rules' || ' ' || actor || ' ' || request_id FROM "
                     "audit_log ORDER BY id LIMIT 1"),
            "5 tester req-1");
}

TEST_F(PgAclStoreTest, DuplicateIsAlreadyExistsAndUnknownIsNotFound) {
  ASSERT_TRUE(store_.CreateProfile(Profile("p1"), ctx_).ok());
  auto dup = store_.CreateProfile(Profile("p1"), ctx_);
  EXPECT_EQ(dup.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(dup.status().message(), "profile.name: \"p1\" already exists");
  EXPECT_EQ(store_.CreateProfile(Profile("device"), ctx_).status().code(),
            absl::StatusCode::kAlreadyExists);
  auto missing = store_.GetProfile("nope");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(missing.status().message(), "name: no ACL profile \"nope\"");
}

TEST_F(PgAclStoreTest, ListProfilesPagesInByteOrder) {
  for (const char* name : {"b", "a-1", "zz", "a.0", "d"}) {
    ASSERT_TRUE(store_.CreateProfile(Profile(name), ctx_).ok()) << name;
  }
  EXPECT_EQ(Names(*store_.ListProfiles("", 100)),
            (std::vector<std::string>{"a-1", "a.0", "b", "controller", "d", "device", "watcher",
                                      "zz"}));
  EXPECT_EQ(Names(*store_.ListProfiles("", 2)), (std::vector<std::string>{"a-1", "a.0"}));
  EXPECT_EQ(Names(*store_.ListProfiles("a.0", 3)),
            (std::vector<std::string>{"b", "controller", "d"}));
  EXPECT_EQ(Names(*store_.ListProfiles("d", 2)), (std::vector<std::string>{"device", "watcher"}));
  EXPECT_TRUE(store_.ListProfiles("zz", 10)->empty());
}

TEST_F(PgAclStoreTest, UpdateReplacesTheGivenFieldsAndChecksTheEtag) {
  auto created = store_.CreateProfile(Profile("p1"), ctx_);
  ASSERT_TRUE(created.ok()) << created.status();

  AclProfileUpdate description;
  description.description = "new words";
  auto v2 = store_.UpdateProfile("p1", description, std::nullopt, ctx_);
  ASSERT_TRUE(v2.ok()) << v2.status();
  EXPECT_EQ(v2->version, 2);
  EXPECT_EQ(v2->description, "new words");
  EXPECT_TRUE(SameRules(v2->rules, created->rules));
  EXPECT_GE(v2->update_time, created->update_time);
  EXPECT_EQ(v2->create_time, created->create_time);

  AclProfileUpdate rules;
  rules.rules = std::vector<AclRuleRow>{{"a/#", AclRuleAccess::kRead}, {"b", AclRuleAccess::kDeny}};
  auto v3 = store_.UpdateProfile("p1", rules, 2, ctx_);
  ASSERT_TRUE(v3.ok()) << v3.status();
  EXPECT_EQ(v3->version, 3);
  EXPECT_EQ(v3->description, "new words");
  EXPECT_TRUE(SameRules(v3->rules, *rules.rules));

  // A stale etag: ABORTED, nothing changed.
  AclProfileUpdate stale;
  stale.description = "stale";
  stale.rules = std::vector<AclRuleRow>{};
  auto aborted = store_.UpdateProfile("p1", stale, 2, ctx_);
  EXPECT_EQ(aborted.status().code(), absl::StatusCode::kAborted);
  EXPECT_THAT(std::string(aborted.status().message()), HasSubstr("etag"));
  auto got = store_.GetProfile("p1");
  EXPECT_EQ(got->version, 3);
  EXPECT_EQ(got->description, "new words");
  EXPECT_EQ(got->rules.size(), 2u);

  auto missing = store_.UpdateProfile("nope", description, std::nullopt, ctx_);
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(missing.status().message(), "name: no ACL profile \"nope\"");

  EXPECT_EQ(Changes(), "acl_profile p1 upsert,acl_profile p1 upsert,acl_profile p1 upsert");
  EXPECT_EQ(Audits(), "CreateAclProfile p1,UpdateAclProfile p1,UpdateAclProfile p1");
  EXPECT_EQ(db_.Exec("SELECT string_agg(details->>'fields' || ':' || coalesce(details->>'rules', "
                     "'-'), ',' ORDER BY id) FROM audit_log WHERE action = 'UpdateAclProfile'"),
            "description:-,rules:2");
}

TEST_F(PgAclStoreTest, BuiltInProfilesMayBeEditedButNotDeleted) {
  AclProfileUpdate rules;
  rules.rules = std::vector<AclRuleRow>{{"devices/%c/#", AclRuleAccess::kReadWrite},
                                        {"fleet/broadcast/#", AclRuleAccess::kRead}};
  auto edited = store_.UpdateProfile("device", rules, 1, ctx_);
  ASSERT_TRUE(edited.ok()) << edited.status();
  EXPECT_TRUE(edited->builtin);
  EXPECT_EQ(edited->version, 2);
  EXPECT_EQ(edited->rules.size(), 2u);

  auto st = store_.DeleteProfile("watcher", std::nullopt, ctx_);
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(st.message(), "name: profile \"watcher\" is built in");
  // "device" is built in and assigned: built in is the reason given.
  st = store_.DeleteProfile("device", 2, ctx_);
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(st.message(), "name: profile \"device\" is built in");
  // The etag is checked first.
  EXPECT_EQ(store_.DeleteProfile("device", 1, ctx_).code(), absl::StatusCode::kAborted);
  EXPECT_TRUE(store_.GetProfile("watcher").ok());

  // And the database refuses it too, whoever asks: no delete, no rename, no demotion.
  EXPECT_THROW(db_.Exec("DELETE FROM acl_profiles WHERE name = 'watcher'"), pqxx::check_violation);
  EXPECT_THROW(db_.Exec("UPDATE acl_profiles SET builtin = false WHERE name = 'controller'"),
               pqxx::check_violation);
  EXPECT_THROW(db_.Exec("UPDATE acl_profiles SET name = 'ctl' WHERE name = 'controller'"),
               pqxx::check_violation);
  try {
    db_.Exec("DELETE FROM acl_profiles WHERE builtin");
    ADD_FAILURE() << "deleted the built-in profiles";
  } catch (const pqxx::check_violation& e) {
    EXPECT_THAT(std::string(e.what()), HasSubstr("acl_profiles_builtin_is_permanent"));
  }
  EXPECT_EQ(db_.Exec("SELECT count(*) FROM acl_profiles WHERE builtin"), "3");
  // An ordinary profile is deleted as usual.
  db_.Exec("INSERT INTO acl_profiles (name, rules) VALUES ('plain', '[]')");
  db_.Exec("DELETE FROM acl_profiles WHERE name = 'plain'");

  EXPECT_EQ(Changes(), "acl_profile device upsert");
  EXPECT_EQ(Audits(), "UpdateAclProfile device");
}

TEST_F(PgAclStoreTest, DeleteChecksTheEtagThenRemoves) {
  ASSERT_TRUE(store_.CreateProfile(Profile("p1"), ctx_).ok());
  auto st = store_.DeleteProfile("p1", 7, ctx_);
  EXPECT_EQ(st.code(), absl::StatusCode::kAborted);
  EXPECT_TRUE(store_.GetProfile("p1").ok());
  ASSERT_TRUE(store_.DeleteProfile("p1", 1, ctx_).ok());
  EXPECT_EQ(store_.GetProfile("p1").status().code(), absl::StatusCode::kNotFound);
  st = store_.DeleteProfile("p1", std::nullopt, ctx_);
  EXPECT_EQ(st.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(st.message(), "name: no ACL profile \"p1\"");
  // Without an etag.
  ASSERT_TRUE(store_.CreateProfile(Profile("p2"), ctx_).ok());
  ASSERT_TRUE(store_.DeleteProfile("p2", std::nullopt, ctx_).ok());

  EXPECT_EQ(Changes(),
            "acl_profile p1 upsert,acl_profile p1 delete,acl_profile p2 upsert,"
            "acl_profile p2 delete");
  EXPECT_EQ(Audits(),
            "CreateAclProfile p1,DeleteAclProfile p1,CreateAclProfile p2,DeleteAclProfile p2");
}

TEST_F(PgAclStoreTest, AnAssignedProfileIsDeletedOnlyOnceUnassigned) {
  db_.Exec("INSERT INTO devices (comm_id) VALUES ('imei-1')");
  ASSERT_TRUE(store_.CreateProfile(Profile("p1"), ctx_).ok());
  const AclAssignmentRow group = Assignment(AclSubject::kGroup, "north", "p1");
  const AclAssignmentRow device = Assignment(AclSubject::kDevice, "imei-1", "p1");
  ASSERT_TRUE(store_.Assign(group, ctx_).ok());
  ASSERT_TRUE(store_.Assign(device, ctx_).ok());

  auto st = store_.DeleteProfile("p1", std::nullopt, ctx_);
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(st.message(), "name: profile \"p1\" is assigned to 2 subjects: unassign it first");
  // The foreign key refuses it too.
  EXPECT_THROW(db_.Exec("DELETE FROM acl_profiles WHERE name = 'p1'"),
               pqxx::foreign_key_violation);

  ASSERT_TRUE(store_.Unassign(group, ctx_).ok());
  st = store_.DeleteProfile("p1", std::nullopt, ctx_);
  EXPECT_EQ(st.message(), "name: profile \"p1\" is assigned to 1 subject: unassign it first");
  ASSERT_TRUE(store_.Unassign(device, ctx_).ok());
  ASSERT_TRUE(store_.DeleteProfile("p1", 1, ctx_).ok()) << "assignments do not bump the version";

  EXPECT_EQ(Changes(),
            "acl_profile p1 upsert,acl_assignment group/north/p1 upsert,"
            "acl_assignment device/imei-1/p1 upsert,acl_assignment group/north/p1 delete,"
            "acl_assignment device/imei-1/p1 delete,acl_profile p1 delete");
  EXPECT_EQ(Audits(),
            "CreateAclProfile p1,AssignAclProfile group/north/p1,"
            "AssignAclProfile device/imei-1/p1,UnassignAclProfile group/north/p1,"
            "UnassignAclProfile device/imei-1/p1,DeleteAclProfile p1");
}

TEST_F(PgAclStoreTest, AssignIsIdempotent) {
  db_.Exec("INSERT INTO identities (name, role) VALUES ('station-1', 'mqtt_client')");
  const AclAssignmentRow a = Assignment(AclSubject::kIdentity, "station-1", "watcher");
  auto first = store_.Assign(a, ctx_);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_FALSE(first->second);
  EXPECT_EQ(Key(first->first), "identity/station-1/watcher");
  EXPECT_GT(first->first.create_time, absl::Now() - absl::Minutes(5));
  auto again = store_.Assign(a, ctx_);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_TRUE(again->second);
  EXPECT_EQ(Key(again->first), "identity/station-1/watcher");
  EXPECT_EQ(again->first.create_time, first->first.create_time);
  // The seeded assignment exists already as well.
  auto seeded = store_.Assign(Assignment(AclSubject::kAllDevices, "", "device"), ctx_);
  ASSERT_TRUE(seeded.ok()) << seeded.status();
  EXPECT_TRUE(seeded->second);

  EXPECT_EQ(Changes(), "acl_assignment identity/station-1/watcher upsert");
  EXPECT_EQ(Audits(), "AssignAclProfile identity/station-1/watcher");
}

TEST_F(PgAclStoreTest, AssignRefusesAnUnknownProfileDeviceOrIdentity) {
  db_.Exec("INSERT INTO devices (comm_id) VALUES ('imei-1')");
  db_.Exec("INSERT INTO identities (name, role) VALUES ('station-1', 'mqtt_client')");
  const std::string before = Counts();

  auto profile = store_.Assign(Assignment(AclSubject::kDevice, "imei-1", "nope"), ctx_);
  EXPECT_EQ(profile.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(profile.status().message(), "assignment.profile_name: no ACL profile \"nope\"");
  auto device = store_.Assign(Assignment(AclSubject::kDevice, "imei-2", "device"), ctx_);
  EXPECT_EQ(device.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(device.status().message(), "assignment.subject_id: no device \"imei-2\"");
  auto identity = store_.Assign(Assignment(AclSubject::kIdentity, "station-2", "watcher"), ctx_);
  EXPECT_EQ(identity.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(identity.status().message(), "assignment.subject_id: no identity \"station-2\"");
  // A device's comm-ID is not an identity, nor the other way round.
  EXPECT_EQ(store_.Assign(Assignment(AclSubject::kIdentity, "imei-1", "watcher"), ctx_)
                .status()
                .code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(store_.Assign(Assignment(AclSubject::kDevice, "station-1", "watcher"), ctx_)
                .status()
                .code(),
            absl::StatusCode::kNotFound);
  // all_devices takes no subject id (the database's check, worded).
  auto all = store_.Assign(Assignment(AclSubject::kAllDevices, "x", "watcher"), ctx_);
  EXPECT_EQ(all.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(all.status().message()), HasSubstr("assignment.subject_id"));
  EXPECT_EQ(Counts(), before);

  // A group needs no member; known subjects are assigned.
  EXPECT_TRUE(store_.Assign(Assignment(AclSubject::kGroup, "nobody-yet", "watcher"), ctx_).ok());
  EXPECT_TRUE(store_.Assign(Assignment(AclSubject::kDevice, "imei-1", "controller"), ctx_).ok());
  EXPECT_TRUE(store_.Assign(Assignment(AclSubject::kIdentity, "station-1", "watcher"), ctx_).ok());
}

TEST_F(PgAclStoreTest, UnassignRemovesOrIsNotFound) {
  db_.Exec("INSERT INTO devices (comm_id) VALUES ('imei-1')");
  const AclAssignmentRow a = Assignment(AclSubject::kDevice, "imei-1", "controller");
  auto st = store_.Unassign(a, ctx_);
  EXPECT_EQ(st.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(st.message(),
            "assignment: profile \"controller\" is not assigned to device \"imei-1\"");
  ASSERT_TRUE(store_.Assign(a, ctx_).ok());
  ASSERT_TRUE(store_.Unassign(a, ctx_).ok());
  EXPECT_EQ(store_.Unassign(a, ctx_).code(), absl::StatusCode::kNotFound);
  // The seeded assignment can go like any other.
  const AclAssignmentRow all = Assignment(AclSubject::kAllDevices, "", "device");
  ASSERT_TRUE(store_.Unassign(all, ctx_).ok());
  EXPECT_EQ(store_.Unassign(all, ctx_).message(),
            "assignment: profile \"device\" is not assigned to all devices");
  EXPECT_TRUE(store_.ListAssignments({}, std::nullopt, 10)->empty());

  EXPECT_EQ(Changes(),
            "acl_assignment device/imei-1/controller upsert,"
            "acl_assignment device/imei-1/controller delete,"
            "acl_assignment all_devices//device delete");
  EXPECT_EQ(Audits(),
            "AssignAclProfile device/imei-1/controller,"
            "UnassignAclProfile device/imei-1/controller,UnassignAclProfile all_devices//device");
}

TEST_F(PgAclStoreTest, ListAssignmentsPagesInKeyOrderWithFilters) {
  db_.Exec("INSERT INTO devices (comm_id) VALUES ('imei-1'), ('imei-2'), ('IMEI-3')");
  db_.Exec("INSERT INTO identities (name, role) VALUES ('station-1', 'mqtt_client')");
  ASSERT_TRUE(store_.CreateProfile(Profile("p1"), ctx_).ok());
  ASSERT_TRUE(store_.CreateProfile(Profile("p2"), ctx_).ok());
  for (const AclAssignmentRow& a : {Assignment(AclSubject::kIdentity, "station-1", "p2"),
                                    Assignment(AclSubject::kDevice, "imei-2", "p1"),
                                    Assignment(AclSubject::kDevice, "imei-1", "p2"),
                                    Assignment(AclSubject::kGroup, "north", "p1"),
                                    Assignment(AclSubject::kDevice, "imei-1", "p1"),
                                    Assignment(AclSubject::kDevice, "IMEI-3", "p1")}) {
    ASSERT_TRUE(store_.Assign(a, ctx_).ok()) << Key(a);
  }
  const std::vector<std::string> all = {
      "all_devices//device", "device/IMEI-3/p1",    "device/imei-1/p1",        "device/imei-1/p2",
      "device/imei-2/p1",    "group/north/p1",      "identity/station-1/p2"};
  EXPECT_EQ(Keys(*store_.ListAssignments({}, std::nullopt, 100)), all);

  // Page by page, each page starting after the last row of the one before.
  std::vector<std::string> paged;
  std::optional<AclAssignmentRow> after;
  for (int pages = 0; pages < 10; ++pages) {
    auto page = store_.ListAssignments({}, after, 2);
    ASSERT_TRUE(page.ok()) << page.status();
    for (const auto& k : Keys(*page)) paged.push_back(k);
    if (page->size() < 2) break;
    after = page->back();
  }
  EXPECT_EQ(paged, all);

  AclAssignmentFilter devices;
  devices.subject_type = AclSubject::kDevice;
  EXPECT_EQ(Keys(*store_.ListAssignments(devices, std::nullopt, 100)),
            (std::vector<std::string>{"device/IMEI-3/p1", "device/imei-1/p1", "device/imei-1/p2",
                                      "device/imei-2/p1"}));
  EXPECT_EQ(Keys(*store_.ListAssignments(devices, Assignment(AclSubject::kDevice, "imei-1", "p1"),
                                         2)),
            (std::vector<std::string>{"device/imei-1/p2", "device/imei-2/p1"}));
  AclAssignmentFilter one_device = devices;
  one_device.subject_id = "imei-1";
  EXPECT_EQ(Keys(*store_.ListAssignments(one_device, std::nullopt, 100)),
            (std::vector<std::string>{"device/imei-1/p1", "device/imei-1/p2"}));
  AclAssignmentFilter p1;
  p1.profile_name = "p1";
  EXPECT_EQ(Keys(*store_.ListAssignments(p1, std::nullopt, 100)),
            (std::vector<std::string>{"device/IMEI-3/p1", "device/imei-1/p1", "device/imei-2/p1",
                                      "group/north/p1"}));
  AclAssignmentFilter everyone;
  everyone.subject_type = AclSubject::kAllDevices;
  EXPECT_EQ(Keys(*store_.ListAssignments(everyone, std::nullopt, 100)),
            std::vector<std::string>{"all_devices//device"});
  AclAssignmentFilter nothing;
  nothing.subject_type = AclSubject::kGroup;
  nothing.profile_name = "p2";
  EXPECT_TRUE(store_.ListAssignments(nothing, std::nullopt, 100)->empty());
  // After the last key: nothing.
  EXPECT_TRUE(store_.ListAssignments({}, Assignment(AclSubject::kIdentity, "station-1", "p2"), 10)
                  ->empty());
}

TEST_F(PgAclStoreTest, EveryChangeJournalsOneRevisionAndOneAuditEntry) {
  db_.Exec("INSERT INTO devices (comm_id) VALUES ('imei-1')");
  const std::string revisions = db_.Exec("SELECT count(*) FROM change_log");
  ASSERT_TRUE(store_.CreateProfile(Profile("p1"), ctx_).ok());
  AclProfileUpdate u;
  u.rules = std::vector<AclRuleRow>{};
  ASSERT_TRUE(store_.UpdateProfile("p1", u, 1, ctx_).ok());
  const AclAssignmentRow a = Assignment(AclSubject::kDevice, "imei-1", "p1");
  ASSERT_TRUE(store_.Assign(a, ctx_).ok());
  ASSERT_TRUE(store_.Assign(a, ctx_).ok());  // existed: writes nothing
  ASSERT_TRUE(store_.Unassign(a, ctx_).ok());
  ASSERT_TRUE(store_.DeleteProfile("p1", 2, ctx_).ok());

  EXPECT_EQ(db_.Exec("SELECT count(*) FROM change_log"),
            std::to_string(std::stoi(revisions) + 5));
  EXPECT_EQ(Changes(),
            "acl_profile p1 upsert,acl_profile p1 upsert,acl_assignment device/imei-1/p1 upsert,"
            "acl_assignment device/imei-1/p1 delete,acl_profile p1 delete");
  EXPECT_EQ(Audits(),
            "CreateAclProfile p1,UpdateAclProfile p1,AssignAclProfile device/imei-1/p1,"
            "UnassignAclProfile device/imei-1/p1,DeleteAclProfile p1");
  // Each audit entry names its resource type and the caller; details hold no rule content.
  EXPECT_EQ(db_.Exec("SELECT string_agg(details->>'resource', ',' ORDER BY id) FROM audit_log"),
            "acl_profile,acl_profile,acl_assignment,acl_assignment,acl_profile");
  EXPECT_EQ(db_.Exec("SELECT count(*) FROM audit_log WHERE actor = 'tester' AND "
                     "request_id = 'req-1'"),
            "5");
  EXPECT_EQ(db_.Exec("SELECT count(*) FROM audit_log WHERE details::text LIKE '%devices/%'"), "0");
}

TEST_F(PgAclStoreTest, AFailedCallWritesNothing) {
  db_.Exec("INSERT INTO devices (comm_id) VALUES ('imei-1')");
  ASSERT_TRUE(store_.CreateProfile(Profile("p1"), ctx_).ok());
  ASSERT_TRUE(store_.Assign(Assignment(AclSubject::kDevice, "imei-1", "p1"), ctx_).ok());
  const std::string before = Counts();
  AclProfileUpdate u;
  u.description = "changed";
  EXPECT_FALSE(store_.CreateProfile(Profile("p1"), ctx_).ok());
  EXPECT_FALSE(store_.UpdateProfile("p1", u, 5, ctx_).ok());
  EXPECT_FALSE(store_.UpdateProfile("nope", u, std::nullopt, ctx_).ok());
  EXPECT_FALSE(store_.DeleteProfile("p1", std::nullopt, ctx_).ok());
  EXPECT_FALSE(store_.DeleteProfile("p1", 9, ctx_).ok());
  EXPECT_FALSE(store_.DeleteProfile("controller", std::nullopt, ctx_).ok());
  EXPECT_FALSE(store_.DeleteProfile("nope", std::nullopt, ctx_).ok());
  EXPECT_FALSE(store_.Assign(Assignment(AclSubject::kDevice, "imei-1", "nope"), ctx_).ok());
  EXPECT_FALSE(store_.Assign(Assignment(AclSubject::kDevice, "imei-9", "p1"), ctx_).ok());
  EXPECT_FALSE(store_.Assign(Assignment(AclSubject::kIdentity, "nobody", "p1"), ctx_).ok());
  EXPECT_FALSE(store_.Unassign(Assignment(AclSubject::kGroup, "north", "p1"), ctx_).ok());
  AclProfileRow big = Profile("big");
  big.description = std::string(257, 'x');
  EXPECT_FALSE(store_.CreateProfile(big, ctx_).ok());
  EXPECT_EQ(Counts(), before);
  EXPECT_EQ(store_.GetProfile("p1")->description, "profile p1");
}

TEST_F(PgAclStoreTest, TheDatabaseEnforcesTheApiLimits) {
  // Through the store: the constraint is worded as the field it concerns.
  AclProfileRow big = Profile("big");
  big.description = std::string(257, 'x');
  auto st = store_.CreateProfile(big, ctx_).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(st.message()), HasSubstr("profile.description"));
  big.description = std::string(256, 'x');
  big.rules.assign(65, {"a/b", AclRuleAccess::kRead});
  st = store_.CreateProfile(big, ctx_).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(st.message()), HasSubstr("profile.rules"));
  big.rules.resize(64);
  ASSERT_TRUE(store_.CreateProfile(big, ctx_).ok());
  AclProfileUpdate u;
  u.description = std::string(300, 'y');
  EXPECT_EQ(store_.UpdateProfile("big", u, std::nullopt, ctx_).status().code(),
            absl::StatusCode::kInvalidArgument);

  // Directly.
  EXPECT_THROW(db_.Exec("INSERT INTO acl_profiles (name, description, rules) "
                        "VALUES ('d', repeat('x', 257), '[]')"),
               pqxx::check_violation);
  EXPECT_THROW(db_.Exec("INSERT INTO acl_profiles (name, rules) SELECT 'r', "
                        "jsonb_agg(jsonb_build_object('pattern', 'a/' || i, 'access', 'read')) "
                        "FROM generate_series(1, 65) AS i"),
               pqxx::check_violation);
  for (const char* rules :
       {R"([{"pattern": "a", "access": "all"}])", R"([{"pattern": "", "access": "read"}])",
        R"([{"pattern": 1, "access": "read"}])", R"([{"access": "read"}])", R"(["a"])",
        R"({"pattern": "a", "access": "read"})"}) {
    EXPECT_THROW(db_.Exec(absl::StrCat("INSERT INTO acl_profiles (name, rules) VALUES ('r', '",
                                       rules, "')")),
                 pqxx::check_violation)
        << rules;
  }
  db_.Exec("INSERT INTO acl_profiles (name, rules) VALUES ('r', "
           "'[{\"pattern\": \"a\", \"access\": \"subscribe\"}]')");
}

TEST_F(PgAclStoreTest, ConcurrentAssignsOfOneAssignmentWriteItOnce) {
  db_.Exec("INSERT INTO devices (comm_id) VALUES ('imei-1')");
  constexpr int kWriters = 6;
  std::atomic<int> created{0}, existed{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kWriters; ++i) {
    threads.emplace_back([&] {
      auto r = store_.Assign(Assignment(AclSubject::kDevice, "imei-1", "controller"), ctx_);
      if (r.ok()) ++(r->second ? existed : created);
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(created.load(), 1);
  EXPECT_EQ(existed.load(), kWriters - 1);
  EXPECT_EQ(Changes(), "acl_assignment device/imei-1/controller upsert");
  EXPECT_EQ(Audits(), "AssignAclProfile device/imei-1/controller");
}

TEST_F(PgAclStoreTest, ConcurrentDeleteAndAssignNeverLeaveAnAssignmentBehind) {
  for (int round = 0; round < 5; ++round) {
    const std::string name = absl::StrCat("p", round);
    ASSERT_TRUE(store_.CreateProfile(Profile(name), ctx_).ok());
    absl::Status deleted;
    absl::StatusOr<std::pair<AclAssignmentRow, bool>> assigned;
    std::thread deleter([&] { deleted = store_.DeleteProfile(name, std::nullopt, ctx_); });
    std::thread assigner(
        [&] { assigned = store_.Assign(Assignment(AclSubject::kGroup, "g", name), ctx_); });
    deleter.join();
    assigner.join();
    // Exactly one wins: deleted (and the assignment NOT_FOUND) or assigned (and the delete
    // refused).
    if (deleted.ok()) {
      EXPECT_EQ(assigned.status().code(), absl::StatusCode::kNotFound) << assigned.status();
      EXPECT_EQ(db_.Exec("SELECT count(*) FROM acl_assignments WHERE profile_name = '" + name +
                         "'"),
                "0");
    } else {
      EXPECT_EQ(deleted.code(), absl::StatusCode::kFailedPrecondition) << deleted;
      EXPECT_TRUE(assigned.ok()) << assigned.status();
      EXPECT_TRUE(store_.GetProfile(name).ok());
    }
  }
}

}  // namespace
}  // namespace fleetca::storage
