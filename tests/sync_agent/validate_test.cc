// The checks that stand between a rendered file and mosquitto, against real OpenSSL objects.
#include "sync_agent/validate.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "tests/sync_agent/sync_test_util.h"

namespace fleetca::sync_agent {
namespace {

using namespace ::fleetca::sync_agent::testing;  // NOLINT
using ::testing::HasSubstr;

class ValidateTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    pki_ = new TestPki();
    pki_->AddCa("root", "Validate Root");
    pki_->AddCa("devices", "Validate Devices", "root");
    // Same subject name as "devices", another key: a CRL it signs names "devices".
    pki_->AddCa("impostor", "Validate Devices", "root");
  }
  static void TearDownTestSuite() {
    delete pki_;
    pki_ = nullptr;
  }
  static std::vector<const X509*> Issuers() {
    return {pki_->ca("root").cert.get(), pki_->ca("devices").cert.get()};
  }
  static TestPki* pki_;
};
TestPki* ValidateTest::pki_ = nullptr;

TEST_F(ValidateTest, CafileOfCaCertificatesIsAccepted) {
  auto certs = ValidateCaFile(absl::StrCat(pki_->ca("root").pem, "\n", pki_->ca("devices").pem));
  ASSERT_TRUE(certs.ok()) << certs.status();
  EXPECT_EQ(certs->size(), 2u);
}

TEST_F(ValidateTest, TruncatedCafileIsRefused) {
  const std::string whole = absl::StrCat(pki_->ca("root").pem, pki_->ca("devices").pem);
  // Cut in the middle of the second block, at a line end and mid-line.
  const size_t second = whole.find("-----BEGIN", 10);
  for (size_t cut : {whole.size() - 30, second + 100, whole.size() - 1 - 26}) {
    auto certs = ValidateCaFile(whole.substr(0, cut));
    EXPECT_FALSE(certs.ok()) << "cut at " << cut;
    EXPECT_EQ(certs.status().code(), absl::StatusCode::kInvalidArgument);
  }
  // The END line alone missing.
  const std::string no_end = whole.substr(0, whole.rfind("-----END"));
  EXPECT_THAT(std::string(ValidateCaFile(no_end).status().message()), HasSubstr("truncated"));
}

TEST_F(ValidateTest, CafileRefusesWhatIsNotACaCertificate) {
  TestLeaf leaf = pki_->Issue("devices", "dev-1");
  struct Case {
    const char* name;
    std::string text;
    const char* error;
  };
  const std::string root = pki_->ca("root").pem;
  const std::string root_der = *pki::CertificateToDer(pki_->ca("root").cert.get());
  const std::vector<Case> cases = {
      {"empty", "", "no certificate"},
      {"whitespace", "\n \n", "no certificate"},
      {"leaf", absl::StrCat(root, leaf.cert_pem), "is not a CA"},
      {"private_key", absl::StrCat(root, leaf.key_pem), "not a CERTIFICATE"},
      {"crl", pki::DerToPem(pki_->CrlDer("root", {}), "X509 CRL"), "not a CERTIFICATE"},
      {"text_between", absl::StrCat(root, "garbage\n", pki_->ca("devices").pem), "outside"},
      {"bad_base64", absl::StrCat(root.substr(0, 40), "!!!!", root.substr(40)), ""},
      {"truncated_der", pki::DerToPem(root_der.substr(0, root_der.size() - 10), "CERTIFICATE"),
       "does not parse"},
      {"mismatched_end", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END X509 CRL-----\n",
       "ends with"},
  };
  for (const Case& c : cases) {
    auto certs = ValidateCaFile(c.text);
    ASSERT_FALSE(certs.ok()) << c.name;
    EXPECT_EQ(certs.status().code(), absl::StatusCode::kInvalidArgument) << c.name;
    EXPECT_THAT(std::string(certs.status().message()), HasSubstr(c.error)) << c.name;
  }
}

TEST_F(ValidateTest, CrlSignedByItsIssuerIsAccepted) {
  const std::string pem =
      absl::StrCat(pki::DerToPem(pki_->CrlDer("devices", {"\x01\x02"}), "X509 CRL"),
                   pki::DerToPem(pki_->CrlDer("root", {}), "X509 CRL"));
  std::vector<std::string> warnings;
  EXPECT_TRUE(ValidateCrlFile(pem, Issuers(), absl::Now(), &warnings).ok());
  EXPECT_TRUE(warnings.empty());
}

