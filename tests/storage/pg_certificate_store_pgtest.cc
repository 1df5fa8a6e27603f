#include "storage/pg_certificate_store.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "storage/pg_audit_store.h"
#include "storage/pg_change_log.h"
#include "storage/pg_device_store.h"
#include "tests/testing/test_database.h"

namespace fleetca::storage {
namespace {

using ::testing::HasSubstr;

class PgCertificateStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Device d;
    d.comm_id = "dev-1";
    ASSERT_TRUE(devices_.Create(d, ctx_).ok());
    db_.Exec(
        "INSERT INTO issuers (id, purpose, state, algorithm, subject, certificate_der, "
        "activated_at) VALUES ('devices-1', 'devices', 'active', 'ecdsa-p256', 'CN=x', "
        "'\\x30'::bytea, now())");
  }

  CertificateRecord Record(const std::string& serial, const std::string& request_id) {
    CertificateRecord r;
    r.serial = serial;
    r.issuer_id = "devices-1";
    r.kind = CertificateKind::kDevice;
    r.comm_id = "dev-1";
    r.subject = "CN=dev-1";
    r.key_algorithm = "ecdsa-p256";
    r.profile = "device";
    r.not_before = absl::Now() - absl::Minutes(5);
    r.not_after = absl::Now() + absl::Hours(24);
    r.request_id = request_id;
    r.csr_sha256 = std::string(32, 'c');
    return r;
  }

  testing::TestDatabase db_;
  PgDeviceStore devices_{db_.pool()};
  PgCertificateStore store_{db_.pool()};
  RequestContext ctx_ = RequestContext::Local("tester");
};

TEST_F(PgCertificateStoreTest, IssueCommitsTheSignedCertificate) {
  int signs = 0;
  auto out = store_.Issue(Record("\x01\x02", "r1"), [&]() -> absl::StatusOr<std::string> {
    ++signs;
    return std::string("DER-1");
  }, ctx_);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_FALSE(out->replayed);
  EXPECT_EQ(signs, 1);
  EXPECT_EQ(out->record.status, CertificateStatus::kIssued);
  EXPECT_EQ(out->record.der, "DER-1");
  EXPECT_EQ(out->record.fingerprint.size(), 32u);
  auto got = store_.GetBySerial("\x01\x02");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->der, "DER-1");
  EXPECT_TRUE(store_.GetByFingerprint(out->record.fingerprint).ok());
  // Audited, and one change-log revision (brokers learn of new certificates by it).
  EXPECT_EQ(db_.Exec("SELECT string_agg(entity_key || ':' || array_to_string(entity_keys, ','), "
                     "' ') FROM change_log WHERE entity_type = 'certificate'"),
            "0102:0102");
  EXPECT_EQ(db_.Exec("SELECT action || ' ' || target FROM audit_log ORDER BY id DESC LIMIT 1"),
            "IssueCertificate 0102");
}

TEST_F(PgCertificateStoreTest, ARetryReturnsTheFirstCertificateWithoutSigning) {
  ASSERT_TRUE(store_.Issue(Record("\x01", "r1"), [] { return absl::StatusOr<std::string>("A"); }, ctx_).ok());
  int signs = 0;
  auto again = store_.Issue(Record("\x02", "r1"), [&]() -> absl::StatusOr<std::string> {
    ++signs;
    return std::string("B");
  }, ctx_);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_TRUE(again->replayed);
  EXPECT_EQ(signs, 0);
  EXPECT_EQ(again->record.serial, "\x01");
  EXPECT_EQ(db_.Exec("SELECT count(*) FROM certificates"), "1");
}

