// PgCrlStore against a real PostgreSQL: what the builder reads (every revocation, or only
// the changed ones through crl_changes), numbering, and the DER stored after the number.
#include "storage/pg_crl_store.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <set>

#include "absl/strings/str_cat.h"
#include "tests/testing/test_database.h"

namespace fleetca::storage {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

class PgCrlStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    db_.Exec(
        "INSERT INTO issuers (id, purpose, state, algorithm, subject, certificate_der, "
        "activated_at) VALUES ('devices-1', 'devices', 'active', 'ecdsa-p256', 'CN=x', "
        "'\\x30'::bytea, now())");
    db_.Exec("INSERT INTO devices (comm_id) VALUES ('dev-1')");
    // Certificates 01..05 live, 09 expired.
    for (const char* serial : {"01", "02", "03", "04", "05", "09"}) {
      db_.Exec(absl::StrCat(
          "INSERT INTO certificates (serial, issuer_id, kind, comm_id, subject, key_algorithm, "
          "status, not_before, not_after, der, fingerprint_sha256) VALUES ('\\x", serial,
          "', 'devices-1', 'device', 'dev-1', 'CN=dev-1', 'ecdsa-p256', 'issued', "
          "now() - interval '2 days', now() + interval '",
          std::string(serial) == "09" ? "-1 day" : "1 day", "', '\\x30', sha256('\\x", serial,
          "'))"));
    }
  }

  void Revoke(const std::string& serial, int reason) {
    db_.Exec(absl::StrCat("INSERT INTO revocations (serial, issuer_id, reason, revision) VALUES "
                          "('\\x", serial, "', 'devices-1', ", reason, ", 1) ",
                          "ON CONFLICT (serial, issuer_id) DO UPDATE SET reason = excluded.reason"));
  }

  // Build runs BuildIfNeeded until this test's builder gets the lock (tests in other
  // schemas of the same database may hold it for a moment), and keeps what build saw.
  bool Build(int64_t known, CrlKind wanted = CrlKind::kComplete) {
    for (int attempt = 0; attempt < 100; ++attempt) {
      bool decided = false;
      auto built = store_.BuildIfNeeded(
          "devices-1", known,
          [&](const CrlWork& work) {
            decided = true;
            work_ = work;
            return wanted;
          },
          [&](int64_t number, CrlEntryChanges& changes) -> absl::StatusOr<CrlStore::Built> {
            number_ = number;
            seen_ = changes;
            CrlStore::Built b;
            b.entries = static_cast<int>(changes.entries.size());
            b.this_update = absl::FromUnixSeconds(absl::ToUnixSeconds(absl::Now()));
            b.next_update = b.this_update + absl::Hours(24);
            return b;
          });
      EXPECT_TRUE(built.ok()) << built.status();
      if (!built.ok()) return false;
      if (decided) return *built;
      absl::SleepFor(absl::Milliseconds(50));
    }
    ADD_FAILURE() << "the builder lock stayed taken";
    return false;
  }

  static std::set<std::string> Serials(const CrlEntryChanges& c) {
    std::set<std::string> out;
    for (const CrlEntryRow& e : c.entries) out.insert(e.serial);
    return out;
  }

  testing::TestDatabase db_;
  PgCrlStore store_{db_.pool()};
  CrlWork work_;
  int64_t number_ = 0;
  CrlEntryChanges seen_;
};

