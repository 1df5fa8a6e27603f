// PgAuditStore on a real PostgreSQL: entries written by Journal, chained by the sequencer
// (fleetca_chain_audit), then tampered with in SQL the way an intruder with database access
// would, and verified in C++.
#include "storage/pg_audit_store.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "storage/journal.h"
#include "storage/pg_util.h"
#include "tests/testing/test_database.h"

namespace fleetca::storage {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

class PgAuditStoreTest : public ::testing::Test {
 protected:
  // Write journals one audit entry, as a store would (no change-log revision).
  // Journal itself adds details.resource (the entity type) and details.actor (from ctx).
  void Write(const std::string& actor, const std::string& action, const std::string& target,
             const std::string& details = "{}", const std::string& request_id = "",
             const std::string& entity = "device", RequestContext ctx = {}) {
    ctx.actor = actor;
    ctx.request_id = request_id;
    absl::Status st = db_.pool().Transact(
        "write audit", TxMode::kReadWrite, [&](pqxx::transaction_base& tx) -> absl::Status {
          JournalEntry entry{action, entity, {target}, false, details, false};
          if (target.empty()) entry.keys = {"k1", "k2"};  // several keys: target left empty
          Journal(tx, ctx, entry);
          return absl::OkStatus();
        });
    ASSERT_TRUE(st.ok()) << st;
  }
  // WriteChain writes n entries with varied content (separators, quotes, non-ASCII,
  // nested JSON) and chains them.
  void WriteChain(int n) {
    for (int i = 1; i <= n; ++i) {
      Write(i % 2 ? "alice" : "unauthenticated:ipv4:127.0.0.1:5555", "RegisterDevice",
            absl::StrCat("dev-", i),
            absl::StrCat("{\"i\": ", i, ", \"note\": \"a|b \\\"q\\\" caf\xc3\xa9\", "
                         "\"nested\": {\"z\": [1, 2], \"a\": null}}"),
            absl::StrCat("req-", i));
    }
    Chain();
  }
  void Chain() { db_.ChainAudit(1000); }
  std::string HashOf(int64_t seq) {
    return db_.Exec(absl::StrCat("SELECT encode(hash, 'hex') FROM audit_log WHERE chain_seq = ",
                                 seq));
  }
  AuditVerification MustVerify(const AuditVerifyRequest& v, AuditStore* store = nullptr) {
    auto r = (store != nullptr ? store : &store_)->Verify(v, nullptr);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : AuditVerification{};
  }
  std::vector<int64_t> Sequences(const AuditFilter& filter, int64_t after = 0,
                                 bool newest_first = false, int limit = 100) {
    auto r = store_.List(filter, after, newest_first, limit);
    EXPECT_TRUE(r.ok()) << r.status();
    std::vector<int64_t> out;
    if (r.ok()) {
      for (const auto& e : *r) out.push_back(e.sequence);
    }
    return out;
  }