TEST_F(PgCertificateStoreTest, ConcurrentRetriesYieldOneCertificate) {
  constexpr int kClients = 8;
  std::atomic<int> signs{0};
  std::vector<absl::StatusOr<IssueOutcome>> outs(kClients, absl::UnknownError("not run"));
  std::vector<std::thread> threads;
  for (int i = 0; i < kClients; ++i) {
    threads.emplace_back([&, i] {
      outs[i] = store_.Issue(Record(std::string(1, static_cast<char>(0x10 + i)), "same"),
                             [&]() -> absl::StatusOr<std::string> {
                               ++signs;
                               absl::SleepFor(absl::Milliseconds(50));  // widen the race
                               return std::string("DER");
                             },
                             ctx_);
    });
  }
  for (auto& t : threads) t.join();
  std::set<std::string> serials;
  int fresh = 0;
  for (const auto& o : outs) {
    ASSERT_TRUE(o.ok()) << o.status();
    serials.insert(o->record.serial);
    if (!o->replayed) ++fresh;
  }
  EXPECT_EQ(serials.size(), 1u);
  EXPECT_EQ(fresh, 1);
  EXPECT_EQ(signs.load(), 1);
  EXPECT_EQ(db_.Exec("SELECT count(*) FROM certificates"), "1");
}

TEST_F(PgCertificateStoreTest, TheDeviceMustBeRegisteredAndActive) {
  int signs = 0;
  auto sign = [&]() -> absl::StatusOr<std::string> {
    ++signs;
    return std::string("DER");
  };
  CertificateRecord unknown = Record("\x01", "r1");
  unknown.comm_id = "nope";
  EXPECT_EQ(store_.Issue(unknown, sign, ctx_).status().code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(devices_.SetStatus("dev-1", DeviceStatus::kSuspended, "", std::nullopt, ctx_).ok());
  auto st = store_.Issue(Record("\x02", "r2"), sign, ctx_).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(st.message()), HasSubstr("suspended"));
  EXPECT_EQ(signs, 0);
  EXPECT_EQ(db_.Exec("SELECT count(*) FROM certificates"), "0");
}

TEST_F(PgCertificateStoreTest, ASigningFailureLeavesNothing) {
  auto st = store_.Issue(Record("\x01", "r1"),
                         [] { return absl::StatusOr<std::string>(absl::InternalError("hsm down")); },
                         ctx_).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kInternal);
  EXPECT_EQ(db_.Exec("SELECT count(*) FROM certificates"), "0");
  EXPECT_EQ(db_.Exec("SELECT count(*) FROM audit_log WHERE action = 'IssueCertificate'"), "0");
  // The request id is free again: the retry succeeds.
  EXPECT_TRUE(store_.Issue(Record("\x01", "r1"), [] { return absl::StatusOr<std::string>("D"); }, ctx_).ok());
}

TEST_F(PgCertificateStoreTest, ListFiltersAndPagesBySerial) {
  for (int i = 1; i <= 5; ++i) {
    CertificateRecord r = Record(std::string(1, static_cast<char>(i)), absl::StrCat("r", i));
    if (i == 5) r.not_after = absl::Now() + absl::Hours(24 * 400);
    const std::string der = absl::StrCat("DER-", i);  // distinct: fingerprints are unique
    ASSERT_TRUE(store_.Issue(r, [&] { return absl::StatusOr<std::string>(der); }, ctx_).ok());
  }
  CertificateFilter all;
  auto first = store_.List(all, {}, 2);
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_EQ(first->size(), 2u);
  EXPECT_EQ((*first)[1].serial, "\x02");  // issued second
  const CertificateRecord& last = (*first)[1];
  auto rest = store_.List(all, {absl::ToUnixMicros(last.create_time), last.serial}, 10);
  ASSERT_EQ(rest->size(), 3u);
  EXPECT_EQ((*rest)[0].serial, "\x03");
  CertificateFilter late;
  late.expires_after = absl::Now() + absl::Hours(24 * 300);
  auto late_ones = store_.List(late, {}, 10);
  ASSERT_EQ(late_ones->size(), 1u);
  EXPECT_EQ((*late_ones)[0].serial, "\x05");
  CertificateFilter other;
  other.comm_id = "someone-else";
  EXPECT_TRUE(store_.List(other, {}, 10)->empty());
}

