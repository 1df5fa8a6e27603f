// BuildCrlDer against OpenSSL's own reader and verifier, and the openssl CLI.
#include "pki/crl_builder.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/x509v3.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "pki/certificate_builder.h"
#include "tests/pki/pki_test_util.h"

namespace fleetca::pki {
namespace {

using ::testing::HasSubstr;

struct CrlPtrDeleter {
  void operator()(X509_CRL* c) const { X509_CRL_free(c); }
};
using X509CrlPtr = std::unique_ptr<X509_CRL, CrlPtrDeleter>;

absl::Time Second(absl::Time t) { return absl::FromUnixSeconds(absl::ToUnixSeconds(t)); }

class CrlBuilderTest : public ::testing::TestWithParam<KeyAlgorithm> {
 protected:
  void SetUp() override {
    key_ = testing::CachedKey(GetParam(), 40);
    store_.Add("ca", testing::NewRef(key_));
    CertificateTemplate t;
    t.profile = CertificateProfile::kRootCa;
    t.serial = RandomSerial();
    t.subject.common_name = "CRL Test CA";
    t.not_before = now_ - absl::Hours(1);
    t.not_after = now_ + absl::Hours(24 * 365);
    t.public_key = key_;
    auto ca = BuildCertificate(t, nullptr, store_, "ca");
    ASSERT_TRUE(ca.ok()) << ca.status();
    ca_ = std::move(*ca);
  }

  X509CrlPtr Parse(const std::string& der) {
    const unsigned char* p = reinterpret_cast<const unsigned char*>(der.data());
    X509CrlPtr crl(d2i_X509_CRL(nullptr, &p, static_cast<long>(der.size())));
    EXPECT_NE(crl, nullptr);
    EXPECT_EQ(p, reinterpret_cast<const unsigned char*>(der.data()) + der.size());
    return crl;
  }

