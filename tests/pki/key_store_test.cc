#include "pki/key_store.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/objects.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "tests/pki/pki_test_util.h"

namespace fleetca::pki {
namespace {

using testing::CachedKey;
using ::testing::HasSubstr;
using testing::NewRef;

// UnsignedCertificate: a body for the store to sign (its content does not matter here).
X509Ptr UnsignedCertificate(const EVP_PKEY* subject_key) {
  X509Ptr cert(X509_new());
  X509_set_version(cert.get(), X509_VERSION_3);
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), 7);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_NID(name, NID_commonName, MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("x"), 1, -1, 0);
  X509_set_issuer_name(cert.get(), name);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), 0);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 60);
  X509_set_pubkey(cert.get(), const_cast<EVP_PKEY*>(subject_key));
  return cert;
}

X509CrlPtr UnsignedCrl() {
  X509CrlPtr crl(X509_CRL_new());
  X509_CRL_set_version(crl.get(), 1);
  X509NamePtr name(X509_NAME_new());
  X509_NAME_add_entry_by_NID(name.get(), NID_commonName, MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("ca"), 2, -1, 0);
  X509_CRL_set_issuer_name(crl.get(), name.get());
  ASN1_TIME* now = X509_gmtime_adj(nullptr, 0);
  X509_CRL_set1_lastUpdate(crl.get(), now);
  ASN1_TIME_free(now);
  return crl;
}

TEST(SoftwareKeyStoreTest, SignsWithTheRightDigestForEveryAlgorithm) {
  struct Case {
    KeyAlgorithm algorithm;
    int signature_nid;
  };
  const Case cases[] = {
      {KeyAlgorithm::kEcdsaP256, NID_ecdsa_with_SHA256},
      {KeyAlgorithm::kEcdsaP384, NID_ecdsa_with_SHA384},
      {KeyAlgorithm::kRsa2048, NID_sha256WithRSAEncryption},
      {KeyAlgorithm::kRsa3072, NID_sha256WithRSAEncryption},
      {KeyAlgorithm::kRsa4096, NID_sha256WithRSAEncryption},
      {KeyAlgorithm::kEd25519, NID_ED25519},
  };
  SoftwareKeyStore store;
  for (const auto& c : cases) {
    const char* name = KeyAlgorithmName(c.algorithm);
    const EVP_PKEY* key = CachedKey(c.algorithm);
    store.Add(name, NewRef(key));
    ASSERT_TRUE(store.HasKey(name));

    X509Ptr cert = UnsignedCertificate(CachedKey(KeyAlgorithm::kEcdsaP256, 1));
    ASSERT_TRUE(store.SignCertificate(name, cert.get()).ok()) << name;
    EXPECT_EQ(X509_get_signature_nid(cert.get()), c.signature_nid) << name;
    EXPECT_EQ(X509_verify(cert.get(), const_cast<EVP_PKEY*>(key)), 1) << name;

    X509ReqPtr req(X509_REQ_new());
    X509_REQ_set_pubkey(req.get(), const_cast<EVP_PKEY*>(key));
    ASSERT_TRUE(store.SignCsr(name, req.get()).ok()) << name;
    EXPECT_EQ(X509_REQ_verify(req.get(), const_cast<EVP_PKEY*>(key)), 1) << name;

    X509CrlPtr crl = UnsignedCrl();
    ASSERT_TRUE(store.SignCrl(name, crl.get()).ok()) << name;
    EXPECT_EQ(X509_CRL_verify(crl.get(), const_cast<EVP_PKEY*>(key)), 1) << name;
  }
}

TEST(SoftwareKeyStoreTest, UnknownIssuerIsNotFound) {
  SoftwareKeyStore store;
  store.Add("devices", NewRef(CachedKey(KeyAlgorithm::kEcdsaP256)));
  EXPECT_FALSE(store.HasKey("brokers"));
  X509Ptr cert = UnsignedCertificate(CachedKey(KeyAlgorithm::kEcdsaP256));
  X509ReqPtr req(X509_REQ_new());
  X509CrlPtr crl = UnsignedCrl();
  const absl::Status statuses[] = {store.SignCertificate("brokers", cert.get()),
                                   store.SignCsr("brokers", req.get()),
                                   store.SignCrl("brokers", crl.get())};
  for (const absl::Status& st : statuses) {
    EXPECT_EQ(st.code(), absl::StatusCode::kNotFound) << st;
    EXPECT_THAT(std::string(st.message()), HasSubstr("brokers"));
  }
}

TEST(SoftwareKeyStoreTest, AddReplacesAndRemoveForgets) {
  SoftwareKeyStore store;
  const EVP_PKEY* first = CachedKey(KeyAlgorithm::kEcdsaP256);
  const EVP_PKEY* second = CachedKey(KeyAlgorithm::kEcdsaP256, 1);
  store.Add("ca", NewRef(first));
  store.Add("ca", NewRef(second));
  X509Ptr cert = UnsignedCertificate(first);
  ASSERT_TRUE(store.SignCertificate("ca", cert.get()).ok());
  EXPECT_EQ(X509_verify(cert.get(), const_cast<EVP_PKEY*>(second)), 1);
  EXPECT_NE(X509_verify(cert.get(), const_cast<EVP_PKEY*>(first)), 1);
  store.Remove("ca");
  store.Remove("ca");  // removing twice is harmless
  EXPECT_FALSE(store.HasKey("ca"));
  EXPECT_EQ(store.SignCertificate("ca", cert.get()).code(), absl::StatusCode::kNotFound);
}