// Concurrent issuances are stored by group commits: each keeps its own outcome, and one
// item the database refuses fails alone.
TEST_F(PgCertificateStoreTest, GroupCommitKeepsOutcomesApart) {
  constexpr int kClients = 24;
  std::vector<absl::Status> results(kClients);
  std::vector<std::thread> threads;
  for (int i = 0; i < kClients; ++i) {
    threads.emplace_back([&, i] {
      CertificateRecord r = Record(std::string(1, static_cast<char>(0x20 + i)), absl::StrCat("g", i));
      if (i == 7) r.csr_sha256 = "short";  // violates a CHECK constraint
      const std::string der = absl::StrCat("DER-g", i);
      results[i] = store_.Issue(r, [&]() -> absl::StatusOr<std::string> {
        absl::SleepFor(absl::Milliseconds(20));  // let the calls meet in batches
        return der;
      }, ctx_).status();
    });
  }
  for (auto& t : threads) t.join();
  for (int i = 0; i < kClients; ++i) {
    if (i == 7) {
      EXPECT_FALSE(results[i].ok());
    } else {
      EXPECT_TRUE(results[i].ok()) << i << ": " << results[i];
    }
  }
  EXPECT_EQ(db_.Exec("SELECT count(*) FROM certificates"), std::to_string(kClients - 1));
  EXPECT_EQ(db_.Exec("SELECT count(*) FROM audit_log WHERE action = 'IssueCertificate'"),
            std::to_string(kClients - 1));
  EXPECT_EQ(db_.Exec("SELECT count(*) FROM certificates WHERE request_id = 'g7'"), "0");
  // One change-log revision per batch; read back, every certificate issued is one change,
  // each exactly once, and a batch's changes share its revision.
  const int rows = std::stoi(
      db_.Exec("SELECT count(*) FROM change_log WHERE entity_type = 'certificate'"));
  // (The batch holding g7's CHECK violation is retried one call at a time.)
  EXPECT_GE(rows, 1);
  EXPECT_LE(rows, kClients - 1);
  PgChangeLogReader log(db_.pool());
  auto changes = log.After(0, 1000);
  ASSERT_TRUE(changes.ok()) << changes.status();
  std::set<std::string> keys;
  std::set<int64_t> revisions;
  for (const ChangeRow& c : *changes) {
    if (c.entity_type != "certificate") continue;
    EXPECT_TRUE(keys.insert(c.key).second) << c.key;
    revisions.insert(c.revision);
  }
  EXPECT_EQ(keys.size(), static_cast<size_t>(kClients - 1));
  EXPECT_EQ(revisions.size(), static_cast<size_t>(rows));
  // A page boundary never splits a revision: one revision at a time gives the same keys.
  std::set<std::string> paged;
  int64_t after = 0;
  for (;;) {
    auto page = log.After(after, 1);
    ASSERT_TRUE(page.ok()) << page.status();
    if (page->empty()) break;
    for (const ChangeRow& c : *page) {
      EXPECT_EQ(c.revision, page->front().revision);
      if (c.entity_type == "certificate") paged.insert(c.key);
    }
    after = page->back().revision;
  }
  EXPECT_EQ(paged, keys);
}