  testing::TestDatabase db_;
  PgAuditStore store_{db_.pool()};
};

TEST_F(PgAuditStoreTest, IntactChainVerifiesAcrossPagesAndIgnoresUnchainedEntries) {
  WriteChain(12);  // past 9: sequences must be ordered as numbers, not text
  Write("bob", "DeleteDevice", "dev-9");  // not chained yet: not an event
  AuditVerification v = MustVerify({});
  EXPECT_TRUE(v.intact) << v.break_reason;
  EXPECT_EQ(v.events_checked, 12);
  EXPECT_EQ(v.first_break_sequence, 0);
  EXPECT_EQ(v.break_reason, "");
  EXPECT_EQ(v.last_sequence, 12);
  EXPECT_EQ(v.last_hash, HashOf(12));
  EXPECT_EQ(v.last_hash.size(), 64u);

  // Pages of 2, 5 and 12 rows (the boundary cases) give the same answer.
  for (int rows : {2, 5, 12}) {
    PgAuditStore paged(db_.pool(), rows);
    AuditVerification p = MustVerify({}, &paged);
    EXPECT_TRUE(p.intact) << rows << ": " << p.break_reason;
    EXPECT_EQ(p.events_checked, 12) << rows;
    EXPECT_EQ(p.last_hash, v.last_hash) << rows;
  }
  // The C++ hash is the sequencer's.
  EXPECT_EQ(db_.Exec("SELECT count(*) FROM audit_log WHERE chain_seq IS NOT NULL"), "12");
}

TEST_F(PgAuditStoreTest, EmptyLogIsIntact) {
  AuditVerification v = MustVerify({});
  EXPECT_TRUE(v.intact);
  EXPECT_EQ(v.events_checked, 0);
  EXPECT_EQ(v.last_sequence, 0);
  EXPECT_EQ(v.last_hash, "");
}

TEST_F(PgAuditStoreTest, EditedDetailsAreAHashMismatchAtThatSequence) {
  WriteChain(5);
  db_.Exec("UPDATE audit_log SET details = details || '{\"i\": 99}' WHERE chain_seq = 3");
  for (int rows : {2, 5000}) {
    PgAuditStore paged(db_.pool(), rows);
    AuditVerification v = MustVerify({}, &paged);
    EXPECT_FALSE(v.intact);
    EXPECT_EQ(v.first_break_sequence, 3);
    EXPECT_EQ(v.break_reason, "hash mismatch");
    EXPECT_EQ(v.events_checked, 2);
    EXPECT_EQ(v.last_sequence, 2);
    EXPECT_EQ(v.last_hash, HashOf(2));
  }
}

TEST_F(PgAuditStoreTest, EditedActorOrTimeIsAHashMismatch) {
  WriteChain(4);
  db_.Exec("UPDATE audit_log SET actor = 'mallory' WHERE chain_seq = 2");
  AuditVerification v = MustVerify({});
  EXPECT_FALSE(v.intact);
  EXPECT_EQ(v.first_break_sequence, 2);
  EXPECT_EQ(v.break_reason, "hash mismatch");

  // Put back, the chain is intact again; a time moved by one microsecond is not.
  db_.Exec("UPDATE audit_log SET actor = 'unauthenticated:ipv4:127.0.0.1:5555' WHERE chain_seq = 2");
  EXPECT_TRUE(MustVerify({}).intact);
  db_.Exec("UPDATE audit_log SET created_at = created_at + interval '1 microsecond' "
           "WHERE chain_seq = 4");
  v = MustVerify({});
  EXPECT_EQ(v.first_break_sequence, 4);
  EXPECT_EQ(v.break_reason, "hash mismatch");
}

TEST_F(PgAuditStoreTest, AnEditWithItsHashRecomputedBreaksTheNextLink) {
  WriteChain(4);
  db_.Exec("UPDATE audit_log SET action = 'GetDevice', hash = sha256(coalesce(prev_hash, '') || "
           "convert_to(chain_seq::text || '|' || id::text || '|' || "
           "(extract(epoch FROM created_at) * 1000000)::bigint::text || '|' || actor || '|' || "
           "'GetDevice' || '|' || target || '|' || request_id || '|' || details::text, 'UTF8')) "
           "WHERE chain_seq = 2");
  AuditVerification v = MustVerify({});
  EXPECT_FALSE(v.intact);
  EXPECT_EQ(v.first_break_sequence, 3);
  EXPECT_EQ(v.break_reason, "previous_hash mismatch");
  EXPECT_EQ(v.events_checked, 2);
}

TEST_F(PgAuditStoreTest, DeletedMiddleRowIsASequenceGap) {
  WriteChain(5);
  db_.Exec("DELETE FROM audit_log WHERE chain_seq = 3");
  for (int rows : {2, 5000}) {
    PgAuditStore paged(db_.pool(), rows);
    AuditVerification v = MustVerify({}, &paged);
    EXPECT_FALSE(v.intact);
    EXPECT_EQ(v.first_break_sequence, 4);
    EXPECT_EQ(v.break_reason, "sequence gap after 2");
    EXPECT_EQ(v.events_checked, 2);
    EXPECT_EQ(v.last_sequence, 2);
  }
  // Renumbering the rest to hide the gap breaks the link instead.
  db_.Exec("UPDATE audit_log SET chain_seq = chain_seq - 1 WHERE chain_seq > 3");
  AuditVerification v = MustVerify({});
  EXPECT_FALSE(v.intact);
  EXPECT_EQ(v.first_break_sequence, 3);
  EXPECT_EQ(v.break_reason, "previous_hash mismatch");
}

TEST_F(PgAuditStoreTest, DeletedFirstRowIsAGapAfterZero) {
  WriteChain(3);
  db_.Exec("DELETE FROM audit_log WHERE chain_seq = 1");
  AuditVerification v = MustVerify({});
  EXPECT_FALSE(v.intact);
  EXPECT_EQ(v.first_break_sequence, 2);
  EXPECT_EQ(v.break_reason, "sequence gap after 0");
  EXPECT_EQ(v.events_checked, 0);
  EXPECT_EQ(v.last_hash, "");
}

TEST_F(PgAuditStoreTest, DeletedTailIsCaughtByTheAnchor) {
  WriteChain(5);
  AuditVerification before = MustVerify({});
  ASSERT_TRUE(before.intact);
  const AuditVerifyRequest anchored{0, 0, before.last_sequence, before.last_hash};
  EXPECT_TRUE(MustVerify(anchored).intact);
  // Upper-case hex is the same hash.
  EXPECT_TRUE(MustVerify({0, 0, 5, absl::AsciiStrToUpper(before.last_hash)}).intact);

  db_.Exec("DELETE FROM audit_log WHERE chain_seq >= 4");
  // Without the anchor a truncated tail looks like a shorter log...
  AuditVerification v = MustVerify({});
  EXPECT_TRUE(v.intact);
  EXPECT_EQ(v.events_checked, 3);
  // ...with it, it does not.
  v = MustVerify(anchored);
  EXPECT_FALSE(v.intact);
  EXPECT_EQ(v.first_break_sequence, 4);
  EXPECT_EQ(v.break_reason, "sequence gap after 3: anchor_sequence 5 not found");
  EXPECT_EQ(v.events_checked, 3);
  EXPECT_EQ(v.last_sequence, 3);

  // A tail rewritten from scratch: new entries get the old sequence numbers, but not the
  // anchored hash.
  Write("mallory", "RegisterDevice", "dev-4");
  Write("mallory", "RegisterDevice", "dev-5");
  Chain();
  v = MustVerify(anchored);
  EXPECT_FALSE(v.intact);
  EXPECT_EQ(v.first_break_sequence, 5);
  EXPECT_EQ(v.break_reason, "hash differs from the anchor");
  EXPECT_EQ(v.events_checked, 4);
}

TEST_F(PgAuditStoreTest, RangesAndTheirEdges) {
  WriteChain(6);
  AuditVerification v = MustVerify({2, 4, 0, ""});
  EXPECT_TRUE(v.intact) << v.break_reason;
  EXPECT_EQ(v.events_checked, 3);
  EXPECT_EQ(v.last_sequence, 4);
  EXPECT_EQ(v.last_hash, HashOf(4));
  v = MustVerify({4, 0, 0, ""});
  EXPECT_EQ(v.events_checked, 3);
  EXPECT_EQ(v.last_sequence, 6);
  v = MustVerify({0, 2, 2, HashOf(2)});
  EXPECT_TRUE(v.intact);
  EXPECT_EQ(v.events_checked, 2);
  v = MustVerify({6, 6, 0, ""});
  EXPECT_TRUE(v.intact);
  EXPECT_EQ(v.events_checked, 1);

  // A break outside the range is not reported; the first event of a range must still link
  // to the stored hash of the event before it.
  db_.Exec("UPDATE audit_log SET details = '{}' WHERE chain_seq = 1");
  EXPECT_TRUE(MustVerify({2, 0, 0, ""}).intact);
  EXPECT_FALSE(MustVerify({1, 0, 0, ""}).intact);
  db_.Exec("UPDATE audit_log SET hash = sha256('x') WHERE chain_seq = 3");
  v = MustVerify({4, 0, 0, ""});
  EXPECT_FALSE(v.intact);
  EXPECT_EQ(v.first_break_sequence, 4);
  EXPECT_EQ(v.break_reason, "previous_hash mismatch");
  // The event before the range gone: nothing to compare with, the range itself is intact.
  db_.Exec("DELETE FROM audit_log WHERE chain_seq = 3");
  EXPECT_TRUE(MustVerify({4, 0, 0, ""}).intact);

  // Asking beyond the end of the log.
  v = MustVerify({0, 9, 0, ""});
  EXPECT_FALSE(v.intact);
  v = MustVerify({4, 9, 0, ""});
  EXPECT_FALSE(v.intact);
  EXPECT_EQ(v.first_break_sequence, 7);
  EXPECT_EQ(v.break_reason, "sequence gap after 6: to_sequence 9 not found");
  EXPECT_EQ(v.events_checked, 3);
  v = MustVerify({8, 0, 0, ""});
  EXPECT_FALSE(v.intact);
  EXPECT_EQ(v.first_break_sequence, 7);
  EXPECT_EQ(v.break_reason, "sequence gap after 6: from_sequence 8 not found");
  EXPECT_EQ(v.events_checked, 0);
}

TEST_F(PgAuditStoreTest, InvalidRequestsNameTheField) {
  WriteChain(3);
  const std::string h = HashOf(2);
  struct Case {
    AuditVerifyRequest request;
    std::string field;
  };
  const std::vector<Case> cases = {
      {{-1, 0, 0, ""}, "from_sequence"},
      {{0, -1, 0, ""}, "to_sequence"},
      {{3, 2, 0, ""}, "to_sequence"},
      {{0, 0, -2, h}, "anchor_sequence"},
      {{0, 0, 0, h}, "anchor_sequence"},
      {{0, 0, 2, ""}, "anchor_hash"},
      {{0, 0, 2, h.substr(1)}, "anchor_hash"},
      {{0, 0, 2, h.substr(2) + "zz"}, "anchor_hash"},
      {{3, 0, 2, h}, "anchor_sequence"},
      {{0, 1, 2, h}, "anchor_sequence"},
  };
  for (const Case& c : cases) {
    auto r = store_.Verify(c.request, nullptr);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << c.field;
    EXPECT_THAT(std::string(r.status().message()), ::testing::StartsWith(c.field + ":"));
  }
}

TEST_F(PgAuditStoreTest, ListMapsReservedDetailsKeys) {
  RequestContext caller;
  caller.role = "admin";
  caller.actor_serial = "0f";
  caller.actor_issuer = "operators-1";
  caller.peer = "ipv4:192.0.2.7:51234";
  Write("station-1", "RevokeCertificate", "devices-1/0a1b",
        "{\"code\": 7, \"message\": \"denied\", \"reason\": \"KEY_COMPROMISE\", "
        "\"list\": [1, \"a b\"], \"obj\": {\"k\": {\"v\": true}}, \"n\": 12.5, "
        "\"nothing\": null}",
        "req-7", "certificate", caller);
  // Reserved keys of another shape are details (written in SQL: Journal sets them itself).
  db_.Exec("SELECT fleetca_append_audit('x', 'fleetca-server init', '', '', "
           "'{\"actor\": \"root\", \"code\": \"7\", \"resource\": 5}'::jsonb)");
  Chain();
  auto r = store_.List({}, 0, false, 10);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->size(), 2u);
  const AuditEntry& e = (*r)[0];
  EXPECT_EQ(e.sequence, 1);
  EXPECT_EQ(e.actor, "station-1");
  EXPECT_EQ(e.actor_role, "admin");
  EXPECT_EQ(e.actor_serial, "0f");
  EXPECT_EQ(e.actor_issuer, "operators-1");
  EXPECT_EQ(e.actor_peer, "ipv4:192.0.2.7:51234");
  EXPECT_EQ(e.action, "RevokeCertificate");
  EXPECT_EQ(e.resource_type, "certificate");
  EXPECT_EQ(e.resource_id, "devices-1/0a1b");
  EXPECT_EQ(e.request_id, "req-7");
  EXPECT_EQ(e.code, 7);
  EXPECT_EQ(e.message, "denied");
  EXPECT_EQ(e.details, (std::map<std::string, std::string>{{"reason", "KEY_COMPROMISE"},
                                                           {"list", "[1,\"a b\"]"},
                                                           {"obj", "{\"k\":{\"v\":true}}"},
                                                           {"n", "12.5"},
                                                           {"nothing", "null"}}));
  EXPECT_EQ(e.previous_hash, "");
  EXPECT_EQ(e.hash, HashOf(1));
  EXPECT_GT(e.time, absl::Now() - absl::Minutes(5));