TEST_F(PgCrlStoreTest, FirstBuildReadsEveryLiveRevocationAndNumbersFromOne) {
  Revoke("01", 1);
  Revoke("02", 6);  // on hold: listed (certificateHold)
  Revoke("09", 1);  // expired: left out
  ASSERT_TRUE(Build(-1));
  EXPECT_FALSE(work_.latest.has_value());
  EXPECT_EQ(work_.changes, 3);
  EXPECT_EQ(number_, 1);
  EXPECT_TRUE(seen_.full);
  EXPECT_EQ(seen_.changes, 3);
  EXPECT_THAT(Serials(seen_), UnorderedElementsAre("\x01", "\x02"));
  for (const CrlEntryRow& e : seen_.entries) {
    EXPECT_EQ(e.reason, e.serial == "\x01" ? 1 : 6);
    EXPECT_GT(e.not_after, absl::Now());
  }

  // Numbered, not stored: no replica serves it yet.
  EXPECT_EQ(store_.Latest("devices-1", false, true).status().code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(store_.StoreDer("devices-1", 1, "DER-1").ok());
  auto latest = store_.Latest("devices-1", false, true);
  ASSERT_TRUE(latest.ok()) << latest.status();
  EXPECT_EQ(latest->crl_number, 1);
  EXPECT_EQ(latest->der, "DER-1");
  EXPECT_EQ(latest->entries, 2);
  EXPECT_EQ(latest->changes, 3);
  EXPECT_TRUE(latest->der_stored);
  EXPECT_EQ(store_.Latest("devices-1", false, false)->der, "");
}

TEST_F(PgCrlStoreTest, LaterBuildsReadOnlyWhatChanged) {
  Revoke("01", 1);
  Revoke("02", 6);
  ASSERT_TRUE(Build(-1));
  const int64_t known = seen_.changes;

  Revoke("03", 4);                                              // new
  Revoke("02", 1);                                              // hold -> revoked
  db_.Exec("DELETE FROM revocations WHERE serial = '\\x02'");   // ... and gone (as a release)
  Revoke("04", 6);
  db_.Exec("DELETE FROM revocations WHERE serial = '\\x04'");   // hold released
  ASSERT_TRUE(Build(known));
  EXPECT_EQ(number_, 2);  // numbered after the unstored 1
  EXPECT_FALSE(seen_.full);
  EXPECT_EQ(seen_.changes, known + 5);
  EXPECT_THAT(Serials(seen_), ElementsAre("\x03"));
  EXPECT_EQ(seen_.entries[0].reason, 4);
  EXPECT_THAT(std::set<std::string>(seen_.removed.begin(), seen_.removed.end()),
              UnorderedElementsAre("\x02", "\x04"));
  // The newest numbered CRL is what the builder compares with, stored or not.
  ASSERT_TRUE(work_.latest.has_value());
  EXPECT_EQ(work_.latest->crl_number, 1);
  EXPECT_FALSE(work_.latest->der_stored);

  // Nothing changed since: nothing read, and decide may say no.
  ASSERT_TRUE(Build(seen_.changes));
  EXPECT_FALSE(seen_.full);
  EXPECT_THAT(seen_.entries, IsEmpty());
  EXPECT_THAT(seen_.removed, IsEmpty());
  EXPECT_FALSE(Build(seen_.changes, CrlKind::kNone));
  EXPECT_EQ(number_, 3);
}

TEST_F(PgCrlStoreTest, ABuilderBehindTheChangeLogReadsEverything) {
  Revoke("01", 1);
  ASSERT_TRUE(Build(-1));
  const int64_t known = seen_.changes;
  Revoke("02", 1);
  Revoke("03", 1);
  db_.Exec("DELETE FROM crl_changes WHERE change = " + std::to_string(known + 1));  // pruned
  ASSERT_TRUE(Build(known));
  EXPECT_TRUE(seen_.full);
  EXPECT_THAT(Serials(seen_), UnorderedElementsAre("\x01", "\x02", "\x03"));
  // A count from another database (known ahead of it): everything too.
  ASSERT_TRUE(Build(seen_.changes + 10));
  EXPECT_TRUE(seen_.full);
}

TEST_F(PgCrlStoreTest, StoringKeepsTheNewestThree) {
  for (int i = 1; i <= 5; ++i) {
    Revoke(absl::StrCat("0", i), 1);
    ASSERT_TRUE(Build(-1));
    ASSERT_TRUE(store_.StoreDer("devices-1", number_, absl::StrCat("DER-", number_)).ok());
  }
  EXPECT_EQ(db_.Exec("SELECT string_agg(crl_number::text, ',' ORDER BY crl_number) FROM crls"),
            "3,4,5");
  EXPECT_EQ(db_.Exec("SELECT string_agg(crl_number::text, ',' ORDER BY crl_number) FROM crl_ders"),
            "3,4,5");
  EXPECT_EQ(store_.Latest("devices-1", false, true)->der, "DER-5");
}

TEST_F(PgCrlStoreTest, DeltaCrlsShareTheNumbersAndNameTheirBase) {
  Revoke("01", 1);
  ASSERT_TRUE(Build(-1));  // complete 1
  ASSERT_TRUE(store_.StoreDer("devices-1", 1, "FULL-1").ok());
  Revoke("02", 1);
  ASSERT_TRUE(Build(seen_.changes, CrlKind::kDelta));
  EXPECT_EQ(number_, 2);
  EXPECT_FALSE(seen_.full);
  EXPECT_THAT(Serials(seen_), ElementsAre("\x02"));
  ASSERT_TRUE(store_.StoreDer("devices-1", 2, "DELTA-2").ok());
  ASSERT_TRUE(Build(seen_.changes, CrlKind::kDelta));  // delta 3, not stored yet
  ASSERT_TRUE(work_.latest.has_value() && work_.latest_delta.has_value());
  EXPECT_EQ(work_.latest->crl_number, 1);
  EXPECT_EQ(work_.latest->base_crl_number, 0);
  EXPECT_EQ(work_.latest_delta->crl_number, 2);
  EXPECT_EQ(work_.latest_delta->base_crl_number, 1);

  // Each kind is served on its own: the newest stored.
  auto complete = store_.Latest("devices-1", false, true);
  ASSERT_TRUE(complete.ok()) << complete.status();
  EXPECT_EQ(complete->der, "FULL-1");
  auto delta = store_.Latest("devices-1", true, true);
  ASSERT_TRUE(delta.ok()) << delta.status();
  EXPECT_EQ(delta->crl_number, 2);
  EXPECT_EQ(delta->base_crl_number, 1);
  EXPECT_EQ(delta->der, "DELTA-2");

  // Many deltas later, the complete CRL they update is still kept (the newest three of
  // each kind are), and so is its DER.
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(Build(seen_.changes, CrlKind::kDelta));
    ASSERT_TRUE(store_.StoreDer("devices-1", number_, absl::StrCat("DELTA-", number_)).ok());
  }
  EXPECT_EQ(number_, 8);
  EXPECT_EQ(db_.Exec("SELECT string_agg(crl_number || ':' || coalesce(base_crl_number, 0), ',' "
                     "ORDER BY crl_number) FROM crls"),
            "1:0,6:1,7:1,8:1");
  EXPECT_EQ(db_.Exec("SELECT string_agg(crl_number::text, ',' ORDER BY crl_number) FROM crl_ders"),
            "1,6,7,8");
  EXPECT_EQ(store_.Latest("devices-1", false, true)->der, "FULL-1");
  EXPECT_EQ(store_.Latest("devices-1", true, true)->der, "DELTA-8");
  // Brokers' sync streams follow complete CRLs: each stored one is a 'crl' change (a CRL
  // re-issued before its nextUpdate too), delta CRLs are not.
  EXPECT_EQ(db_.Exec("SELECT count(*) FROM change_log WHERE entity_type = 'crl' "
                     "AND entity_key = 'devices-1'"),
            "1");
  ASSERT_TRUE(Build(seen_.changes, CrlKind::kComplete));  // nothing revoked since: re-issued
  ASSERT_TRUE(store_.StoreDer("devices-1", number_, "FULL-9").ok());
  EXPECT_EQ(db_.Exec("SELECT count(*) FROM change_log WHERE entity_type = 'crl' "
                     "AND entity_key = 'devices-1'"),
            "2");
  // A delta with no complete CRL to update is refused before anything is read.
  db_.Exec("DELETE FROM crls WHERE base_crl_number IS NULL");
  bool built = true;
  for (int attempt = 0; attempt < 100 && built; ++attempt) {
    auto r = store_.BuildIfNeeded(
        "devices-1", -1, [](const CrlWork&) { return CrlKind::kDelta; },
        [](int64_t, CrlEntryChanges&) -> absl::StatusOr<CrlStore::Built> {
          return absl::InternalError("not reached");
        });
    if (r.ok() && !*r) {  // the lock was taken by another test: again
      absl::SleepFor(absl::Milliseconds(50));
      continue;
    }
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInternal);
    built = false;
  }
}

}  // namespace
}  // namespace fleetca::storage
