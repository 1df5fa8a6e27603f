#include "pki/keys.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/err.h>
#include <openssl/pem.h>

#include <string>

#include "tests/pki/pki_test_util.h"

namespace fleetca::pki {
namespace {

using testing::CachedKey;
using ::testing::HasSubstr;
using testing::kAllAlgorithms;

// SignVerify signs a message with key and checks the signature with a key decoded from the
// public half only (so that a private key that lost its public part would fail).
void ExpectSignsAndVerifies(const EVP_PKEY* key, const char* name) {
  const std::string message = "fleetca";
  const EVP_MD* md = testing::TestDigest(key);
  EVP_MD_CTX* sctx = EVP_MD_CTX_new();
  ASSERT_EQ(EVP_DigestSignInit(sctx, nullptr, md, nullptr, const_cast<EVP_PKEY*>(key)), 1) << name;
  size_t sig_len = 0;
  ASSERT_EQ(EVP_DigestSign(sctx, nullptr, &sig_len,
                           reinterpret_cast<const unsigned char*>(message.data()), message.size()),
            1);
  std::string sig(sig_len, '\0');
  ASSERT_EQ(EVP_DigestSign(sctx, reinterpret_cast<unsigned char*>(sig.data()), &sig_len,
                           reinterpret_cast<const unsigned char*>(message.data()), message.size()),
            1)
      << name;
  sig.resize(sig_len);
  EVP_MD_CTX_free(sctx);

  unsigned char* spki = nullptr;
  const int spki_len = i2d_PUBKEY(key, &spki);
  ASSERT_GT(spki_len, 0);
  const unsigned char* p = spki;
  EvpPkeyPtr pub(d2i_PUBKEY(nullptr, &p, spki_len));
  OPENSSL_free(spki);
  ASSERT_NE(pub, nullptr);

  EVP_MD_CTX* vctx = EVP_MD_CTX_new();
  ASSERT_EQ(EVP_DigestVerifyInit(vctx, nullptr, md, nullptr, pub.get()), 1);
  EXPECT_EQ(
      EVP_DigestVerify(vctx, reinterpret_cast<const unsigned char*>(sig.data()), sig.size(),
                       reinterpret_cast<const unsigned char*>(message.data()), message.size()),
      1)
      << name;
  EVP_MD_CTX_free(vctx);
}

TEST(KeyAlgorithmNameTest, RoundTripsAndRejectsOtherSpellings) {
  struct Case {
    KeyAlgorithm algorithm;
    const char* name;
  };
  const Case cases[] = {
      {KeyAlgorithm::kEcdsaP256, "ecdsa-p256"}, {KeyAlgorithm::kEcdsaP384, "ecdsa-p384"},
      {KeyAlgorithm::kRsa2048, "rsa-2048"},     {KeyAlgorithm::kRsa3072, "rsa-3072"},
      {KeyAlgorithm::kRsa4096, "rsa-4096"},     {KeyAlgorithm::kEd25519, "ed25519"},
  };
  for (const auto& c : cases) {
    EXPECT_STREQ(KeyAlgorithmName(c.algorithm), c.name);
    auto parsed = ParseKeyAlgorithmName(c.name);
    ASSERT_TRUE(parsed.ok()) << c.name;
    EXPECT_EQ(*parsed, c.algorithm) << c.name;
  }
  for (const char* bad : {"", "RSA-2048", "rsa-1024", "ecdsa-p521", "ed448", " ed25519", "ec"}) {
    EXPECT_EQ(ParseKeyAlgorithmName(bad).status().code(), absl::StatusCode::kInvalidArgument)
        << "'" << bad << "'";
  }
}

TEST(GenerateKeyTest, EveryAlgorithmGeneratesSignsAndRoundTripsThroughPkcs8) {
  for (const KeyAlgorithm algorithm : kAllAlgorithms) {
    const char* name = KeyAlgorithmName(algorithm);
    const EVP_PKEY* key = CachedKey(algorithm);
    ASSERT_NE(key, nullptr) << name;

    auto classified = KeyAlgorithmOf(key);
    ASSERT_TRUE(classified.ok()) << name << ": " << classified.status();
    EXPECT_EQ(*classified, algorithm) << name;
    ExpectSignsAndVerifies(key, name);

    auto der = PrivateKeyToDer(key);
    ASSERT_TRUE(der.ok()) << name << ": " << der.status();
    // PKCS#8 (RFC 5208): a SEQUENCE whose first element is version INTEGER 0.
    ASSERT_GT(der->size(), 8u);
    EXPECT_EQ(static_cast<unsigned char>((*der)[0]), 0x30) << name;
    {
      const unsigned char* p = reinterpret_cast<const unsigned char*>(der->data());
      PKCS8_PRIV_KEY_INFO* p8 =
          d2i_PKCS8_PRIV_KEY_INFO(nullptr, &p, static_cast<long>(der->size()));
      EXPECT_NE(p8, nullptr) << name << ": not PKCS#8";
      PKCS8_PRIV_KEY_INFO_free(p8);
    }
    auto back = PrivateKeyFromDer(*der);
    ASSERT_TRUE(back.ok()) << name << ": " << back.status();
    EXPECT_TRUE(PublicKeysMatch(key, back->get())) << name;
    EXPECT_EQ(*KeyAlgorithmOf(back->get()), algorithm) << name;
    ExpectSignsAndVerifies(back->get(), name);
  }
}

TEST(GenerateKeyTest, KeysAreFresh) {
  auto a = GenerateKey(KeyAlgorithm::kEcdsaP256);
  auto b = GenerateKey(KeyAlgorithm::kEcdsaP256);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_FALSE(PublicKeysMatch(a->get(), b->get()));
}

TEST(KeyAlgorithmOfTest, RejectsWeakAndUnsupportedKeys) {
  struct Case {
    const char* name;
    EvpPkeyPtr key;
    const char* why;
  };
  Case cases[] = {
      {"rsa_1024", testing::GenerateRsa(1024), "RSA key of 1024 bits is too weak: at least 2048"},
      {"rsa_2047", testing::GenerateRsa(2047), "RSA key of 2047 bits is too weak"},
      {"secp256k1", testing::GenerateEc("secp256k1"),
       "EC curve secp256k1 is not supported: P-256 or P-384"},
      {"p521", testing::GenerateEc("P-521"), "EC curve secp521r1 is not supported"},
      {"brainpool", testing::GenerateEc("brainpoolP256r1"), "is not supported: P-256 or P-384"},
      {"dsa", testing::GenerateDsa(), "DSA keys are not supported"},
      {"ed448", testing::GenerateNamed("ED448"), "Ed448 keys are not supported"},
      {"x25519", testing::GenerateNamed("X25519"), "are not supported"},
      {"rsa_pss", testing::GenerateRsaPss(), "RSA-PSS keys are not supported"},
  };
  for (const auto& c : cases) {
    ASSERT_NE(c.key, nullptr) << c.name << ": test key generation failed";
    auto algorithm = KeyAlgorithmOf(c.key.get());
    EXPECT_EQ(algorithm.status().code(), absl::StatusCode::kInvalidArgument) << c.name;
    EXPECT_THAT(std::string(algorithm.status().message()), HasSubstr(c.why)) << c.name;
  }
  EXPECT_EQ(KeyAlgorithmOf(nullptr).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(KeyAlgorithmOfTest, OddRsaSizesRoundDown) {
  EvpPkeyPtr rsa2560 = testing::GenerateRsa(2560);
  ASSERT_NE(rsa2560, nullptr);
  auto algorithm = KeyAlgorithmOf(rsa2560.get());
  ASSERT_TRUE(algorithm.ok()) << algorithm.status();
  EXPECT_EQ(*algorithm, KeyAlgorithm::kRsa2048);
}

TEST(PrivateKeyFromDerTest, RejectsGarbage) {
  ClearOpenSslErrors();
  const std::string der = *PrivateKeyToDer(CachedKey(KeyAlgorithm::kEcdsaP256));
  struct Case {
    const char* name;
    std::string der;
  };
  const Case cases[] = {
      {"empty", ""},
      {"garbage", "not a key at all"},
      {"truncated", der.substr(0, der.size() - 3)},
      {"trailing", der + std::string(1, '\0')},
  };
  ClearOpenSslErrors();
  for (const auto& c : cases) {
    auto key = PrivateKeyFromDer(c.der);
    EXPECT_EQ(key.status().code(), absl::StatusCode::kInvalidArgument) << c.name;
    EXPECT_EQ(ERR_peek_error(), 0u) << c.name;
  }
}

std::string PemOf(const EVP_PKEY* key, bool traditional, const std::string& password) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  int ok = 0;
  if (traditional) {
    ok =
        PEM_write_bio_PrivateKey_traditional(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr);
  } else if (password.empty()) {
    ok = PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr);
  } else {
    ok = PEM_write_bio_PKCS8PrivateKey(bio.get(), key, EVP_aes_256_cbc(), password.data(),
                                       static_cast<int>(password.size()), nullptr, nullptr);
  }
  EXPECT_EQ(ok, 1);
  char* data = nullptr;
  const long len = BIO_ctrl(bio.get(), BIO_CTRL_INFO, 0, &data);
  return std::string(data, static_cast<size_t>(len));
}

TEST(PrivateKeyFromPemTest, ReadsPkcs8TraditionalAndEncryptedKeys) {
  ClearOpenSslErrors();
  struct Case {
    const char* name;
    KeyAlgorithm algorithm;
    bool traditional;
    std::string write_password;
    std::string read_password;
    bool ok;
  };
  const Case cases[] = {
      {"pkcs8_ec", KeyAlgorithm::kEcdsaP256, false, "", "", true},
      {"pkcs8_ed25519", KeyAlgorithm::kEd25519, false, "", "", true},
      {"traditional_ec", KeyAlgorithm::kEcdsaP384, true, "", "", true},
      {"traditional_rsa", KeyAlgorithm::kRsa2048, true, "", "", true},
      {"encrypted_right_password", KeyAlgorithm::kEcdsaP256, false, "s3cret", "s3cret", true},
      {"encrypted_wrong_password", KeyAlgorithm::kEcdsaP256, false, "s3cret", "guess", false},
      // Must fail rather than prompt on the terminal (OpenSSL's default callback would).
      {"encrypted_no_password", KeyAlgorithm::kEcdsaP256, false, "s3cret", "", false},
  };
  ClearOpenSslErrors();
  for (const auto& c : cases) {
    const EVP_PKEY* key = CachedKey(c.algorithm);
    const std::string pem = PemOf(key, c.traditional, c.write_password);
    auto read = PrivateKeyFromPem(pem, c.read_password);
    EXPECT_EQ(read.ok(), c.ok) << c.name << ": " << read.status();
    if (read.ok()) {
      EXPECT_TRUE(PublicKeysMatch(key, read->get())) << c.name;
    } else {
      EXPECT_EQ(read.status().code(), absl::StatusCode::kInvalidArgument) << c.name;
      EXPECT_THAT(std::string(read.status().message()), ::testing::Not(HasSubstr("s3cret")));
    }
    EXPECT_EQ(ERR_peek_error(), 0u) << c.name;
  }
  EXPECT_FALSE(PrivateKeyFromPem("", "").ok());
  EXPECT_FALSE(
      PrivateKeyFromPem("-----BEGIN PRIVATE KEY-----\n-----END PRIVATE KEY-----\n", "").ok());
}

TEST(PublicKeysMatchTest, Table) {
  ClearOpenSslErrors();
  const EVP_PKEY* p256 = CachedKey(KeyAlgorithm::kEcdsaP256);
  const EVP_PKEY* p256_other = CachedKey(KeyAlgorithm::kEcdsaP256, 1);
  const EVP_PKEY* ed = CachedKey(KeyAlgorithm::kEd25519);
  EvpPkeyPtr p256_copy = std::move(*PrivateKeyFromDer(*PrivateKeyToDer(p256)));
  struct Case {
    const char* name;
    const EVP_PKEY* a;
    const EVP_PKEY* b;
    bool match;
  };
  const Case cases[] = {
      {"same", p256, p256, true},
      {"decoded_copy", p256, p256_copy.get(), true},
      {"other_key", p256, p256_other, false},
      {"other_type", p256, ed, false},
      {"null", p256, nullptr, false},
  };
  ClearOpenSslErrors();
  for (const auto& c : cases) {
    EXPECT_EQ(PublicKeysMatch(c.a, c.b), c.match) << c.name;
    EXPECT_EQ(ERR_peek_error(), 0u) << c.name;
  }
}

}  // namespace
}  // namespace fleetca::pki