  const absl::Time now_ = Second(absl::Now());
  const EVP_PKEY* key_ = nullptr;
  SoftwareKeyStore store_;
  X509Ptr ca_;
};

TEST_P(CrlBuilderTest, OpenSslReadsAndVerifiesEveryField) {
  CrlTemplate t;
  t.crl_number = 300;
  t.this_update = now_;
  t.next_update = now_ + absl::Hours(24);
  t.entries.push_back({std::string("\x01\x02\x03", 3), now_ - absl::Hours(2), 1,
                       now_ - absl::Hours(30)});
  t.entries.push_back({std::string("\x7f", 1), now_ - absl::Hours(1), 0, std::nullopt});
  t.entries.push_back({std::string(20, '\x11'), now_, 6, std::nullopt});
  auto der = BuildCrlDer(t, ca_.get(), store_, "ca");
  ASSERT_TRUE(der.ok()) << der.status();
  X509CrlPtr crl = Parse(*der);
  ASSERT_NE(crl, nullptr);

  EXPECT_EQ(X509_CRL_get_version(crl.get()), 1);  // v2
  EXPECT_EQ(X509_CRL_verify(crl.get(), const_cast<EVP_PKEY*>(key_)), 1);
  EXPECT_EQ(X509_NAME_cmp(X509_CRL_get_issuer(crl.get()), X509_get_subject_name(ca_.get())), 0);
  EXPECT_EQ(ASN1_TIME_cmp_time_t(X509_CRL_get0_lastUpdate(crl.get()), absl::ToTimeT(now_)), 0);
  EXPECT_EQ(ASN1_TIME_cmp_time_t(X509_CRL_get0_nextUpdate(crl.get()),
                                 absl::ToTimeT(now_ + absl::Hours(24))),
            0);
  auto* number = static_cast<ASN1_INTEGER*>(
      X509_CRL_get_ext_d2i(crl.get(), NID_crl_number, nullptr, nullptr));
  ASSERT_NE(number, nullptr);
  EXPECT_EQ(ASN1_INTEGER_get(number), 300);
  ASN1_INTEGER_free(number);
  auto* akid = static_cast<AUTHORITY_KEYID*>(
      X509_CRL_get_ext_d2i(crl.get(), NID_authority_key_identifier, nullptr, nullptr));
  ASSERT_NE(akid, nullptr);
  EXPECT_EQ(ASN1_OCTET_STRING_cmp(akid->keyid, X509_get0_subject_key_id(ca_.get())), 0);
  AUTHORITY_KEYID_free(akid);

  STACK_OF(X509_REVOKED)* revoked = X509_CRL_get_REVOKED(crl.get());
  ASSERT_EQ(sk_X509_REVOKED_num(revoked), 3);
  const int expected_reasons[] = {1, -1, 6};
  for (int i = 0; i < 3; ++i) {
    X509_REVOKED* r = sk_X509_REVOKED_value(revoked, i);
    const ASN1_INTEGER* serial = X509_REVOKED_get0_serialNumber(r);
    std::string bytes(static_cast<size_t>(ASN1_STRING_length(serial)), '\0');
    memcpy(bytes.data(), ASN1_STRING_get0_data(serial), bytes.size());
    EXPECT_EQ(bytes, t.entries[static_cast<size_t>(i)].serial) << i;
    EXPECT_EQ(ASN1_TIME_cmp_time_t(X509_REVOKED_get0_revocationDate(r),
                                   absl::ToTimeT(t.entries[static_cast<size_t>(i)].revocation_date)),
              0);
    auto* reason = static_cast<ASN1_ENUMERATED*>(
        X509_REVOKED_get_ext_d2i(r, NID_crl_reason, nullptr, nullptr));
    EXPECT_EQ(reason == nullptr ? -1 : ASN1_ENUMERATED_get(reason), expected_reasons[i]) << i;
    ASN1_ENUMERATED_free(reason);
    auto* invalidity = static_cast<ASN1_GENERALIZEDTIME*>(
        X509_REVOKED_get_ext_d2i(r, NID_invalidity_date, nullptr, nullptr));
    EXPECT_EQ(invalidity != nullptr, i == 0) << i;
    if (invalidity != nullptr) {
      EXPECT_EQ(ASN1_TIME_cmp_time_t(invalidity, absl::ToTimeT(now_ - absl::Hours(30))), 0);
      ASN1_GENERALIZEDTIME_free(invalidity);
    }
  }
}

TEST_P(CrlBuilderTest, LeavesOutEntriesOfExpiredCertificates) {
  CrlTemplate t;
  t.crl_number = 2;
  t.this_update = now_;
  t.next_update = now_ + absl::Hours(24);
  t.entries.push_back({std::string("\x01", 1), now_ - absl::Hours(2), 1, std::nullopt,
                       now_ - absl::Seconds(1)});  // expired: left out
  t.entries.push_back({std::string("\x02", 1), now_ - absl::Hours(2), 1, std::nullopt,
                       now_});  // expires at thisUpdate: left out
  t.entries.push_back({std::string("\x03", 1), now_ - absl::Hours(1), 4, std::nullopt,
                       now_ + absl::Seconds(1)});
  auto der = BuildCrlDer(t, ca_.get(), store_, "ca");
  ASSERT_TRUE(der.ok()) << der.status();
  X509CrlPtr crl = Parse(*der);
  ASSERT_NE(crl, nullptr);
  STACK_OF(X509_REVOKED)* revoked = X509_CRL_get_REVOKED(crl.get());
  ASSERT_EQ(sk_X509_REVOKED_num(revoked), 1);
  EXPECT_EQ(ASN1_INTEGER_get(X509_REVOKED_get0_serialNumber(sk_X509_REVOKED_value(revoked, 0))), 3);
}

TEST_P(CrlBuilderTest, EmptyCrlAndTheOpensslCli) {
  CrlTemplate t;
  t.crl_number = 1;
  t.this_update = now_;
  t.next_update = now_ + absl::Hours(1);
  auto der = BuildCrlDer(t, ca_.get(), store_, "ca");
  ASSERT_TRUE(der.ok()) << der.status();
  X509CrlPtr crl = Parse(*der);
  ASSERT_NE(crl, nullptr);
  // No revokedCertificates at all (5.1.2.6: absent when there are none).
  EXPECT_EQ(X509_CRL_get_REVOKED(crl.get()), nullptr);
  EXPECT_EQ(X509_CRL_verify(crl.get(), const_cast<EVP_PKEY*>(key_)), 1);
  if (!testing::HaveOpensslCli()) GTEST_SKIP() << "no openssl CLI";
  // A CRL with one entry, checked by `openssl crl -verify`.
  t.entries.push_back({std::string("\x0a\x0b", 2), now_, 1, std::nullopt});
  der = BuildCrlDer(t, ca_.get(), store_, "ca");
  ASSERT_TRUE(der.ok()) << der.status();
  const std::string dir = testing::MakeTempDir();
  testing::WriteFile(dir + "/crl.der", *der);
  auto pem = CertificateToPem(ca_.get());
  ASSERT_TRUE(pem.ok());
  testing::WriteFile(dir + "/ca.pem", *pem);
  const auto r = testing::Run(absl::StrCat("openssl crl -inform DER -in ", dir,
                                           "/crl.der -CAfile ", dir, "/ca.pem -noout -text"));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("verify OK"));
  EXPECT_THAT(r.output, HasSubstr("Serial Number: 0A0B"));
  EXPECT_THAT(r.output, HasSubstr("Key Compromise"));
  EXPECT_THAT(r.output, HasSubstr("X509v3 CRL Number"));
}

// A complete CRL naming its deltas (freshestCRL) and a delta CRL on it, checked by
// OpenSSL's own verifier with delta CRLs on (X509_V_FLAG_USE_DELTAS): a certificate revoked
// after the complete CRL is refused through the delta, a hold released after it is
// admitted again (removeFromCRL), and without the delta the complete CRL alone decides.
TEST_P(CrlBuilderTest, DeltaCrlUpdatesTheCompleteOneForOpenSsl) {
  auto leaf = [&](uint8_t serial) {
    CertificateTemplate t;
    t.profile = CertificateProfile::kClient;
    t.serial = std::string(1, static_cast<char>(serial));
    t.subject.common_name = absl::StrCat("device-", serial);
    t.not_before = now_ - absl::Hours(1);
    t.not_after = now_ + absl::Hours(24);
    t.public_key = testing::CachedKey(KeyAlgorithm::kEcdsaP256, 41);
    auto cert = BuildCertificate(t, ca_.get(), store_, "ca");
    EXPECT_TRUE(cert.ok()) << cert.status();
    return cert.ok() ? std::move(*cert) : nullptr;
  };
  X509Ptr good = leaf(1), revoked_later = leaf(2), held_then_released = leaf(3), revoked = leaf(4);
  ASSERT_TRUE(good && revoked_later && held_then_released && revoked);

  CrlTemplate complete;
  complete.crl_number = 10;
  complete.this_update = now_ - absl::Minutes(5);
  complete.next_update = now_ + absl::Hours(1);
  complete.freshest_crl_url = "http://ca.example/crl/delta/ca.crl";
  complete.entries.push_back({std::string("\x03"), now_ - absl::Minutes(10), 6, std::nullopt});
  complete.entries.push_back({std::string("\x04"), now_ - absl::Minutes(10), 1, std::nullopt});
  CrlTemplate delta;
  delta.crl_number = 12;
  delta.delta_base_crl_number = 10;
  delta.this_update = now_;
  delta.next_update = now_ + absl::Hours(1);
  delta.entries.push_back({std::string("\x02"), now_, 1, std::nullopt});
  delta.entries.push_back({std::string("\x03"), now_, 8 /* removeFromCRL */, std::nullopt});
  auto complete_der = BuildCrlDer(complete, ca_.get(), store_, "ca");
  auto delta_der = BuildCrlDer(delta, ca_.get(), store_, "ca");
  ASSERT_TRUE(complete_der.ok()) << complete_der.status();
  ASSERT_TRUE(delta_der.ok()) << delta_der.status();
  X509CrlPtr complete_crl = Parse(*complete_der), delta_crl = Parse(*delta_der);
  ASSERT_TRUE(complete_crl && delta_crl);

  // The extensions, as OpenSSL reads them.
  int critical = -1;
  auto* base = static_cast<ASN1_INTEGER*>(
      X509_CRL_get_ext_d2i(delta_crl.get(), NID_delta_crl, &critical, nullptr));
  ASSERT_NE(base, nullptr);
  EXPECT_EQ(ASN1_INTEGER_get(base), 10);
  EXPECT_EQ(critical, 1);
  ASN1_INTEGER_free(base);
  auto* points = static_cast<STACK_OF(DIST_POINT)*>(
      X509_CRL_get_ext_d2i(complete_crl.get(), NID_freshest_crl, &critical, nullptr));
  ASSERT_NE(points, nullptr);
  EXPECT_EQ(critical, 0);
  ASSERT_EQ(sk_DIST_POINT_num(points), 1);
  GENERAL_NAME* name = sk_GENERAL_NAME_value(sk_DIST_POINT_value(points, 0)->distpoint->name.fullname, 0);
  ASSERT_EQ(name->type, GEN_URI);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(name->d.uniformResourceIdentifier))),
            "http://ca.example/crl/delta/ca.crl");
  sk_DIST_POINT_pop_free(points, DIST_POINT_free);
  EXPECT_EQ(X509_CRL_get_ext_by_NID(delta_crl.get(), NID_freshest_crl, -1), -1);

  auto verify = [&](X509* cert, bool with_delta) {
    std::unique_ptr<X509_STORE, decltype(&X509_STORE_free)> store(X509_STORE_new(), X509_STORE_free);
    X509_STORE_add_cert(store.get(), ca_.get());
    X509_STORE_add_crl(store.get(), complete_crl.get());
    if (with_delta) X509_STORE_add_crl(store.get(), delta_crl.get());
    // As `openssl verify -crl_check -extended_crl -use_deltas`: without extended CRL
    // support OpenSSL 3.0 scores a delta CRL as a complete one (get_crl_score) and, being
    // the newer, uses it instead of the complete CRL.
    X509_STORE_set_flags(store.get(), X509_V_FLAG_CRL_CHECK | X509_V_FLAG_EXTENDED_CRL_SUPPORT |
                                          X509_V_FLAG_USE_DELTAS);
    std::unique_ptr<X509_STORE_CTX, decltype(&X509_STORE_CTX_free)> ctx(X509_STORE_CTX_new(),
                                                                        X509_STORE_CTX_free);
    X509_STORE_CTX_init(ctx.get(), store.get(), cert, nullptr);
    X509_VERIFY_PARAM_set_time(X509_STORE_CTX_get0_param(ctx.get()), absl::ToTimeT(now_));
    return X509_verify_cert(ctx.get()) == 1 ? X509_V_OK : X509_STORE_CTX_get_error(ctx.get());
  };
  EXPECT_EQ(verify(good.get(), true), X509_V_OK);
  EXPECT_EQ(verify(revoked_later.get(), true), X509_V_ERR_CERT_REVOKED);
  EXPECT_EQ(verify(held_then_released.get(), true), X509_V_OK);
  EXPECT_EQ(verify(revoked.get(), true), X509_V_ERR_CERT_REVOKED);
  EXPECT_EQ(verify(revoked_later.get(), false), X509_V_OK);
  EXPECT_EQ(verify(held_then_released.get(), false), X509_V_ERR_CERT_REVOKED);

  // A delta's base must come before it; a delta names no deltas of its own.
  delta.delta_base_crl_number = 12;
  EXPECT_EQ(BuildCrlDer(delta, ca_.get(), store_, "ca").status().code(),
            absl::StatusCode::kInvalidArgument);
  delta.delta_base_crl_number = 10;
  delta.freshest_crl_url = "http://ca.example/x.crl";
  EXPECT_EQ(BuildCrlDer(delta, ca_.get(), store_, "ca").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_P(CrlBuilderTest, RejectsBadTemplates) {
  CrlTemplate good;
  good.this_update = now_;
  good.next_update = now_ + absl::Hours(1);
  CrlTemplate t = good;
  t.next_update = now_;
  EXPECT_EQ(BuildCrlDer(t, ca_.get(), store_, "ca").status().code(),
            absl::StatusCode::kInvalidArgument);
  for (const std::string& serial :
       {std::string(), std::string(21, '\x01'), std::string("\x80", 1), std::string("\x00\x01", 2)}) {
    t = good;
    t.entries.push_back({serial, now_, 0, std::nullopt});
    EXPECT_EQ(BuildCrlDer(t, ca_.get(), store_, "ca").status().code(),
              absl::StatusCode::kInvalidArgument);
  }
  for (int reason : {-1, 7, 11}) {
    t = good;
    t.entries.push_back({std::string("\x01", 1), now_, reason, std::nullopt});
    EXPECT_EQ(BuildCrlDer(t, ca_.get(), store_, "ca").status().code(),
              absl::StatusCode::kInvalidArgument)
        << reason;
  }
  EXPECT_FALSE(BuildCrlDer(good, ca_.get(), store_, "unknown").ok());
}

INSTANTIATE_TEST_SUITE_P(Algorithms, CrlBuilderTest,
                         ::testing::Values(KeyAlgorithm::kEcdsaP256, KeyAlgorithm::kRsa2048,
                                           KeyAlgorithm::kEd25519));

}  // namespace
}  // namespace fleetca::pki
