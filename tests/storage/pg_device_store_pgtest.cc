#include "storage/pg_device_store.h"

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

Device Dev(const std::string& id) {
  Device d;
  d.comm_id = id;
  return d;
}

class PgDeviceStoreTest : public ::testing::Test {
 protected:
  testing::TestDatabase db_;
  PgDeviceStore store_{db_.pool()};
  RequestContext ctx_ = RequestContext::Local("tester", "req-1");
};

TEST_F(PgDeviceStoreTest, CreateThenGetRoundTripsEveryField) {
  Device d = Dev("356938035643809");
  d.display_name = "Pompe \"n\xc2\xb0" "1\" \\ caf\xc3\xa9";
  d.attributes = {{"site", "lyon"}, {"q", "a\"b\\c"}, {"emoji", "\xf0\x9f\x98\x80"}};
  d.groups = {"factory", "line-2"};
  d.status = DeviceStatus::kSuspended;
  d.status_reason = "pending QA";
  auto created = store_.Create(d, ctx_);
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_EQ(created->version, 1);
  auto got = store_.Get(d.comm_id);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->display_name, d.display_name);
  EXPECT_EQ(got->attributes, d.attributes);
  EXPECT_EQ(got->groups, d.groups);
  EXPECT_EQ(got->status, DeviceStatus::kSuspended);
  EXPECT_EQ(got->status_reason, "pending QA");
  EXPECT_GT(got->create_time, absl::Now() - absl::Minutes(5));
}

