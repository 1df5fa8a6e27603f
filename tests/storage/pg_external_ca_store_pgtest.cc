// PgExternalCaStore against PostgreSQL: external CAs (ids shared with issuers, one
// registration per certificate, removal only when disabled), certificates registered under
// them (serials shared between customer CAs, the device's state, idempotency), and imported
// CRLs (ordering, revocation of tracked certificates, brokers' view of untracked serials).
#include "storage/pg_external_ca_store.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "storage/pg_certificate_store.h"
#include "storage/pg_acl_store.h"
#include "storage/pg_device_store.h"
#include "storage/pg_revocation_store.h"
#include "storage/pg_sync_store.h"
#include "tests/testing/test_database.h"

namespace fleetca::storage {
namespace {

using ::testing::HasSubstr;

class PgExternalCaStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* id : {"dev-1", "dev-2", "dev-3"}) {
      Device d;
      d.comm_id = id;
      ASSERT_TRUE(devices_.Create(d, ctx_).ok());
    }
    db_.Exec(
        "INSERT INTO issuers (id, purpose, state, algorithm, subject, certificate_der, "
        "activated_at) VALUES ('devices-1', 'devices', 'active', 'ecdsa-p256', 'CN=x', "
        "'\\x30'::bytea, now())");
  }

  ExternalCa Ca(const std::string& id, const std::string& der) {
    ExternalCa ca;
    ca.id = id;
    ca.display_name = "Customer " + id;
    ca.subject = "CN=" + id;
    ca.certificate_der = der;
    ca.not_before = absl::Now() - absl::Hours(1);
    ca.not_after = absl::Now() + absl::Hours(24 * 365);
    return ca;
  }

  CertificateRecord Cert(const std::string& issuer, const std::string& serial,
                         const std::string& comm_id, const std::string& der) {
    CertificateRecord r;
    r.serial = serial;
    r.issuer_id = issuer;
    r.kind = CertificateKind::kExternalDevice;
    r.comm_id = comm_id;
    r.subject = "CN=" + comm_id;
    r.key_algorithm = "ecdsa-p256";
    r.not_before = absl::Now() - absl::Minutes(5);
    r.not_after = absl::Now() + absl::Hours(24);
    r.der = der;
    r.fingerprint = std::string(32, der.empty() ? 'x' : der[0]);
    return r;
  }

  testing::TestDatabase db_;
  PgDeviceStore devices_{db_.pool()};
  PgExternalCaStore store_{db_.pool()};
  PgCertificateStore certificates_{db_.pool()};
  PgRevocationStore revocations_{db_.pool()};
  PgAclStore acls_{db_.pool()};
  PgSyncStore sync_{db_.pool(), acls_};
  RequestContext ctx_ = RequestContext::Local("tester");
};