TEST(SoftwareKeyStoreTest, RefusesToSignWithAKeyFleetcaDoesNotAllow) {
  SoftwareKeyStore store;
  store.Add("weak", testing::GenerateRsa(1024));
  X509Ptr cert = UnsignedCertificate(CachedKey(KeyAlgorithm::kEcdsaP256));
  const absl::Status st = store.SignCertificate("weak", cert.get());
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition) << st;
  EXPECT_THAT(std::string(st.message()), HasSubstr("too weak"));
}

TEST(WrapPrivateKeyTest, EveryAlgorithmWrapsAndLoadsBack) {
  auto ring = KeyRing::Create({*Kek::Generate("k1")});
  ASSERT_TRUE(ring.ok());
  for (const KeyAlgorithm algorithm : testing::kAllAlgorithms) {
    const char* name = KeyAlgorithmName(algorithm);
    const EVP_PKEY* key = CachedKey(algorithm);
    auto wrapped = WrapPrivateKey(key, "issuer-1", *ring);
    ASSERT_TRUE(wrapped.ok()) << name << ": " << wrapped.status();
    // The wrapped form holds no plaintext PKCS#8.
    const std::string der = *PrivateKeyToDer(key);
    EXPECT_EQ(wrapped->find(der.substr(der.size() - 16)), std::string::npos) << name;

    SoftwareKeyStore store;
    ASSERT_TRUE(store.AddWrapped("issuer-1", "k1", *wrapped, *ring).ok()) << name;
    X509Ptr cert = UnsignedCertificate(key);
    ASSERT_TRUE(store.SignCertificate("issuer-1", cert.get()).ok()) << name;
    EXPECT_EQ(X509_verify(cert.get(), const_cast<EVP_PKEY*>(key)), 1) << name;
  }
}

TEST(WrapPrivateKeyTest, AddWrappedRefusesWhatDoesNotAuthenticate) {
  auto ring = KeyRing::Create({*Kek::Generate("k1")});
  auto other_ring = KeyRing::Create({*Kek::Generate("k1")});
  ASSERT_TRUE(ring.ok() && other_ring.ok());
  const std::string wrapped =
      *WrapPrivateKey(CachedKey(KeyAlgorithm::kEcdsaP256), "devices", *ring);
  std::string altered = wrapped;
  altered[20] = static_cast<char>(altered[20] ^ 0x40);
  struct Case {
    const char* name;
    std::string issuer_id;
    std::string kek_id;
    std::string wrapped;
    const KeyRing* ring;
    const char* why;
  };
  const Case cases[] = {
      {"moved_to_another_issuer", "brokers", "k1", wrapped, &*ring, "does not authenticate"},
      {"wrong_kek", "devices", "k1", wrapped, &*other_ring, "does not authenticate"},
      {"altered", "devices", "k1", altered, &*ring, "does not authenticate"},
      {"kek_not_configured", "devices", "k0", wrapped, &*ring, "KEK k0 is not configured"},
  };
  for (const auto& c : cases) {
    SoftwareKeyStore store;
    const absl::Status st = store.AddWrapped(c.issuer_id, c.kek_id, c.wrapped, *c.ring);
    EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition) << c.name << ": " << st;
    EXPECT_THAT(std::string(st.message()), HasSubstr(c.why)) << c.name;
    EXPECT_FALSE(store.HasKey(c.issuer_id)) << c.name;
  }
}

TEST(SoftwareKeyStoreTest, ConcurrentSigningWhileKeysChange) {
  SoftwareKeyStore store;
  const EVP_PKEY* key = CachedKey(KeyAlgorithm::kEcdsaP256);
  store.Add("devices", NewRef(key));
  std::atomic<int> failures{0};
  std::atomic<bool> stop{false};
  std::thread churn([&] {
    // Replaces and removes another issuer's key the whole time: the map changes under the
    // signers' feet, and every replaced key is freed while others may be signing.
    const EVP_PKEY* other = CachedKey(KeyAlgorithm::kEd25519);
    int i = 0;
    while (!stop.load()) {
      store.Add("brokers", NewRef(other));
      store.Add(absl::StrCat("tmp-", i % 8), NewRef(other));
      store.Remove("brokers");
      ++i;
    }
  });
  std::vector<std::thread> signers;
  for (int t = 0; t < 6; ++t) {
    signers.emplace_back([&] {
      for (int i = 0; i < 60; ++i) {
        X509Ptr cert = UnsignedCertificate(key);
        if (!store.SignCertificate("devices", cert.get()).ok() ||
            X509_verify(cert.get(), const_cast<EVP_PKEY*>(key)) != 1) {
          ++failures;
        }
      }
    });
  }
  for (auto& t : signers) {
    t.join();
  }
  stop = true;
  churn.join();
  EXPECT_EQ(failures.load(), 0);
}

}  // namespace
}  // namespace fleetca::pki

namespace fleetca::pki {
namespace {

TEST(SoftwareKeyStoreCheckMatchesTest, TellsTheIssuersOwnKeyFromAnother) {
  SoftwareKeyStore store;
  store.Add("ca", testing::NewRef(testing::CachedKey(KeyAlgorithm::kEcdsaP256)));
  X509Ptr own = UnsignedCertificate(testing::CachedKey(KeyAlgorithm::kEcdsaP256));
  X509Ptr other = UnsignedCertificate(testing::CachedKey(KeyAlgorithm::kEcdsaP384));
  EXPECT_TRUE(store.CheckMatches("ca", own.get()).ok());
  EXPECT_EQ(store.CheckMatches("ca", other.get()).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(store.CheckMatches("nobody", own.get()).code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace fleetca::pki