TEST_F(PgDeviceStoreTest, DuplicateIsAlreadyExistsAndUnknownIsNotFound) {
  ASSERT_TRUE(store_.Create(Dev("d1"), ctx_).ok());
  auto dup = store_.Create(Dev("d1"), ctx_);
  EXPECT_EQ(dup.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(std::string(dup.status().message()), HasSubstr("\"d1\" is already registered"));
  EXPECT_EQ(store_.Get("nope").status().code(), absl::StatusCode::kNotFound);
  // comm-IDs are case-sensitive.
  EXPECT_TRUE(store_.Create(Dev("D1"), ctx_).ok());
}

TEST_F(PgDeviceStoreTest, TheDatabaseItselfRefusesBadCommIds) {
  EXPECT_THROW(db_.Exec("INSERT INTO devices (comm_id) VALUES ('a/b')"), pqxx::check_violation);
  EXPECT_THROW(db_.Exec("INSERT INTO devices (comm_id) VALUES ('')"), pqxx::check_violation);
}

TEST_F(PgDeviceStoreTest, BatchReportsExistingItemsAndKeepsTheRest) {
  ASSERT_TRUE(store_.Create(Dev("b"), ctx_).ok());
  std::vector<Device> batch = {Dev("a"), Dev("b"), Dev("c")};
  batch[2].attributes = {{"k", "v"}};
  auto results = store_.CreateBatch(batch, ctx_);
  ASSERT_TRUE(results.ok()) << results.status();
  EXPECT_TRUE((*results)[0].ok());
  EXPECT_EQ((*results)[1].code(), absl::StatusCode::kAlreadyExists);
  EXPECT_TRUE((*results)[2].ok());
  EXPECT_EQ(store_.Get("c")->attributes.at("k"), "v");
  EXPECT_EQ(db_.Exec("SELECT count(*) FROM devices"), "3");
  // One revision per device registered (b counted once, by Create), and one audit entry for
  // the batch call naming the devices it registered.
  EXPECT_EQ(db_.Exec("SELECT count(*) FROM change_log WHERE entity_type = 'device'"), "3");
  EXPECT_EQ(db_.Exec("SELECT count(*) FROM audit_log WHERE action = 'BatchRegisterDevices'"), "1");
  EXPECT_EQ(db_.Exec("SELECT details->>'comm_ids' FROM audit_log WHERE action = "
                     "'BatchRegisterDevices'"),
            "[\"a\", \"c\"]");
}

TEST_F(PgDeviceStoreTest, TenThousandInOneBatch) {
  std::vector<Device> batch;
  for (int i = 0; i < 10000; ++i) batch.push_back(Dev(absl::StrCat("imei-", 100000 + i)));
  auto results = store_.CreateBatch(batch, ctx_);
  ASSERT_TRUE(results.ok()) << results.status();
  for (const auto& r : *results) ASSERT_TRUE(r.ok()) << r;
  EXPECT_EQ(db_.Exec("SELECT count(*) FROM devices"), "10000");
}

TEST_F(PgDeviceStoreTest, ListFiltersAndKeysetOrder) {
  for (const char* id : {"b-2", "a-1", "a-3", "a-2", "c-1"}) ASSERT_TRUE(store_.Create(Dev(id), ctx_).ok());
  DeviceUpdate u;
  u.groups = std::vector<std::string>{"north"};
  u.attributes = std::map<std::string, std::string>{{"site", "lyon"}, {"rev", "2"}};
  ASSERT_TRUE(store_.Update("a-2", u, std::nullopt, ctx_).ok());
  ASSERT_TRUE(store_.SetStatus("a-3", DeviceStatus::kSuspended, "", std::nullopt, ctx_).ok());

  auto ids = [](const std::vector<Device>& ds) {
    std::vector<std::string> out;
    for (const auto& d : ds) out.push_back(d.comm_id);
    return out;
  };
  DeviceFilter all;
  EXPECT_EQ(ids(*store_.List(all, "", 10)),
            (std::vector<std::string>{"a-1", "a-2", "a-3", "b-2", "c-1"}));
  EXPECT_EQ(ids(*store_.List(all, "a-2", 2)), (std::vector<std::string>{"a-3", "b-2"}));
  DeviceFilter prefix;
  prefix.comm_id_prefix = "a-";
  EXPECT_EQ(ids(*store_.List(prefix, "", 10)), (std::vector<std::string>{"a-1", "a-2", "a-3"}));
  DeviceFilter status;
  status.status = DeviceStatus::kSuspended;
  EXPECT_EQ(ids(*store_.List(status, "", 10)), (std::vector<std::string>{"a-3"}));
  DeviceFilter group;
  group.group = "north";
  EXPECT_EQ(ids(*store_.List(group, "", 10)), (std::vector<std::string>{"a-2"}));
  DeviceFilter attr;
  attr.attributes = {{"site", "lyon"}};
  EXPECT_EQ(ids(*store_.List(attr, "", 10)), (std::vector<std::string>{"a-2"}));
  attr.attributes["rev"] = "3";
  EXPECT_TRUE(store_.List(attr, "", 10)->empty());
}

TEST_F(PgDeviceStoreTest, UpdateBumpsVersionAndChecksIt) {
  ASSERT_TRUE(store_.Create(Dev("d1"), ctx_).ok());
  DeviceUpdate u;
  u.display_name = "first";
  auto v2 = store_.Update("d1", u, 1, ctx_);
  ASSERT_TRUE(v2.ok()) << v2.status();
  EXPECT_EQ(v2->version, 2);
  u.display_name = "stale";
  auto stale = store_.Update("d1", u, 1, ctx_);
  EXPECT_EQ(stale.status().code(), absl::StatusCode::kAborted);
  EXPECT_EQ(store_.Get("d1")->display_name, "first");
  EXPECT_EQ(store_.Update("nope", u, std::nullopt, ctx_).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(PgDeviceStoreTest, ConcurrentUpdatesWithOneEtagOneWinsOneAborts) {
  ASSERT_TRUE(store_.Create(Dev("d1"), ctx_).ok());
  constexpr int kWriters = 6;
  std::atomic<int> ok{0}, aborted{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kWriters; ++i) {
    threads.emplace_back([&, i] {
      DeviceUpdate u;
      u.display_name = absl::StrCat("writer-", i);
      auto r = store_.Update("d1", u, 1, ctx_);
      if (r.ok()) {
        ++ok;
      } else if (r.status().code() == absl::StatusCode::kAborted) {
        ++aborted;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 1);
  EXPECT_EQ(aborted.load(), kWriters - 1);
  EXPECT_EQ(store_.Get("d1")->version, 2);
}

TEST_F(PgDeviceStoreTest, DecommissioningIsFinal) {
  ASSERT_TRUE(store_.Create(Dev("d1"), ctx_).ok());
  auto s = store_.SetStatus("d1", DeviceStatus::kSuspended, "theft", std::nullopt, ctx_);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->status_reason, "theft");
  // Same status again: no change, no new version.
  EXPECT_EQ(store_.SetStatus("d1", DeviceStatus::kSuspended, "", std::nullopt, ctx_)->version, 2);
  ASSERT_TRUE(store_.SetStatus("d1", DeviceStatus::kDecommissioned, "eol", std::nullopt, ctx_).ok());
  auto back = store_.SetStatus("d1", DeviceStatus::kActive, "", std::nullopt, ctx_);
  EXPECT_EQ(back.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(back.status().message()), HasSubstr("decommissioning is final"));
  // And the database refuses it too, whoever asks.
  EXPECT_THROW(db_.Exec("UPDATE devices SET status = 'active' WHERE comm_id = 'd1'"),
               pqxx::check_violation);
}

TEST_F(PgDeviceStoreTest, DeleteRefusesADeviceWithCertificates) {
  ASSERT_TRUE(store_.Create(Dev("d1"), ctx_).ok());
  ASSERT_TRUE(store_.Create(Dev("d2"), ctx_).ok());
  db_.Exec(
      "INSERT INTO issuers (id, purpose, state, algorithm, subject, certificate_der, "
      "activated_at) VALUES ('devices-1', 'devices', 'active', 'ecdsa-p256', 'CN=x', "
      "'\\x30'::bytea, now())");
  db_.Exec(
      "INSERT INTO certificates (serial, issuer_id, kind, comm_id, subject, key_algorithm, "
      "status, not_before, not_after, der, fingerprint_sha256) VALUES ('\\x01', 'devices-1', "
      "'device', 'd1', 'CN=d1', 'ecdsa-p256', 'issued', now(), now() + interval '1 day', "
      "'\\x30', sha256('\\x30'))");
  auto st = store_.Delete("d1", std::nullopt, ctx_);
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(st.message()), HasSubstr("decommission it instead"));
  EXPECT_TRUE(store_.Get("d1").ok());
  EXPECT_EQ(store_.Delete("d2", 7, ctx_).code(), absl::StatusCode::kAborted);
  EXPECT_TRUE(store_.Delete("d2", 1, ctx_).ok());
  EXPECT_EQ(store_.Get("d2").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store_.Delete("d2", std::nullopt, ctx_).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(db_.Exec("SELECT op FROM change_log WHERE entity_key = 'd2' ORDER BY revision DESC LIMIT 1"),
            "delete");
}

TEST_F(PgDeviceStoreTest, JournalRevisionsIncreaseAndAuditEntriesChain) {
  ASSERT_TRUE(store_.Create(Dev("d1"), ctx_).ok());
  ASSERT_TRUE(store_.CreateBatch({Dev("d2"), Dev("d3")}, ctx_).ok());
  ASSERT_TRUE(store_.SetStatus("d1", DeviceStatus::kSuspended, "", std::nullopt, ctx_).ok());
  // (The device revisions only: the migrations seed revisions of their own.)
  EXPECT_EQ(db_.Exec("SELECT string_agg(entity_key, ',' ORDER BY revision) FROM change_log "
                     "WHERE entity_type = 'device'"),
            "d1,d2,d3,d1");
  EXPECT_EQ(db_.Exec("SELECT count(*) FROM audit_log"), "3");  // the batch is one entry
  // The sequencer chains them: each entry's prev_hash is the hash of the entry before it.
  EXPECT_EQ(db_.Exec("SELECT count(*) FROM audit_log WHERE chain_seq IS NULL"), "3");
  EXPECT_EQ(db_.ChainAudit(1000), 3);
  EXPECT_EQ(db_.ChainAudit(1000), 0);
  EXPECT_EQ(db_.Exec("SELECT count(*) FROM audit_log a JOIN audit_log b ON "
                     "b.chain_seq = a.chain_seq - 1 WHERE a.prev_hash = b.hash"),
            "2");
  // And the hash is recomputable from the documented canonical form.
  EXPECT_EQ(db_.Exec("SELECT a.hash = sha256(b.hash || convert_to(a.chain_seq::text || '|' || "
                     "a.id::text || '|' || "
                     "(extract(epoch FROM a.created_at) * 1000000)::bigint::text || '|' || "
                     "a.actor || '|' || a.action || '|' || a.target || '|' || a.request_id || "
                     "'|' || a.details::text, 'UTF8')) FROM audit_log a JOIN audit_log b ON "
                     "b.chain_seq = a.chain_seq - 1 ORDER BY a.chain_seq DESC LIMIT 1"),
            "t");
  EXPECT_EQ(db_.Exec("SELECT actor || ' ' || request_id FROM audit_log ORDER BY id LIMIT 1"),
            "tester req-1");
}

TEST_F(PgDeviceStoreTest, AFailedChangeWritesNothing) {
  ASSERT_TRUE(store_.Create(Dev("d1"), ctx_).ok());
  const std::string revisions = db_.Exec("SELECT count(*) FROM change_log");
  EXPECT_FALSE(store_.Update("d1", DeviceUpdate{}, 99, ctx_).ok());
  EXPECT_FALSE(store_.Create(Dev("d1"), ctx_).ok());
  EXPECT_EQ(db_.Exec("SELECT count(*) FROM change_log"), revisions);
  EXPECT_EQ(db_.Exec("SELECT count(*) FROM audit_log"), "1");
}

}  // namespace
}  // namespace fleetca::storage
