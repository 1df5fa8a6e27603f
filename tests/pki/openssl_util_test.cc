#include "pki/openssl_util.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/err.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "tests/pki/pki_test_util.h"

namespace fleetca::pki {
namespace {

using testing::CachedKey;
using ::testing::HasSubstr;
using testing::MakeRawCertificate;
using ::testing::StartsWith;

TEST(OpenSslErrorTest, DrainsTheQueueIntoTheMessage) {
  ClearOpenSslErrors();
  const unsigned char garbage[] = {0x30, 0x03, 0x02, 0x01};
  const unsigned char* p = garbage;
  ASSERT_EQ(d2i_X509(nullptr, &p, sizeof(garbage)), nullptr);
  ASSERT_NE(ERR_peek_error(), 0u);

  const absl::Status st = OpenSslError("d2i_X509");
  EXPECT_EQ(st.code(), absl::StatusCode::kInternal);
  EXPECT_THAT(std::string(st.message()), StartsWith("d2i_X509: "));
  EXPECT_THAT(std::string(st.message()), HasSubstr("asn1"));  // OpenSSL's own text
  EXPECT_EQ(ERR_peek_error(), 0u) << "the queue must be empty afterwards";
}

TEST(OpenSslErrorTest, EmptyQueueStillGivesAMessage) {
  ClearOpenSslErrors();
  const absl::Status st = OpenSslError("X509_sign");
  EXPECT_EQ(st.code(), absl::StatusCode::kInternal);
  EXPECT_THAT(std::string(st.message()), StartsWith("X509_sign: "));
}

TEST(ClearOpenSslErrorsTest, EmptiesTheQueue) {
  const unsigned char garbage[] = {0xff};
  const unsigned char* p = garbage;
  d2i_X509(nullptr, &p, sizeof(garbage));
  ClearOpenSslErrors();
  EXPECT_EQ(ERR_peek_error(), 0u);
}

TEST(CertificateCodecTest, PemAndDerRoundTrip) {
  X509Ptr cert = MakeRawCertificate(CachedKey(KeyAlgorithm::kEcdsaP256), "root");
  auto pem = CertificateToPem(cert.get());
  ASSERT_TRUE(pem.ok()) << pem.status();
  EXPECT_THAT(*pem, StartsWith("-----BEGIN CERTIFICATE-----\n"));
  auto der = CertificateToDer(cert.get());
  ASSERT_TRUE(der.ok()) << der.status();

  auto from_pem = CertificateFromPem(*pem);
  ASSERT_TRUE(from_pem.ok()) << from_pem.status();
  EXPECT_EQ(X509_cmp(from_pem->get(), cert.get()), 0);
  auto from_der = CertificateFromDer(*der);
  ASSERT_TRUE(from_der.ok()) << from_der.status();
  EXPECT_EQ(X509_cmp(from_der->get(), cert.get()), 0);
  // DerToPem produces what OpenSSL's PEM writer does.
  EXPECT_EQ(DerToPem(*der, "CERTIFICATE"), *pem);
}

TEST(CertificateCodecTest, RejectsBadInput) {
  X509Ptr cert = MakeRawCertificate(CachedKey(KeyAlgorithm::kEcdsaP256), "root");
  const std::string der = *CertificateToDer(cert.get());
  struct Case {
    const char* name;
    std::string data;
    bool is_pem;
  };
  const Case cases[] = {
      {"pem_empty", "", true},
      {"pem_text", "hello", true},
      {"pem_bad_base64", "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n", true},
      {"pem_wrong_label", DerToPem(der, "PRIVATE KEY"), true},
      {"der_empty", "", false},
      {"der_garbage", "\x30\x82garbage", false},
      {"der_truncated", der.substr(0, der.size() - 1), false},
      {"der_trailing", der + "x", false},
  };
  ClearOpenSslErrors();
  for (const auto& c : cases) {
    auto parsed = c.is_pem ? CertificateFromPem(c.data) : CertificateFromDer(c.data);
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument) << c.name;
    EXPECT_EQ(ERR_peek_error(), 0u) << c.name << ": the error queue must be left empty";
  }
}

TEST(CertificatesFromPemTest, ReadsABundleInOrderSkippingOtherBlocks) {
  X509Ptr a = MakeRawCertificate(CachedKey(KeyAlgorithm::kEcdsaP256), "a", 1);
  X509Ptr b = MakeRawCertificate(CachedKey(KeyAlgorithm::kEd25519), "b", 2);
  const std::string bundle =
      absl::StrCat("# trust bundle\n", *CertificateToPem(a.get()),
                   DerToPem("params", "EC PARAMETERS"), "\n", *CertificateToPem(b.get()));
  auto certs = CertificatesFromPem(bundle);
  ASSERT_TRUE(certs.ok()) << certs.status();
  ASSERT_EQ(certs->size(), 2u);
  EXPECT_EQ(X509_cmp((*certs)[0].get(), a.get()), 0);
  EXPECT_EQ(X509_cmp((*certs)[1].get(), b.get()), 0);
}

TEST(CertificatesFromPemTest, RejectsEmptyAndBrokenBundles) {
  X509Ptr a = MakeRawCertificate(CachedKey(KeyAlgorithm::kEcdsaP256), "a");
  const std::string good = *CertificateToPem(a.get());
  struct Case {
    const char* name;
    std::string pem;
  };
  const Case cases[] = {
      {"empty", ""},
      {"no_block", "just text\n"},
      {"only_other_blocks", DerToPem("x", "PUBLIC KEY")},
      {"second_not_a_certificate", good + DerToPem("not DER", "CERTIFICATE")},
      {"second_truncated", good + good.substr(0, good.size() / 2)},
  };
  ClearOpenSslErrors();
  for (const auto& c : cases) {
    auto certs = CertificatesFromPem(c.pem);
    EXPECT_EQ(certs.status().code(), absl::StatusCode::kInvalidArgument) << c.name;
    EXPECT_EQ(ERR_peek_error(), 0u) << c.name;
  }
}

TEST(CsrCodecTest, PemAndDerRoundTrip) {
  X509ReqPtr req = testing::MakeCsr(CachedKey(KeyAlgorithm::kEcdsaP256));
  auto pem = CsrToPem(req.get());
  ASSERT_TRUE(pem.ok());
  EXPECT_THAT(*pem, StartsWith("-----BEGIN CERTIFICATE REQUEST-----\n"));
  auto der = CsrToDer(req.get());
  ASSERT_TRUE(der.ok());
  EXPECT_EQ(DerToPem(*der, "CERTIFICATE REQUEST"), *pem);
}

TEST(DerToPemTest, WrapsAt64Columns) {
  const std::string der(200, '\x01');
  const std::string pem = DerToPem(der, "X509 CRL");
  std::vector<std::string> lines = absl::StrSplit(pem, '\n');
  ASSERT_GE(lines.size(), 4u);
  EXPECT_EQ(lines.front(), "-----BEGIN X509 CRL-----");
  EXPECT_EQ(lines[lines.size() - 2], "-----END X509 CRL-----");
  EXPECT_EQ(lines.back(), "");
  for (size_t i = 1; i + 2 < lines.size(); ++i) {
    EXPECT_LE(lines[i].size(), 64u);
  }
  EXPECT_EQ(lines[1].size(), 64u);
}

TEST(Sha256HexTest, KnownAnswers) {
  struct Case {
    const char* name;
    std::string data;
    const char* hex;
  };
  const Case cases[] = {
      {"empty", "", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
      {"abc", "abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(Sha256Hex(c.data), c.hex) << c.name;
  }
}

TEST(NameToStringTest, Rfc2253) {
  struct Case {
    const char* name;
    std::vector<std::pair<int, std::string>> entries;  // in encoding order
    const char* want;
  };
  const Case cases[] = {
      {"cn_only", {{NID_commonName, "dev1"}}, "CN=dev1"},
      {"reversed_order",
       {{NID_countryName, "FR"}, {NID_organizationName, "Acme"}, {NID_commonName, "dev1"}},
       "CN=dev1,O=Acme,C=FR"},
      {"escapes_comma", {{NID_commonName, "a,b"}}, "CN=a\\,b"},
      {"keeps_utf8", {{NID_commonName, "d\xc3\xa9v"}}, "CN=d\xc3\xa9v"},
      {"empty", {}, ""},
  };
  for (const auto& c : cases) {
    X509NamePtr name(X509_NAME_new());
    for (const auto& [nid, value] : c.entries) {
      ASSERT_EQ(X509_NAME_add_entry_by_NID(name.get(), nid, MBSTRING_UTF8,
                                           reinterpret_cast<const unsigned char*>(value.data()),
                                           static_cast<int>(value.size()), -1, 0),
                1)
          << c.name;
    }
    EXPECT_EQ(NameToString(name.get()), c.want) << c.name;
  }
  EXPECT_EQ(NameToString(nullptr), "");
}

}  // namespace
}  // namespace fleetca::pki