TEST_F(ValidateTest, CrlSignedByAnotherKeyIsRefused) {
  const std::string forged = pki::DerToPem(pki_->CrlDerSignedBy("devices", "impostor"), "X509 CRL");
  absl::Status status = ValidateCrlFile(forged, Issuers(), absl::Now(), nullptr);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()), HasSubstr("is not signed by its issuer's key"));
  // A CRL of an issuer the state does not hold.
  status = ValidateCrlFile(pki::DerToPem(pki_->CrlDer("devices", {}), "X509 CRL"),
                           {pki_->ca("root").cert.get()}, absl::Now(), nullptr);
  EXPECT_THAT(std::string(status.message()), HasSubstr("names no known issuer"));
}

TEST_F(ValidateTest, ExpiredCrlIsAcceptedWithAWarning) {
  const std::string pem = pki::DerToPem(
      pki_->CrlDer("devices", {}, 1, absl::Now() - absl::Hours(48), absl::Now() - absl::Hours(24)),
      "X509 CRL");
  std::vector<std::string> warnings;
  EXPECT_TRUE(ValidateCrlFile(pem, Issuers(), absl::Now(), &warnings).ok());
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_THAT(warnings[0], HasSubstr("past its nextUpdate"));
}

TEST_F(ValidateTest, CrlfileRefusesEmptyTruncatedAndForeignBlocks) {
  const std::string crl = pki::DerToPem(pki_->CrlDer("devices", {}), "X509 CRL");
  EXPECT_FALSE(ValidateCrlFile("", Issuers(), absl::Now(), nullptr).ok());
  EXPECT_FALSE(
      ValidateCrlFile(crl.substr(0, crl.size() - 20), Issuers(), absl::Now(), nullptr).ok());
  EXPECT_FALSE(
      ValidateCrlFile(absl::StrCat(crl, pki_->ca("root").pem), Issuers(), absl::Now(), nullptr)
          .ok());
}

TEST(CheckAclFileTest, AcceptsWhatRenderWrites) {
  EXPECT_TRUE(CheckAclFile("").ok());
  EXPECT_TRUE(CheckAclFile("# comment\n\nuser dev-1\ntopic deny devices/dev-1/secret\n"
                           "topic readwrite devices/dev-1/#\ntopic read a b/+\ntopic write x\n"
                           "user w\n")
                  .ok());
}

TEST(CheckAclFileTest, RefusesWhatMosquittoWouldMisreadOrRefuse) {
  struct Case {
    const char* name;
    const char* text;
    const char* error;
  };
  const Case cases[] = {
      {"unknown_access", "user a\ntopic bogus x\n", "unknown access"},
      {"no_filter", "user a\ntopic read\n", "needs an access and a filter"},
      {"user_without_name", "user \n", "needs a name"},
      {"user_keyword_only", "user\n", "neither"},
      {"double_space_name", "user  a\n", "needs a name"},
      {"trailing_space", "user a\ntopic read a/b \n", "surrounding white space"},
      {"double_space_filter", "user a\ntopic read  a/b\n", "surrounding white space"},
      {"bad_wildcard", "user a\ntopic read a/+b\n", "line 2"},
      {"hash_not_last", "user a\ntopic read #/a\n", ""},
      {"control", "user a\ntopic read a\tb\n", "control character"},
      {"carriage_return", "user a\r\n", "control character"},
      {"topic_before_user", "topic read #\nuser a\n", "before the first user"},
      {"pattern_line", "user a\npattern read %c/#\n", "neither"},
      {"leading_space", " user a\n", "neither"},
      {"no_final_newline", "user a\ntopic read x", "newline"},
  };
  for (const Case& c : cases) {
    absl::Status status = CheckAclFile(c.text);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << c.name;
    EXPECT_THAT(std::string(status.message()), HasSubstr(c.error)) << c.name << ": " << status;
  }
}

}  // namespace
}  // namespace fleetca::sync_agent
