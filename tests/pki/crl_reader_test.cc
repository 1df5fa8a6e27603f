// ReadCrl on CRLs built by fleetca's own builder (as a customer CA would sign them) and on
// the ways a CRL can be wrong: another issuer's, a bad signature, a delta CRL, garbage.
#include "pki/crl_reader.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "pki/certificate_builder.h"
#include "pki/crl_builder.h"
#include "tests/pki/pki_test_util.h"

namespace fleetca::pki {
namespace {

using ::testing::HasSubstr;

absl::Time Second(absl::Time t) { return absl::FromUnixSeconds(absl::ToUnixSeconds(t)); }

class CrlReaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ca_ = MakeCa("ca", "Customer CA", 41);
    other_ = MakeCa("other", "Customer CA", 42);  // same name, another key
  }

  X509Ptr MakeCa(const std::string& id, const std::string& cn, int slot) {
    const EVP_PKEY* key = testing::CachedKey(KeyAlgorithm::kEcdsaP256, slot);
    store_.Add(id, testing::NewRef(key));
    CertificateTemplate t;
    t.profile = CertificateProfile::kRootCa;
    t.serial = RandomSerial();
    t.subject.common_name = cn;
    t.not_before = now_ - absl::Hours(1);
    t.not_after = now_ + absl::Hours(24 * 365);
    t.public_key = key;
    auto cert = BuildCertificate(t, nullptr, store_, id);
    EXPECT_TRUE(cert.ok()) << cert.status();
    return cert.ok() ? std::move(*cert) : nullptr;
  }

  std::string Build(const CrlTemplate& t, const X509* issuer, const std::string& signer) {
    auto der = BuildCrlDer(t, issuer, store_, signer);
    EXPECT_TRUE(der.ok()) << der.status();
    return der.ok() ? *der : "";
  }

  CrlTemplate Template() {
    CrlTemplate t;
    t.crl_number = 77;
    t.this_update = now_;
    t.next_update = now_ + absl::Hours(24);
    t.entries.push_back({std::string("\x01", 1), now_ - absl::Hours(2), 1, std::nullopt});
    t.entries.push_back({std::string("\x7f", 1), now_ - absl::Hours(1), 0, std::nullopt});
    t.entries.push_back({std::string(20, '\x22'), now_, 6, std::nullopt});
    return t;
  }

  const absl::Time now_ = Second(absl::Now());
  SoftwareKeyStore store_;
  X509Ptr ca_, other_;
};

TEST_F(CrlReaderTest, ReadsEveryField) {
  const std::string der = Build(Template(), ca_.get(), "ca");
  auto crl = ReadCrl(der, ca_.get());
  ASSERT_TRUE(crl.ok()) << crl.status();
  EXPECT_EQ(crl->der, der);
  EXPECT_EQ(crl->crl_number, 77);
  EXPECT_EQ(crl->this_update, now_);
  EXPECT_EQ(crl->next_update, now_ + absl::Hours(24));
  ASSERT_EQ(crl->entries.size(), 3u);
  EXPECT_EQ(crl->entries[0].serial, std::string("\x01", 1));
  EXPECT_EQ(crl->entries[0].reason, 1);
  EXPECT_EQ(crl->entries[0].revocation_time, now_ - absl::Hours(2));
  EXPECT_EQ(crl->entries[1].serial, "\x7f");
  EXPECT_EQ(crl->entries[1].reason, -1);  // unspecified: no reasonCode extension
  EXPECT_EQ(crl->entries[2].serial, std::string(20, '\x22'));
  EXPECT_EQ(crl->entries[2].reason, 6);
  EXPECT_EQ(CrlEntryCount(der).value_or(-1), 3);
}

TEST_F(CrlReaderTest, PemRoundTrip) {
  const std::string der = Build(Template(), ca_.get(), "ca");
  auto back = CrlPemToDer(DerToPem(der, "X509 CRL"));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, der);
  EXPECT_FALSE(CrlPemToDer(DerToPem(der, "CERTIFICATE")).ok());
  EXPECT_FALSE(CrlPemToDer("junk").ok());
}

TEST_F(CrlReaderTest, RefusesWhatIsNotThisCasFullCrl) {
  const std::string der = Build(Template(), ca_.get(), "ca");
  // Signed by another key under the same name: the signature does not verify.
  auto forged = ReadCrl(Build(Template(), ca_.get(), "other"), ca_.get());
  EXPECT_THAT(forged.status().message(), HasSubstr("signature"));
  // Read against another CA (same name, other key).
  EXPECT_THAT(ReadCrl(der, other_.get()).status().message(), HasSubstr("signature"));
  // Another issuer's name.
  X509Ptr third = MakeCa("third", "Third CA", 43);
  EXPECT_THAT(ReadCrl(der, third.get()).status().message(), HasSubstr("issuer"));
  // A delta CRL.
  CrlTemplate delta = Template();
  delta.delta_base_crl_number = 70;
  delta.entries.clear();
  EXPECT_THAT(ReadCrl(Build(delta, ca_.get(), "ca"), ca_.get()).status().message(),
              HasSubstr("delta"));
  // Garbage, a truncation, bytes after it.
  EXPECT_EQ(ReadCrl("junk", ca_.get()).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(ReadCrl(der.substr(0, der.size() - 1), ca_.get()).ok());
  EXPECT_FALSE(ReadCrl(der + "x", ca_.get()).ok());
  EXPECT_FALSE(ReadCrl("", ca_.get()).ok());
}

}  // namespace
}  // namespace fleetca::pki
