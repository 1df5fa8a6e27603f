#include "pki/csr.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/err.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "tests/pki/pki_test_util.h"

namespace fleetca::pki {
namespace {

using testing::CachedKey;
using testing::CsrDer;
using testing::CsrPem;
using testing::CsrSpec;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using testing::MakeCsr;
using ::testing::StartsWith;

constexpr char kField[] = "device_csr";

CsrSpec Spec(std::vector<std::string> common_names, std::string organization = "") {
  CsrSpec spec;
  spec.common_names = std::move(common_names);
  spec.organization = std::move(organization);
  return spec;
}

CsrSpec SanSpec(std::string san, bool basic_constraints = false, bool duplicate_san = false) {
  CsrSpec spec;
  spec.san = std::move(san);
  spec.add_basic_constraints = basic_constraints;
  spec.duplicate_san = duplicate_san;
  return spec;
}

TEST(ParseCsrTest, AcceptsPemAndDerForEveryAllowedAlgorithm) {
  ClearOpenSslErrors();
  for (const KeyAlgorithm algorithm : testing::kAllAlgorithms) {
    const char* name = KeyAlgorithmName(algorithm);
    const EVP_PKEY* key = CachedKey(algorithm);
    X509ReqPtr req = MakeCsr(key, Spec({"dev-1"}));
    const std::string der = CsrDer(req.get());
    for (const bool is_pem : {true, false}) {
      const std::string input = is_pem ? CsrPem(req.get()) : der;
      auto csr = ParseCsr(kField, input, is_pem);
      ASSERT_TRUE(csr.ok()) << name << (is_pem ? " PEM: " : " DER: ") << csr.status();
      EXPECT_EQ(csr->key_algorithm, algorithm) << name;
      EXPECT_EQ(csr->public_key_der, *PublicKeyToDer(key)) << name;
      EXPECT_EQ(csr->der, der) << name;
      EXPECT_THAT(csr->common_names, ElementsAre("dev-1")) << name;
      EXPECT_THAT(csr->dns_names, IsEmpty());
      EXPECT_THAT(csr->ip_addresses, IsEmpty());
      EXPECT_FALSE(csr->has_other_names);
      EXPECT_THAT(csr->extension_oids, IsEmpty());
      EXPECT_EQ(ERR_peek_error(), 0u) << name;
    }
  }
}

TEST(ParseCsrTest, PemVariantsThatAreAccepted) {
  X509ReqPtr req = MakeCsr(CachedKey(KeyAlgorithm::kEcdsaP256));
  const std::string pem = CsrPem(req.get());
  const std::string der = CsrDer(req.get());
  struct Case {
    const char* name;
    std::string pem;
  };
  const Case cases[] = {
      {"plain", pem},
      {"surrounding_whitespace", absl::StrCat("\n \t\r\n", pem, "\n\n  \n")},
      {"crlf", absl::StrReplaceAll(pem, {{"\n", "\r\n"}})},
      {"no_final_newline", pem.substr(0, pem.size() - 1)},
      {"netscape_label", DerToPem(der, "NEW CERTIFICATE REQUEST")},
  };
  for (const auto& c : cases) {
    auto csr = ParseCsr(kField, c.pem, true);
    ASSERT_TRUE(csr.ok()) << c.name << ": " << csr.status();
    EXPECT_EQ(csr->der, der) << c.name;
  }
}

TEST(ParseCsrTest, RejectsBadInput) {
  ClearOpenSslErrors();
  const EVP_PKEY* key = CachedKey(KeyAlgorithm::kEcdsaP256);
  X509ReqPtr req = MakeCsr(key);
  const std::string pem = CsrPem(req.get());
  const std::string der = CsrDer(req.get());
  X509ReqPtr other_req = MakeCsr(CachedKey(KeyAlgorithm::kEd25519), Spec({"dev-2"}));

  // A broken signature: flip a bit in the last byte of the DER, which is the signature BIT
  // STRING's last byte.
  std::string bad_sig_der = der;
  bad_sig_der.back() = static_cast<char>(bad_sig_der.back() ^ 0x01);
  // A CSR whose signature is by another key than the one it carries.
  X509ReqPtr stolen = MakeCsr(key);
  ASSERT_GT(
      X509_REQ_sign(stolen.get(), const_cast<EVP_PKEY*>(CachedKey(KeyAlgorithm::kEcdsaP256, 1)),
                    EVP_sha256()),
      0);
  std::string bad_base64 = pem;
  bad_base64[pem.find('\n') + 10] = '*';
  EvpPkeyPtr rsa1024 = testing::GenerateRsa(1024);
  EvpPkeyPtr k1 = testing::GenerateEc("secp256k1");
  EvpPkeyPtr dsa = testing::GenerateDsa();
  ASSERT_TRUE(rsa1024 && k1 && dsa);

  struct Case {
    const char* name;
    std::string data;
    bool is_pem;
    const char* why;
  };
  const Case cases[] = {
      {"empty_pem", "", true, "is empty"},
      {"empty_der", "", false, "is empty"},
      {"oversized_pem", pem + std::string(kMaxCsrBytes, ' '), true, "more than the limit"},
      {"oversized_der", std::string(kMaxCsrBytes + 1, '\x30'), false, "more than the limit"},
      {"whitespace_only", " \n\t", true, "no CERTIFICATE REQUEST block"},
      {"not_pem", "hello world", true, "no CERTIFICATE REQUEST block"},
      {"der_given_as_pem", der, true, "no CERTIFICATE REQUEST block"},
      {"text_before_block", "Subject: CN=dev-1\n" + pem, true, "no CERTIFICATE REQUEST block"},
      {"text_after_block", pem + "garbage\n", true, "unexpected text after"},
      {"two_blocks", pem + pem, true, "more than one PEM block"},
      {"two_different_blocks", pem + CsrPem(other_req.get()), true, "more than one PEM block"},
      {"wrong_label", DerToPem(der, "CERTIFICATE"), true, "another label"},
      {"no_end_line", pem.substr(0, pem.find("-----END")), true, "malformed PEM"},
      {"bad_base64", bad_base64, true, "malformed PEM"},
      {"pem_headers",
       absl::StrReplaceAll(pem, {{"REQUEST-----\n", "REQUEST-----\nProc-Type: 4,ENCRYPTED\n\n"}}),
       true, "PEM headers are not allowed"},
      {"pem_body_not_der", DerToPem("this is not DER", "CERTIFICATE REQUEST"), true,
       "the PEM block is not a DER-encoded CERTIFICATE REQUEST"},
      {"pem_body_trailing", DerToPem(der + "xx", "CERTIFICATE REQUEST"), true,
       "trailing bytes after the DER CERTIFICATE REQUEST in the PEM block"},
      {"garbage_der", "\x01\x02garbage\xff", false, "the input is not a DER-encoded"},
      {"pem_given_as_der", pem, false, "not a DER-encoded"},
      {"truncated_der", der.substr(0, der.size() - 1), false, "not a DER-encoded"},
      {"trailing_der", der + std::string("\0", 1), false, "trailing bytes after the DER"},
      {"two_ders", der + der, false, "trailing bytes after the DER"},
      {"broken_signature_der", bad_sig_der, false, "signature does not verify"},
      {"broken_signature_pem", DerToPem(bad_sig_der, "CERTIFICATE REQUEST"), true,
       "signature does not verify"},
      {"signed_by_another_key", CsrDer(stolen.get()), false, "signature does not verify"},
      {"rsa_1024", CsrDer(MakeCsr(rsa1024.get()).get()), false,
       "RSA key of 1024 bits is too weak: at least 2048"},
      {"secp256k1", CsrDer(MakeCsr(k1.get()).get()), false,
       "EC curve secp256k1 is not supported: P-256 or P-384"},
      {"dsa", CsrDer(MakeCsr(dsa.get()).get()), false, "DSA keys are not supported"},
  };
  ClearOpenSslErrors();
  for (const auto& c : cases) {
    auto csr = ParseCsr(kField, c.data, c.is_pem);
    ASSERT_FALSE(csr.ok()) << c.name;
    EXPECT_EQ(csr.status().code(), absl::StatusCode::kInvalidArgument) << c.name;
    EXPECT_THAT(std::string(csr.status().message()), StartsWith("device_csr: ")) << c.name;
    EXPECT_THAT(std::string(csr.status().message()), HasSubstr(c.why))
        << c.name << ": " << csr.status();
    EXPECT_EQ(ERR_peek_error(), 0u) << c.name << ": the error queue must be left empty";
  }
}

TEST(ParseCsrTest, SubjectChangedAfterSigningFailsProofOfPossession) {
  // Re-encode a signed CSR with one more CN, keeping the old signature.
  X509ReqPtr req = MakeCsr(CachedKey(KeyAlgorithm::kEcdsaP256), Spec({"dev-1"}));
  X509ReqPtr unsigned_copy = MakeCsr(CachedKey(KeyAlgorithm::kEcdsaP256), Spec({"dev-1", "dev-2"}));
  const ASN1_BIT_STRING* sig = nullptr;
  const X509_ALGOR* alg = nullptr;
  X509_REQ_get0_signature(req.get(), &sig, &alg);
  // Move the old signature onto the new body.
  ASN1_BIT_STRING* new_sig = nullptr;
  X509_ALGOR* new_alg = nullptr;
  X509_REQ_get0_signature(unsigned_copy.get(), const_cast<const ASN1_BIT_STRING**>(&new_sig),
                          const_cast<const X509_ALGOR**>(&new_alg));
  ASSERT_EQ(ASN1_STRING_set(new_sig, ASN1_STRING_get0_data(sig), ASN1_STRING_length(sig)), 1);
  auto csr = ParseCsr(kField, CsrDer(unsigned_copy.get()), false);
  EXPECT_EQ(csr.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(csr.status().message()), HasSubstr("signature does not verify"));
}

// ParseCsr verifies P-256/P-384 requests on a fast path of its own and everything else
// through OpenSSL's verifier: both must agree on what a valid request is.
TEST(ParseCsrTest, FastAndGeneralProofOfPossessionAgree) {
  const EVP_PKEY* p256 = CachedKey(KeyAlgorithm::kEcdsaP256);
  struct Case {
    const char* name;
    const EVP_PKEY* key;
    const EVP_MD* md;
    bool compressed;
  };
  const Case cases[] = {
      {"p256_sha256", p256, EVP_sha256(), false},
      {"p256_sha384", p256, EVP_sha384(), false},
      {"p256_sha512", p256, EVP_sha512(), false},
      {"p384_sha384", CachedKey(KeyAlgorithm::kEcdsaP384), EVP_sha384(), false},
      {"p256_sha1_general_path", p256, EVP_sha1(), false},
      {"p256_compressed_point_general_path", p256, EVP_sha256(), true},
  };
  for (const auto& c : cases) {
    EvpPkeyPtr key(EVP_PKEY_dup(const_cast<EVP_PKEY*>(c.key)));
    ASSERT_NE(key, nullptr);
    if (c.compressed) {
      ASSERT_EQ(EVP_PKEY_set_utf8_string_param(key.get(), "point-format", "compressed"), 1);
    }
    X509ReqPtr req = MakeCsr(key.get(), Spec({"dev-1"}));
    ASSERT_GT(X509_REQ_sign(req.get(), key.get(), c.md), 0) << c.name;
    std::string der = CsrDer(req.get());
    auto csr = ParseCsr(kField, der, false);
    ASSERT_TRUE(csr.ok()) << c.name << ": " << csr.status();
    EXPECT_EQ(csr->public_key_der, *PublicKeyToDer(key.get())) << c.name;
    EXPECT_THAT(csr->common_names, ElementsAre("dev-1")) << c.name;
    // The same request with its signature broken fails on either path.
    der.back() = static_cast<char>(der.back() ^ 0x01);
    auto broken = ParseCsr(kField, der, false);
    ASSERT_FALSE(broken.ok()) << c.name;
    EXPECT_THAT(std::string(broken.status().message()), HasSubstr("signature does not verify"))
        << c.name;
    EXPECT_EQ(ERR_peek_error(), 0u) << c.name;
  }
}

TEST(ParseCsrTest, CollectsEveryCommonName) {
  struct Case {
    const char* name;
    CsrSpec spec;
    std::vector<std::string> want;
  };
  const Case cases[] = {
      {"one", Spec({"356938035643809"}), {"356938035643809"}},
      {"none", Spec({}, "Acme"), {}},
      {"two", Spec({"dev-1", "dev-2"}), {"dev-1", "dev-2"}},
      {"with_org", Spec({"dev-1"}, "Acme"), {"dev-1"}},
      {"case_and_space_kept", Spec({"Dev-1 "}), {"Dev-1 "}},
      {"utf8", Spec({"d\xc3\xa9v"}), {"d\xc3\xa9v"}},
  };
  for (const auto& c : cases) {
    X509ReqPtr req = MakeCsr(CachedKey(KeyAlgorithm::kEcdsaP256), c.spec);
    auto csr = ParseCsr(kField, CsrDer(req.get()), false);
    ASSERT_TRUE(csr.ok()) << c.name << ": " << csr.status();
    EXPECT_EQ(csr->common_names, c.want) << c.name;
  }
}

TEST(ParseCsrTest, ReadsTheExtensionRequest) {
  struct Case {
    const char* name;
    CsrSpec spec;
    std::vector<std::string> dns;
    std::vector<std::string> ips;
    bool other_names;
    std::vector<std::string> oids;
  };
  const Case cases[] = {
      {"dns_and_ips",
       SanSpec("DNS:broker.example,DNS:*.example,IP:192.0.2.1,IP:2001:db8::1"),
       {"broker.example", "*.example"},
       {"192.0.2.1", "2001:db8::1"},
       false,
       {"2.5.29.17"}},
      {"uri_is_other", SanSpec("URI:https://dev-1.example/"), {}, {}, true, {"2.5.29.17"}},
      {"email_is_other",
       SanSpec("DNS:a.example,email:a@example.com"),
       {"a.example"},
       {},
       true,
       {"2.5.29.17"}},
      {"ipv4_mapped_v6",
       SanSpec("IP:::ffff:192.0.2.7"),
       {},
       {"::ffff:192.0.2.7"},
       false,
       {"2.5.29.17"}},
      {"basic_constraints_only", SanSpec("", true), {}, {}, false, {"2.5.29.19"}},
      {"san_and_basic_constraints",
       SanSpec("DNS:x.example", true),
       {"x.example"},
       {},
       false,
       {"2.5.29.17", "2.5.29.19"}},
  };
  for (const auto& c : cases) {
    X509ReqPtr req = MakeCsr(CachedKey(KeyAlgorithm::kEcdsaP384), c.spec);
    auto csr = ParseCsr(kField, CsrPem(req.get()), true);
    ASSERT_TRUE(csr.ok()) << c.name << ": " << csr.status();
    EXPECT_EQ(csr->dns_names, c.dns) << c.name;
    EXPECT_EQ(csr->ip_addresses, c.ips) << c.name;
    EXPECT_EQ(csr->has_other_names, c.other_names) << c.name;
    EXPECT_EQ(csr->extension_oids, c.oids) << c.name;
  }
}

TEST(ParseCsrTest, RejectsAnAmbiguousExtensionRequest) {
  X509ReqPtr req =
      MakeCsr(CachedKey(KeyAlgorithm::kEcdsaP256), SanSpec("DNS:a.example", false, true));
  auto csr = ParseCsr(kField, CsrDer(req.get()), false);
  EXPECT_EQ(csr.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(csr.status().message()),
              HasSubstr("extension 2.5.29.17 is requested more than once"));
}

// Interop: CSRs made by the real `openssl req`, as a provisioning station would.
TEST(ParseCsrTest, AcceptsCsrsFromTheOpensslCli) {
  // scripts/deps.sh installs Debian's openssl package: its absence is a failure, not a skip.
  ASSERT_TRUE(testing::HaveOpensslCli()) << "the openssl command is required";
  const std::string dir = testing::MakeTempDir();
  struct Case {
    const char* name;
    const char* newkey;
    KeyAlgorithm algorithm;
    const char* outform;
  };
  const Case cases[] = {
      {"p256_pem", "-newkey ec -pkeyopt ec_paramgen_curve:P-256", KeyAlgorithm::kEcdsaP256, "PEM"},
      {"p384_der", "-newkey ec -pkeyopt ec_paramgen_curve:P-384", KeyAlgorithm::kEcdsaP384, "DER"},
      {"rsa2048_pem", "-newkey rsa:2048", KeyAlgorithm::kRsa2048, "PEM"},
      {"ed25519_der", "-newkey ed25519", KeyAlgorithm::kEd25519, "DER"},
  };
  for (const auto& c : cases) {
    const std::string out = absl::StrCat(dir, "/", c.name, ".csr");
    const auto result = testing::Run(absl::StrCat(
        "openssl req -new ", c.newkey, " -nodes -keyout ", dir, "/", c.name, ".key",
        " -subj /CN=356938035643809 -addext subjectAltName=DNS:dev.example,IP:192.0.2.9",
        " -outform ", c.outform, " -out ", out));
    ASSERT_EQ(result.exit_code, 0) << c.name << ": " << result.output;
    auto csr = ParseCsr(kField, testing::ReadFile(out), std::string(c.outform) == "PEM");
    ASSERT_TRUE(csr.ok()) << c.name << ": " << csr.status();
    EXPECT_EQ(csr->key_algorithm, c.algorithm) << c.name;
    EXPECT_THAT(csr->common_names, ElementsAre("356938035643809")) << c.name;
    EXPECT_THAT(csr->dns_names, ElementsAre("dev.example")) << c.name;
    EXPECT_THAT(csr->ip_addresses, ElementsAre("192.0.2.9")) << c.name;
  }
  testing::Run("rm -rf " + dir);
}

}  // namespace
}  // namespace fleetca::pki