// An issuance batch chains its own audit entries as it stores them (migration 0010): they
// are chained at commit, without the sequencer, after whatever was chained before; entries
// of other writers still wait for the sequencer, which chains them after. The chain
// verifies whole, by the same C++ hash as the sequencer's entries.
TEST_F(PgCertificateStoreTest, IssuanceChainsItsAuditEntriesAsItStoresThem) {
  auto chain = [&] {
    while (db_.ChainAudit(2) > 0) {
    }
  };
  chain();  // SetUp's device creation: chained by the sequencer
  const std::string first_chained = db_.Exec("SELECT max(chain_seq) FROM audit_log");
  ASSERT_EQ(first_chained, "1");
  Device d;
  d.comm_id = "dev-2";
  ASSERT_TRUE(devices_.Create(d, ctx_).ok());  // left unchained for now
  constexpr int kClients = 12;
  std::vector<std::thread> threads;
  std::atomic<int> failed{0};
  for (int i = 0; i < kClients; ++i) {
    threads.emplace_back([&, i] {
      CertificateRecord r = Record(std::string(1, static_cast<char>(0x40 + i)), absl::StrCat("a", i));
      auto out = store_.Issue(r, [&]() -> absl::StatusOr<std::string> {
        absl::SleepFor(absl::Milliseconds(10));  // let the calls meet in batches
        return absl::StrCat("DER-a", i);
      }, ctx_);
      if (!out.ok()) ++failed;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failed.load(), 0);
  // Every issuance entry was chained by its batch; the device's entry still waits.
  EXPECT_EQ(db_.Exec("SELECT count(*) FROM audit_log WHERE action = 'IssueCertificate' AND "
                     "chain_seq IS NOT NULL"),
            std::to_string(kClients));
  EXPECT_EQ(db_.Exec("SELECT string_agg(action, ',') FROM audit_log WHERE chain_seq IS NULL"),
            "RegisterDevice");
  EXPECT_EQ(db_.Exec("SELECT min(chain_seq) || '-' || max(chain_seq) FROM audit_log WHERE "
                     "action = 'IssueCertificate'"),
            absl::StrCat("2-", 1 + kClients));
  chain();
  EXPECT_EQ(db_.Exec("SELECT chain_seq FROM audit_log WHERE action = 'RegisterDevice' AND "
                     "target = 'dev-2'"),
            std::to_string(2 + kClients));
  PgAuditStore audit(db_.pool());
  auto v = audit.Verify({}, nullptr);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_TRUE(v->intact) << v->break_reason << " at " << v->first_break_sequence;
  EXPECT_EQ(v->events_checked, 2 + kClients);
  // And a tampered issuance entry is found.
  db_.Exec("UPDATE audit_log SET target = 'ff' WHERE chain_seq = 3");
  v = audit.Verify({}, nullptr);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_FALSE(v->intact);
  EXPECT_EQ(v->first_break_sequence, 3);
}

// The subject's row is locked from its check until the certificate is committed: a
// suspension sent while the certificate is being signed waits for the commit (the device
// was active when its certificate was issued), then takes effect.
TEST_F(PgCertificateStoreTest, ASuspensionDuringSigningWaitsForTheCommit) {
  std::atomic<bool> suspended{false};
  std::thread suspender;
  auto out = store_.Issue(Record("\x01", "r1"), [&]() -> absl::StatusOr<std::string> {
    suspender = std::thread([&] {
      EXPECT_TRUE(
          devices_.SetStatus("dev-1", DeviceStatus::kSuspended, "", std::nullopt, ctx_).ok());
      suspended = true;
    });
    absl::SleepFor(absl::Milliseconds(200));
    EXPECT_FALSE(suspended.load()) << "the suspension must wait for the issuance to commit";
    return std::string("DER");
  }, ctx_);
  suspender.join();
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_TRUE(suspended.load());
  EXPECT_EQ(db_.Exec("SELECT count(*) FROM certificates"), "1");
  // From now on the device gets nothing.
  auto st = store_.Issue(Record("\x02", "r2"), [] { return absl::StatusOr<std::string>("E"); },
                         ctx_).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition) << st;
}

TEST_F(PgCertificateStoreTest, TheDatabaseRefusesDuplicateSerials) {
  ASSERT_TRUE(store_.Issue(Record("\x07", "r1"), [] { return absl::StatusOr<std::string>("D"); }, ctx_).ok());
  auto st = store_.Issue(Record("\x07", "r2"), [] { return absl::StatusOr<std::string>("E"); }, ctx_).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(db_.Exec("SELECT count(*) FROM certificates"), "1");
}

}  // namespace
}  // namespace fleetca::storage
