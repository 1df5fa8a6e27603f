#include "server/ca/certificate_authority.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <thread>

#include "pki/keys.h"
#include "storage/pg_issuer_store.h"
#include "tests/testing/test_database.h"

namespace fleetca::ca {
namespace {

using ::testing::HasSubstr;
using storage::IssuerPurpose;

pki::KeyRing Ring(const std::string& id) {
  auto kek = pki::Kek::Generate(id);
  EXPECT_TRUE(kek.ok());
  std::vector<pki::Kek> keks;
  keks.push_back(*kek);
  return *pki::KeyRing::Create(std::move(keks));
}

// One replica: its own key store and CA over a shared database.
struct Replica {
  Replica(storage::ConnectionPool& pool, const pki::KeyRing& ring)
      : store(pool), ca(store, keys, ring, CaConfig{"http://pki.example.test"}) {}
  storage::PgIssuerStore store;
  pki::SoftwareKeyStore keys;
  CertificateAuthority ca;
};

InitOptions Options() {
  InitOptions o;
  o.subject.common_name = "Acme Fleet";
  o.subject.organization = "Acme";
  return o;
}

class CertificateAuthorityTest : public ::testing::Test {
 protected:
  testing::TestDatabase db_;
  pki::KeyRing ring_ = Ring("kek-1");
  RequestContext ctx_ = RequestContext::Local("tester");
};

TEST_F(CertificateAuthorityTest, InitializeCreatesTheHierarchyOnce) {
  Replica r(db_.pool(), ring_);
  auto first = r.ca.Initialize(Options(), ctx_);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_THAT(first->created, ::testing::ElementsAre("root-1", "devices-1", "brokers-1", "operators-1"));
  auto second = r.ca.Initialize(Options(), ctx_);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_TRUE(second->created.empty());
  EXPECT_EQ(second->issuers.size(), 4u);
  EXPECT_EQ(db_.Exec("SELECT count(*) FROM issuers"), "4");
  EXPECT_EQ(db_.Exec("SELECT subject FROM issuers WHERE id = 'devices-1'"),
            "CN=Acme Fleet Devices CA,O=Acme");
}

TEST_F(CertificateAuthorityTest, ConcurrentInitializationsOnTwoReplicasMakeOneHierarchy) {
  Replica a(db_.pool(), ring_), b(db_.pool(), ring_);
  absl::StatusOr<InitResult> ra = absl::UnknownError(""), rb = absl::UnknownError("");
  std::thread ta([&] { ra = a.ca.Initialize(Options(), ctx_); });
  std::thread tb([&] { rb = b.ca.Initialize(Options(), ctx_); });
  ta.join();
  tb.join();
  ASSERT_TRUE(ra.ok()) << ra.status();
  ASSERT_TRUE(rb.ok()) << rb.status();
  EXPECT_EQ(ra->created.size() + rb->created.size(), 4u);
  EXPECT_EQ(db_.Exec("SELECT count(*) FROM issuers"), "4");
  // Both replicas can sign with the winner's keys (loaded from the database on demand).
  EXPECT_TRUE(a.ca.Active(IssuerPurpose::kDevices).ok());
  EXPECT_TRUE(b.ca.Active(IssuerPurpose::kDevices).ok());
}

TEST_F(CertificateAuthorityTest, ChainsVerifyAndKeysAreStoredWrapped) {
  Replica r(db_.pool(), ring_);
  ASSERT_TRUE(r.ca.Initialize(Options(), ctx_).ok());
  for (IssuerPurpose p : {IssuerPurpose::kDevices, IssuerPurpose::kBrokers, IssuerPurpose::kOperators}) {
    auto active = r.ca.Active(p);
    ASSERT_TRUE(active.ok()) << active.status();
    auto chain = pki::CertificatesFromPem((*active)->chain_pem);
    ASSERT_TRUE(chain.ok());
    ASSERT_EQ(chain->size(), 2u);  // the intermediate, then the root
    EXPECT_TRUE(pki::VerifyChain((*chain)[0].get(), {}, {(*chain)[1].get()}, absl::Now()).ok());
  }
  // No stored key parses as a private key: they are AES-GCM ciphertexts.
  auto issuers = r.ca.ListIssuers();
  ASSERT_TRUE(issuers.ok());
  for (const auto& i : *issuers) {
    ASSERT_FALSE(i.key_ciphertext.empty()) << i.id;
    EXPECT_EQ(i.kek_id, "kek-1");
    EXPECT_FALSE(pki::PrivateKeyFromDer(i.key_ciphertext).ok()) << i.id;
    pki::ClearOpenSslErrors();
  }
}

TEST_F(CertificateAuthorityTest, AnotherKekCannotLoadTheKeys) {
  {
    Replica r(db_.pool(), ring_);
    ASSERT_TRUE(r.ca.Initialize(Options(), ctx_).ok());
  }
  pki::KeyRing other = Ring("kek-other");
  Replica r(db_.pool(), other);
  absl::Status st = r.ca.LoadKeys();
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(st.message()), HasSubstr("kek-1"));
  // The right KEK loads them.
  Replica same(db_.pool(), ring_);
  EXPECT_TRUE(same.ca.LoadKeys().ok());
}

TEST_F(CertificateAuthorityTest, ActiveFailsClearlyBeforeInitialization) {
  Replica r(db_.pool(), ring_);
  auto st = r.ca.Active(IssuerPurpose::kDevices).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(st.message()), HasSubstr("initialise"));
  EXPECT_EQ(r.ca.TrustBundle(BundleScope::kAll, nullptr).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(CertificateAuthorityTest, TrustBundleScopes) {
  Replica r(db_.pool(), ring_);
  ASSERT_TRUE(r.ca.Initialize(Options(), ctx_).ok());
  std::vector<std::string> client, server, all;
  ASSERT_TRUE(r.ca.TrustBundle(BundleScope::kClientAuth, &client).ok());
  ASSERT_TRUE(r.ca.TrustBundle(BundleScope::kServerAuth, &server).ok());
  ASSERT_TRUE(r.ca.TrustBundle(BundleScope::kAll, &all).ok());
  EXPECT_THAT(client, ::testing::ElementsAre("devices-1", "operators-1", "root-1"));
  EXPECT_THAT(server, ::testing::ElementsAre("brokers-1", "root-1"));
  EXPECT_EQ(all.size(), 4u);
}

TEST_F(CertificateAuthorityTest, BadOptionsAreInvalid) {
  Replica r(db_.pool(), ring_);
  InitOptions o = Options();
  o.subject.common_name = "";
  EXPECT_EQ(r.ca.Initialize(o, ctx_).status().code(), absl::StatusCode::kInvalidArgument);
  o = Options();
  o.subject.country = "France";
  EXPECT_THAT(std::string(r.ca.Initialize(o, ctx_).status().message()), HasSubstr("subject.country"));
  o = Options();
  o.purposes = {IssuerPurpose::kRoot};
  EXPECT_EQ(r.ca.Initialize(o, ctx_).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(db_.Exec("SELECT count(*) FROM issuers"), "0");
}

}  // namespace
}  // namespace fleetca::ca

namespace fleetca::ca {
namespace {

// An outside CA certificate for `key`, signed by signer_id's key in `signer` (self-signed
// when issuer is null).
std::string CaPem(pki::KeyStore& signer, const std::string& signer_id, const X509* issuer,
                  const EVP_PKEY* key, const std::string& cn, bool ca = true) {
  pki::CertificateTemplate t;
  t.profile = issuer == nullptr ? pki::CertificateProfile::kRootCa
                                : (ca ? pki::CertificateProfile::kIntermediateCa
                                      : pki::CertificateProfile::kClient);
  t.serial = pki::RandomSerial();
  t.subject.common_name = cn;
  t.not_before = absl::Now() - absl::Hours(1);
  t.not_after = absl::Now() + absl::Hours(24 * 365);
  t.public_key = key;
  auto cert = pki::BuildCertificate(t, issuer, signer, signer_id);
  EXPECT_TRUE(cert.ok()) << cert.status();
  return *pki::CertificateToPem(cert->get());
}

std::string KeyPem(const EVP_PKEY* key) {
  return pki::DerToPem(*pki::PrivateKeyToDer(key), "PRIVATE KEY");
}

TEST_F(CertificateAuthorityTest, ImportIssuerWithAnOutsideChain) {
  Replica r(db_.pool(), ring_);
  // An outside root and an intermediate under it, made with OpenSSL here.
  pki::SoftwareKeyStore outside;
  auto root_key = *pki::GenerateKey(pki::KeyAlgorithm::kEcdsaP384);
  auto inter_key = *pki::GenerateKey(pki::KeyAlgorithm::kEcdsaP256);
  outside.Add("outside-root", pki::EvpPkeyPtr(EVP_PKEY_dup(root_key.get())));
  const std::string root_pem = CaPem(outside, "outside-root", nullptr, root_key.get(), "Outside Root");
  auto root_cert = *pki::CertificateFromPem(root_pem);
  const std::string inter_pem =
      CaPem(outside, "outside-root", root_cert.get(), inter_key.get(), "Outside Devices CA");

  // A CA without a root of its own: the outside root is registered, keyless.
  std::string retired;
  auto imported = r.ca.ImportIssuer(IssuerPurpose::kDevices, inter_pem, root_pem,
                                    KeyPem(inter_key.get()), "", ctx_, &retired);
  ASSERT_TRUE(imported.ok()) << imported.status();
  EXPECT_EQ(imported->id, "devices-1");
  EXPECT_EQ(imported->parent_id, "root-1");
  EXPECT_EQ(retired, "");
  EXPECT_EQ(db_.Exec("SELECT key_ciphertext IS NULL FROM issuers WHERE id = 'root-1'"), "t");
  auto active = r.ca.Active(IssuerPurpose::kDevices);
  ASSERT_TRUE(active.ok()) << active.status();
  EXPECT_EQ((*active)->row.id, "devices-1");
  EXPECT_NE((*active)->chain_pem.find(root_pem.substr(30, 40)), std::string::npos);
  // InitializeHierarchy cannot sign with an offline root.
  EXPECT_EQ(r.ca.Initialize(Options(), ctx_).status().code(), absl::StatusCode::kFailedPrecondition);

  // A CA with its own root refuses another root.
  testing::TestDatabase other_db;
  Replica o(other_db.pool(), ring_);
  ASSERT_TRUE(o.ca.Initialize(Options(), ctx_).ok());
  auto refused = o.ca.ImportIssuer(IssuerPurpose::kDevices, inter_pem, root_pem,
                                   KeyPem(inter_key.get()), "", ctx_, &retired);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(refused.status().message()), HasSubstr("not this CA's root"));
}

TEST_F(CertificateAuthorityTest, ImportIssuerChecksKeyChainAndCaFlags) {
  Replica r(db_.pool(), ring_);
  ASSERT_TRUE(r.ca.Initialize(Options(), ctx_).ok());
  auto root = *pki::CertificateFromDer(r.ca.GetIssuer("root-1")->certificate_der);
  auto key = *pki::GenerateKey(pki::KeyAlgorithm::kEcdsaP256);
  auto other = *pki::GenerateKey(pki::KeyAlgorithm::kEcdsaP256);
  // Signed by this CA's own root: no chain needed, parent recorded.
  const std::string pem = CaPem(r.keys, "root-1", root.get(), key.get(), "Second Brokers CA");
  std::string retired;
  EXPECT_EQ(r.ca.ImportIssuer(IssuerPurpose::kBrokers, pem, "", KeyPem(other.get()), "", ctx_,
                              &retired).status().code(),
            absl::StatusCode::kInvalidArgument);  // not its key
  const std::string leaf = CaPem(r.keys, "root-1", root.get(), key.get(), "Not a CA", false);
  auto not_ca = r.ca.ImportIssuer(IssuerPurpose::kBrokers, leaf, "", KeyPem(key.get()), "", ctx_,
                                  &retired).status();
  EXPECT_THAT(std::string(not_ca.message()), HasSubstr("not a CA certificate"));
  pki::SoftwareKeyStore self;
  self.Add("self", pki::EvpPkeyPtr(EVP_PKEY_dup(key.get())));
  const std::string stranger = CaPem(self, "self", nullptr, key.get(), "Stranger");
  auto unchained = r.ca.ImportIssuer(IssuerPurpose::kBrokers, stranger, "", KeyPem(key.get()), "",
                                     ctx_, &retired).status();
  EXPECT_THAT(std::string(unchained.message()), HasSubstr("does not chain"));
  EXPECT_EQ(db_.Exec("SELECT count(*) FROM issuers"), "4");

  auto ok = r.ca.ImportIssuer(IssuerPurpose::kBrokers, pem, "", KeyPem(key.get()), "", ctx_, &retired);
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->parent_id, "root-1");
  EXPECT_EQ(retired, "brokers-1");
  auto chain = pki::CertificatesFromPem(*r.ca.ChainPem(*ok));
  EXPECT_EQ(chain->size(), 2u);
}

}  // namespace
}  // namespace fleetca::ca