  const AuditEntry& f = (*r)[1];
  EXPECT_EQ(f.actor_role, "");
  EXPECT_EQ(f.code, 0);
  EXPECT_EQ(f.resource_type, "");
  EXPECT_EQ(f.resource_id, "");
  EXPECT_EQ(f.details, (std::map<std::string, std::string>{
                           {"actor", "root"}, {"code", "7"}, {"resource", "5"}}));
  EXPECT_EQ(f.previous_hash, e.hash);
}

TEST_F(PgAuditStoreTest, ListFiltersPagesAndOrders) {
  Write("alice", "RegisterDevice", "d1", "{}", "r1", "device");
  Write("bob", "RegisterDevice", "d2", "{}", "r2", "device");
  Write("alice", "DeleteDevice", "d1", "{\"code\": 0}", "r3", "device");
  Write("bob", "RegisterBroker", "b1",
        "{\"code\": 7, \"message\": \"no\"}", "r4", "broker");
  Write("alice", "RevokeCertificate", "i/01", "{}", "r5", "revocation");
  Write("carol", "Unchained", "x");
  // Times 2020-01-01 + sequence days, set before chaining (as if written then).
  db_.Exec("UPDATE audit_log SET created_at = timestamptz '2020-01-01 00:00:00+00' + "
           "id * interval '1 day' WHERE actor <> 'carol'");
  db_.ChainAudit(5);
  const int64_t first_id = std::stoll(db_.Exec("SELECT min(id) FROM audit_log"));
  auto day = [&](int seq) {
    return absl::FromCivil(absl::CivilDay(2020, 1, 1), absl::UTCTimeZone()) +
           absl::Hours(24) * (first_id + seq - 1);
  };

  EXPECT_THAT(Sequences({}), ElementsAre(1, 2, 3, 4, 5));
  AuditFilter f;
  f.actor = "alice";
  EXPECT_THAT(Sequences(f), ElementsAre(1, 3, 5));
  f = {};
  f.actions = {"RegisterDevice", "RegisterBroker"};
  EXPECT_THAT(Sequences(f), ElementsAre(1, 2, 4));
  f = {};
  f.resource_types = {"device"};
  EXPECT_THAT(Sequences(f), ElementsAre(1, 2, 3));
  f.resource_id = "d1";
  EXPECT_THAT(Sequences(f), ElementsAre(1, 3));
  f = {};
  f.request_id = "r4";
  EXPECT_THAT(Sequences(f), ElementsAre(4));
  f = {};
  f.failures_only = true;
  EXPECT_THAT(Sequences(f), ElementsAre(4));
  f = {};
  f.start_time = day(2);
  f.end_time = day(4);
  EXPECT_THAT(Sequences(f), ElementsAre(2, 3));
  f.end_time = day(4) + absl::Microseconds(1);
  EXPECT_THAT(Sequences(f), ElementsAre(2, 3, 4));
  f.start_time = day(2) + absl::Microseconds(1);
  EXPECT_THAT(Sequences(f), ElementsAre(3, 4));
  f = {};
  f.actor = "alice";
  f.actions = {"RegisterDevice"};
  EXPECT_THAT(Sequences(f), ElementsAre(1));
  f.actor = "nobody";
  EXPECT_THAT(Sequences(f), IsEmpty());

  // Keyset pages, both ways.
  EXPECT_THAT(Sequences({}, 0, false, 2), ElementsAre(1, 2));
  EXPECT_THAT(Sequences({}, 2, false, 2), ElementsAre(3, 4));
  EXPECT_THAT(Sequences({}, 4, false, 2), ElementsAre(5));
  EXPECT_THAT(Sequences({}, 0, true, 2), ElementsAre(5, 4));
  EXPECT_THAT(Sequences({}, 4, true, 2), ElementsAre(3, 2));
  EXPECT_THAT(Sequences({}, 2, true, 2), ElementsAre(1));
  f = {};
  f.actor = "alice";
  EXPECT_THAT(Sequences(f, 0, true, 100), ElementsAre(5, 3, 1));
}

}  // namespace
}  // namespace fleetca::storage