TEST_F(PgExternalCaStoreTest, CasShareTheIssuerIdsAndAreRemovedOnlyWhenDisabled) {
  auto acme = store_.Create(Ca("acme", "A"), ctx_);
  ASSERT_TRUE(acme.ok()) << acme.status();
  EXPECT_TRUE(acme->enabled);
  EXPECT_EQ(acme->display_name, "Customer acme");
  EXPECT_EQ(store_.Create(Ca("acme", "B"), ctx_).status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(store_.Create(Ca("devices-1", "C"), ctx_).status().code(),
            absl::StatusCode::kAlreadyExists);
  auto same = store_.Create(Ca("acme-2", "A"), ctx_);
  EXPECT_EQ(same.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(same.status().message(), HasSubstr("certificate_pem"));
  // A fleetca issuer is not an external CA, and the other way round.
  EXPECT_EQ(store_.Get("devices-1").status().code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(store_.Create(Ca("globex", "G"), ctx_).ok());
  auto listed = store_.List("", 10);
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->size(), 2u);
  EXPECT_EQ((*listed)[0].id, "acme");

  EXPECT_EQ(store_.Remove("acme", std::nullopt, ctx_).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(store_.Update("acme", {}, acme->version + 5, ctx_).status().code(),
            absl::StatusCode::kAborted);
  ExternalCaUpdate off;
  off.enabled = false;
  off.accept_unregistered = true;
  auto disabled = store_.Update("acme", off, acme->version, ctx_);
  ASSERT_TRUE(disabled.ok()) << disabled.status();
  EXPECT_FALSE(disabled->enabled);
  EXPECT_TRUE(disabled->accept_unregistered);
  EXPECT_EQ(disabled->display_name, "Customer acme");  // untouched
  ASSERT_TRUE(store_.Remove("acme", std::nullopt, ctx_).ok());
  EXPECT_EQ(store_.Get("acme").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store_.Create(Ca("acme", "Z"), ctx_).status().code(), absl::StatusCode::kAlreadyExists);
  // Removed: its certificate may be registered again under another id.
  EXPECT_TRUE(store_.Create(Ca("acme-new", "A"), ctx_).ok());
  // Every change journaled as an issuer change (brokers' sync streams).
  EXPECT_EQ(db_.Exec("SELECT count(*) FROM change_log WHERE entity_type = 'issuer'"), "5");
  EXPECT_EQ(db_.Exec("SELECT string_agg(action, ',' ORDER BY id) FROM audit_log "
                     "WHERE target = 'acme'"),
            "RegisterExternalCa,UpdateExternalCa,DeleteExternalCa");
}

TEST_F(PgExternalCaStoreTest, SerialsMayRepeatAcrossCustomerCas) {
  ASSERT_TRUE(store_.Create(Ca("acme", "A"), ctx_).ok());
  ASSERT_TRUE(store_.Create(Ca("globex", "G"), ctx_).ok());
  auto a = store_.RegisterCertificate(Cert("acme", "\x07", "dev-1", "a7"), ctx_);
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_FALSE(a->already_registered);
  EXPECT_EQ(a->record.kind, CertificateKind::kExternalDevice);
  auto b = store_.RegisterCertificate(Cert("globex", "\x07", "dev-2", "g7"), ctx_);
  ASSERT_TRUE(b.ok()) << b.status();
  auto again = store_.RegisterCertificate(Cert("acme", "\x07", "dev-1", "a7"), ctx_);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_TRUE(again->already_registered);
  EXPECT_EQ(store_.RegisterCertificate(Cert("acme", "\x07", "dev-1", "zz"), ctx_).status().code(),
            absl::StatusCode::kAlreadyExists);
  // A serial of two issuers: ambiguous without the issuer.
  auto ambiguous = certificates_.GetBySerial("\x07");
  EXPECT_EQ(ambiguous.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(ambiguous.status().message(), HasSubstr("issuer_id"));
  auto got = certificates_.GetBySerial("\x07", "globex");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->comm_id, "dev-2");
  EXPECT_EQ(revocations_.Revoke("\x07", "", 1, std::nullopt, "", ctx_).status().code(),
            absl::StatusCode::kInvalidArgument);
  auto revoked = revocations_.Revoke("\x07", "acme", 1, std::nullopt, "", ctx_);
  ASSERT_TRUE(revoked.ok()) << revoked.status();
  EXPECT_EQ(revoked->state.issuer_id, "acme");
  EXPECT_EQ(revoked->state.status, CertificateStatus::kRevoked);
  EXPECT_EQ(certificates_.GetBySerial("\x07", "globex")->status, CertificateStatus::kIssued);
  // No CRL of fleetca's counts it; brokers see it under its own key.
  EXPECT_EQ(db_.Exec("SELECT count(*) FROM crl_changes"), "0");
  auto seen = sync_.Read(SyncKind::kCertificate, {"acme/07", "globex/07"});
  ASSERT_TRUE(seen.ok()) << seen.status();
  ASSERT_EQ(seen->size(), 2u);
  EXPECT_EQ(std::get<SyncCertificate>((*seen)[0].value).status, CertificateStatus::kRevoked);
  EXPECT_EQ(std::get<SyncCertificate>((*seen)[1].value).comm_id, "dev-2");
}

TEST_F(PgExternalCaStoreTest, RegistrationNeedsAnEnabledCaAndAnActiveDevice) {
  ASSERT_TRUE(store_.Create(Ca("acme", "A"), ctx_).ok());
  EXPECT_EQ(store_.RegisterCertificate(Cert("acme", "\x01", "nobody", "n1"), ctx_).status().code(),
            absl::StatusCode::kNotFound);
  ASSERT_TRUE(devices_.SetStatus("dev-3", DeviceStatus::kSuspended, "lost", std::nullopt, ctx_).ok());
  EXPECT_EQ(store_.RegisterCertificate(Cert("acme", "\x02", "dev-3", "s2"), ctx_).status().code(),
            absl::StatusCode::kFailedPrecondition);
  ExternalCaUpdate off;
  off.enabled = false;
  ASSERT_TRUE(store_.Update("acme", off, std::nullopt, ctx_).ok());
  EXPECT_EQ(store_.RegisterCertificate(Cert("acme", "\x03", "dev-1", "d3"), ctx_).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(db_.Exec("SELECT count(*) FROM certificates"), "0");
}

TEST_F(PgExternalCaStoreTest, ImportedCrlsRevokeTrackedCertificatesAndReachBrokers) {
  ASSERT_TRUE(store_.Create(Ca("acme", "A"), ctx_).ok());
  ASSERT_TRUE(store_.RegisterCertificate(Cert("acme", "\x01", "dev-1", "c1"), ctx_).ok());
  ASSERT_TRUE(store_.RegisterCertificate(Cert("acme", "\x02", "dev-2", "c2"), ctx_).ok());
  const absl::Time now = absl::FromUnixSeconds(absl::ToUnixSeconds(absl::Now()));
  ImportedCrl crl;
  crl.der = "CRL-5";
  crl.crl_number = 5;
  crl.this_update = now;
  crl.next_update = now + absl::Hours(24);
  crl.entries = {{"\x01", 1, now - absl::Hours(1)}, {"\x09", -1, now - absl::Hours(2)}};
  auto out = store_.ImportCrl("acme", crl, ctx_);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->newly_revoked, 1);
  EXPECT_FALSE(out->already_imported);
  auto state = revocations_.Get("\x01", "acme");
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_EQ(state->status, CertificateStatus::kRevoked);
  ASSERT_TRUE(state->revocation.has_value());
  EXPECT_TRUE(state->revocation->from_imported_crl);
  EXPECT_EQ(state->revocation->reason, 1);
  EXPECT_EQ(certificates_.GetBySerial("\x02", "acme")->status, CertificateStatus::kIssued);
  // The same CRL again: nothing changes; an older one is refused.
  auto again = store_.ImportCrl("acme", crl, ctx_);
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->already_imported);
  ImportedCrl older = crl;
  older.der = "CRL-4";
  older.crl_number = 4;
  EXPECT_EQ(store_.ImportCrl("acme", older, ctx_).status().code(),
            absl::StatusCode::kFailedPrecondition);
  auto get = store_.GetImportedCrl("acme");
  ASSERT_TRUE(get.ok());
  EXPECT_EQ(get->der, "CRL-5");
  EXPECT_EQ(store_.Get("acme")->crl_number, 5);
  // Brokers: the untracked serial 09 as a revoked certificate known only from the CRL, the
  // tracked one as itself; both in a snapshot, and the CRL itself (imported).
  auto read = sync_.Read(SyncKind::kCertificate, {"acme/09", "acme/01"});
  ASSERT_TRUE(read.ok()) << read.status();
  ASSERT_EQ(read->size(), 2u);
  const auto& untracked = std::get<SyncCertificate>((*read)[0].value);
  EXPECT_TRUE(untracked.from_imported_crl_only);
  EXPECT_EQ(untracked.serial, "\x09");
  EXPECT_EQ(untracked.status, CertificateStatus::kRevoked);
  EXPECT_FALSE(std::get<SyncCertificate>((*read)[1].value).from_imported_crl_only);
  int listed_only_from_crl = 0, listed = 0;
  for (std::string cursor;;) {
    auto page = sync_.List(SyncKind::kCertificate, cursor, 100);
    ASSERT_TRUE(page.ok()) << page.status();
    for (const SyncObject& o : page->objects) {
      ++listed;
      if (std::get<SyncCertificate>(o.value).from_imported_crl_only) ++listed_only_from_crl;
    }
    if (page->next.empty()) break;
    cursor = page->next;
  }
  EXPECT_EQ(listed, 3);
  EXPECT_EQ(listed_only_from_crl, 1);
  auto crls = sync_.Read(SyncKind::kCrl, {"acme"});
  ASSERT_TRUE(crls.ok());
  ASSERT_EQ(crls->size(), 1u);
  EXPECT_TRUE(std::get<SyncCrl>((*crls)[0].value).imported);
  EXPECT_EQ(std::get<SyncCrl>((*crls)[0].value).der, "CRL-5");
}

// Reads by change-log key (the sync feed, the policy index, revocations) probe the primary
// key's index, whatever the mix of fleetca's and external keys: an earlier condition (an OR
// per kind) made PostgreSQL scan the whole table on every read, which cost issuance half its
// rate. A plan check, not a timing.
TEST_F(PgExternalCaStoreTest, ReadsByKeyUseTheIndex) {
  ASSERT_TRUE(store_.Create(Ca("acme", "A"), ctx_).ok());
  ASSERT_TRUE(store_.RegisterCertificate(Cert("acme", "\x07", "dev-1", "a7"), ctx_).ok());
  db_.Exec(
      "INSERT INTO certificates (serial, issuer_id, kind, comm_id, subject, key_algorithm, "
      "status, not_before, not_after, der, fingerprint_sha256) "
      "SELECT substr(sha256(int8send(g)), 1, 16), 'devices-1', 'device', 'dev-2', 'CN=dev-2', "
      "'ecdsa-p256', 'issued', now(), now() + interval '1 day', '\\x30', sha256(int4send(g)) "
      "FROM generate_series(1, 20000) g");
  db_.Exec("ANALYZE certificates");
  const std::string keys = db_.Exec(
      "SELECT '{acme/07,' || string_agg(encode(serial, 'hex'), ',') || '}' "
      "FROM (SELECT serial FROM certificates WHERE kind = 'device' LIMIT 5) t");
  db_.Exec(
      "CREATE FUNCTION explain_text(q text) RETURNS text LANGUAGE plpgsql AS $f$ "
      "DECLARE r text; o text := ''; BEGIN "
      "FOR r IN EXECUTE 'EXPLAIN ' || q LOOP o := o || r || ' '; END LOOP; RETURN o; END $f$");
  const std::string plan = db_.Exec(absl::StrCat(
      "SELECT explain_text($q$SELECT c.serial FROM certificates c WHERE ",
      absl::StrReplaceAll(FLEETCA_CERTIFICATE_KEY_IN_SQL("$1"), {{"$1", "'" + keys + "'::text[]"}}),
      "$q$)"));
  EXPECT_THAT(plan, HasSubstr("certificates_pkey")) << plan;
  EXPECT_THAT(plan, ::testing::Not(HasSubstr("Seq Scan"))) << plan;
  auto read = sync_.Read(SyncKind::kCertificate, {"acme/07"});
  ASSERT_TRUE(read.ok()) << read.status();
  ASSERT_EQ(read->size(), 1u);
  EXPECT_EQ(std::get<SyncCertificate>((*read)[0].value).issuer_id, "acme");
}

}  // namespace
}  // namespace fleetca::storage
