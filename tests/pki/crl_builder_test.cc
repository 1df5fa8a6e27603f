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
