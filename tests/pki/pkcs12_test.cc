#include "pki/pkcs12.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/asn1t.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/x509.h>

#include <filesystem>
#include <iostream>
#include <map>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "pki/certificate_builder.h"
#include "pki/key_store.h"
#include "pki/keys.h"
#include "tests/pki/pki_test_util.h"

namespace fleetca::pki {

// gtest prints a test's parameter with this (found by ADL, so outside the unnamed namespace).
void PrintTo(Pkcs12Encryption e, std::ostream* os) {
  *os << (e == Pkcs12Encryption::kAes256 ? "kAes256" : "kLegacy");
}

namespace {

using testing::CachedKey;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::NewRef;
using ::testing::Not;
using ::testing::StartsWith;

constexpr char kPassword[] = "s3cret-Passw0rd";

template <typename T, void (*kFree)(T*)>
using Owned = std::unique_ptr<T, OpenSslDeleter<T, kFree>>;
void FreeBags(STACK_OF(PKCS12_SAFEBAG) * bags) {
  sk_PKCS12_SAFEBAG_pop_free(bags, PKCS12_SAFEBAG_free);
}
void FreeSafes(STACK_OF(PKCS7) * safes) { sk_PKCS7_pop_free(safes, PKCS7_free); }
void FreeCerts(STACK_OF(X509) * certs) { sk_X509_pop_free(certs, X509_free); }
void FreeOpenSslString(char* s) { OPENSSL_free(s); }
using Pkcs12Ptr = Owned<PKCS12, PKCS12_free>;
using BagsPtr = Owned<STACK_OF(PKCS12_SAFEBAG), FreeBags>;
using SafesPtr = Owned<STACK_OF(PKCS7), FreeSafes>;
using CertsPtr = Owned<STACK_OF(X509), FreeCerts>;
using OpenSslStringPtr = Owned<char, FreeOpenSslString>;
using Pbe2ParamPtr = Owned<PBE2PARAM, PBE2PARAM_free>;
using Pbkdf2ParamPtr = Owned<PBKDF2PARAM, PBKDF2PARAM_free>;
using PbeParamPtr = Owned<PBEPARAM, PBEPARAM_free>;

std::string ObjText(const ASN1_OBJECT* obj) {
  char buf[128];
  const int len = OBJ_obj2txt(buf, sizeof(buf), obj, /*no_name=*/1);
  return len > 0 ? std::string(buf, static_cast<size_t>(len)) : std::string();
}

// ---- A hierarchy: root -> devices CA -> device certificate, built by pki itself. ----

absl::Time Now() { return absl::FromUnixSeconds(absl::ToUnixSeconds(absl::Now())); }

CertificateTemplate Template(CertificateProfile profile, const std::string& cn,
                             const EVP_PKEY* key) {
  CertificateTemplate tmpl;
  tmpl.profile = profile;
  tmpl.serial = RandomSerial();
  tmpl.subject.common_name = cn;
  tmpl.subject.organization = "Acme Fleet";
  tmpl.not_before = Now() - absl::Hours(1);
  tmpl.not_after = Now() + absl::Hours(24 * 365);
  tmpl.public_key = key;
  return tmpl;
}

struct Hierarchy {
  SoftwareKeyStore store;
  X509Ptr root;
  X509Ptr inter;
  X509Ptr leaf;
  const EVP_PKEY* leaf_key = nullptr;
};

// MakeHierarchy: an ECDSA P-384 root, a P-256 devices CA and a device certificate for a
// key of leaf_algorithm.
void MakeHierarchy(Hierarchy& h, KeyAlgorithm leaf_algorithm = KeyAlgorithm::kEcdsaP256) {
  const EVP_PKEY* root_key = CachedKey(KeyAlgorithm::kEcdsaP384, 1);
  const EVP_PKEY* inter_key = CachedKey(KeyAlgorithm::kEcdsaP256, 2);
  h.leaf_key = CachedKey(leaf_algorithm, 3);
  h.store.Add("root", NewRef(root_key));
  h.store.Add("inter", NewRef(inter_key));
  auto root = BuildCertificate(Template(CertificateProfile::kRootCa, "Fleet Root CA", root_key),
                               nullptr, h.store, "root");
  ASSERT_TRUE(root.ok()) << root.status();
  h.root = std::move(*root);
  auto inter =
      BuildCertificate(Template(CertificateProfile::kIntermediateCa, "Fleet Devices CA", inter_key),
                       h.root.get(), h.store, "root");
  ASSERT_TRUE(inter.ok()) << inter.status();
  h.inter = std::move(*inter);
  auto leaf = BuildCertificate(Template(CertificateProfile::kClient, "dev-0001", h.leaf_key),
                               h.inter.get(), h.store, "inter");
  ASSERT_TRUE(leaf.ok()) << leaf.status();
  h.leaf = std::move(*leaf);
}

std::string KeyPem(const EVP_PKEY* key) {
  auto der = PrivateKeyToDer(key);
  EXPECT_TRUE(der.ok()) << der.status();
  return der.ok() ? DerToPem(*der, "PRIVATE KEY") : std::string();
}

std::vector<TrustStoreEntry> TrustEntries(const Hierarchy& h) {
  return {{"Fleet-Devices", h.inter.get()}, {"fleet-root", h.root.get()}};
}

// ---- Reading a PKCS#12 back bag by bag with OpenSSL (what PKCS12_parse does not say). ----

// DescribeAlgorithm renders a PBE AlgorithmIdentifier: "PBES2 PBKDF2 hmacWithSHA256
// aes-256-cbc 10000" or "pbeWithSHA1And3-KeyTripleDES-CBC 10000".
std::string DescribeAlgorithm(const X509_ALGOR* alg) {
  const ASN1_OBJECT* oid = nullptr;
  int ptype = 0;
  const void* pval = nullptr;
  X509_ALGOR_get0(&oid, &ptype, &pval, alg);
  const int nid = OBJ_obj2nid(oid);
  if (ptype != V_ASN1_SEQUENCE) {
    return "parameters are not a SEQUENCE";
  }
  ASN1_TYPE param;
  param.type = V_ASN1_SEQUENCE;
  param.value.sequence = const_cast<ASN1_STRING*>(static_cast<const ASN1_STRING*>(pval));
  if (nid == NID_pbes2) {
    Pbe2ParamPtr pbe2(
        static_cast<PBE2PARAM*>(ASN1_TYPE_unpack_sequence(ASN1_ITEM_rptr(PBE2PARAM), &param)));
    if (pbe2 == nullptr || OBJ_obj2nid(pbe2->keyfunc->algorithm) != NID_id_pbkdf2 ||
        pbe2->keyfunc->parameter == nullptr) {
      return "PBES2 without PBKDF2";
    }
    Pbkdf2ParamPtr kdf(static_cast<PBKDF2PARAM*>(
        ASN1_TYPE_unpack_sequence(ASN1_ITEM_rptr(PBKDF2PARAM), pbe2->keyfunc->parameter)));
    if (kdf == nullptr) {
      return "bad PBKDF2 parameters";
    }
    const std::string prf = kdf->prf == nullptr ? "hmacWithSHA1 (default)"
                                                : OBJ_nid2sn(OBJ_obj2nid(kdf->prf->algorithm));
    std::string salt_len = "?";
    if (kdf->salt->type == V_ASN1_OCTET_STRING) {
      salt_len = absl::StrCat(ASN1_STRING_length(kdf->salt->value.octet_string));
    }
    return absl::StrCat("PBES2 PBKDF2 ", prf, " ",
                        OBJ_nid2sn(OBJ_obj2nid(pbe2->encryption->algorithm)), " ",
                        ASN1_INTEGER_get(kdf->iter), " salt ", salt_len);
  }
  PbeParamPtr pbe(
      static_cast<PBEPARAM*>(ASN1_TYPE_unpack_sequence(ASN1_ITEM_rptr(PBEPARAM), &param)));
  if (pbe == nullptr) {
    return absl::StrCat(OBJ_nid2ln(nid), " with bad parameters");
  }
  return absl::StrCat(OBJ_nid2ln(nid), " ", ASN1_INTEGER_get(pbe->iter), " salt ",
                      ASN1_STRING_length(pbe->salt));
}

struct Bag {
  int type = 0;                // NID_certBag, NID_pkcs8ShroudedKeyBag, ...
  std::string safe_algorithm;  // the encrypted safe's, "" for a plain-data safe
  std::string key_algorithm;   // a shrouded key bag's
  std::string friendly_name;
  std::string local_key_id;
  std::vector<std::string> trusted_usages;  // values of Java's trustedKeyUsage, dotted
  int trusted_attributes = 0;               // how many trustedKeyUsage attributes
  X509Ptr cert;
};

struct Parsed {
  std::string mac_digest;
  long mac_iterations = 0;
  int mac_salt_length = 0;
  std::vector<Bag> bags;
};

Parsed ParseBags(const std::string& der, const std::string& password) {
  Parsed parsed;
  const unsigned char* p = reinterpret_cast<const unsigned char*>(der.data());
  Pkcs12Ptr p12(d2i_PKCS12(nullptr, &p, static_cast<long>(der.size())));
  EXPECT_NE(p12, nullptr) << "not DER PKCS#12";
  if (p12 == nullptr) return parsed;
  EXPECT_EQ(p, reinterpret_cast<const unsigned char*>(der.data()) + der.size());
  EXPECT_EQ(PKCS12_verify_mac(p12.get(), password.data(), static_cast<int>(password.size())), 1);
  const ASN1_OCTET_STRING* mac = nullptr;
  const X509_ALGOR* mac_alg = nullptr;
  const ASN1_OCTET_STRING* mac_salt = nullptr;
  const ASN1_INTEGER* mac_iter = nullptr;
  PKCS12_get0_mac(&mac, &mac_alg, &mac_salt, &mac_iter, p12.get());
  if (mac_alg != nullptr) {
    const ASN1_OBJECT* oid = nullptr;
    X509_ALGOR_get0(&oid, nullptr, nullptr, mac_alg);
    parsed.mac_digest = OBJ_nid2sn(OBJ_obj2nid(oid));
  }
  parsed.mac_iterations = mac_iter == nullptr ? 1 : ASN1_INTEGER_get(mac_iter);
  parsed.mac_salt_length = mac_salt == nullptr ? 0 : ASN1_STRING_length(mac_salt);

  SafesPtr safes(PKCS12_unpack_authsafes(p12.get()));
  EXPECT_NE(safes, nullptr);
  if (safes == nullptr) return parsed;
  for (int i = 0; i < sk_PKCS7_num(safes.get()); ++i) {
    PKCS7* safe = sk_PKCS7_value(safes.get(), i);
    BagsPtr bags;
    std::string safe_algorithm;
    if (PKCS7_type_is_encrypted(safe)) {
      safe_algorithm = DescribeAlgorithm(safe->d.encrypted->enc_data->algorithm);
      bags.reset(PKCS12_unpack_p7encdata(safe, password.data(), static_cast<int>(password.size())));
    } else {
      bags.reset(PKCS12_unpack_p7data(safe));
    }
    EXPECT_NE(bags, nullptr) << "safe " << i;
    if (bags == nullptr) continue;
    for (int j = 0; j < sk_PKCS12_SAFEBAG_num(bags.get()); ++j) {
      PKCS12_SAFEBAG* sb = sk_PKCS12_SAFEBAG_value(bags.get(), j);
      Bag bag;
      bag.type = PKCS12_SAFEBAG_get_nid(sb);
      bag.safe_algorithm = safe_algorithm;
      OpenSslStringPtr name(PKCS12_get_friendlyname(sb));
      if (name != nullptr) bag.friendly_name = name.get();
      const ASN1_TYPE* key_id = PKCS12_SAFEBAG_get0_attr(sb, NID_localKeyID);
      if (key_id != nullptr && key_id->type == V_ASN1_OCTET_STRING) {
        bag.local_key_id.assign(
            reinterpret_cast<const char*>(ASN1_STRING_get0_data(key_id->value.octet_string)),
            static_cast<size_t>(ASN1_STRING_length(key_id->value.octet_string)));
      }
      const STACK_OF(X509_ATTRIBUTE)* attrs = PKCS12_SAFEBAG_get0_attrs(sb);
      for (int k = 0; k < X509at_get_attr_count(attrs); ++k) {
        X509_ATTRIBUTE* attr = X509at_get_attr(attrs, k);
        if (ObjText(X509_ATTRIBUTE_get0_object(attr)) != kOracleTrustedKeyUsageOid) continue;
        ++bag.trusted_attributes;
        for (int v = 0; v < X509_ATTRIBUTE_count(attr); ++v) {
          const ASN1_TYPE* value = X509_ATTRIBUTE_get0_type(attr, v);
          bag.trusted_usages.push_back(value->type == V_ASN1_OBJECT
                                           ? ObjText(value->value.object)
                                           : absl::StrCat("type ", value->type));
        }
      }
      if (bag.type == NID_certBag) {
        bag.cert.reset(PKCS12_SAFEBAG_get1_cert(sb));
      } else if (bag.type == NID_pkcs8ShroudedKeyBag) {
        const X509_ALGOR* alg = nullptr;
        X509_SIG_get0(PKCS12_SAFEBAG_get0_pkcs8(sb), &alg, nullptr);
        bag.key_algorithm = DescribeAlgorithm(alg);
      }
      parsed.bags.push_back(std::move(bag));
    }
  }
  return parsed;
}

// Parse runs OpenSSL's own PKCS12_parse: what a C client gets.
struct Opened {
  bool ok = false;
  EvpPkeyPtr key;
  X509Ptr cert;
  CertsPtr ca;
};
Opened Parse(const std::string& der, const char* password) {
  Opened out;
  const unsigned char* p = reinterpret_cast<const unsigned char*>(der.data());
  Pkcs12Ptr p12(d2i_PKCS12(nullptr, &p, static_cast<long>(der.size())));
  if (p12 == nullptr) return out;
  EVP_PKEY* key = nullptr;
  X509* cert = nullptr;
  STACK_OF(X509)* ca = nullptr;
  out.ok = PKCS12_parse(p12.get(), password, &key, &cert, &ca) == 1;
  ClearOpenSslErrors();
  out.key.reset(key);
  out.cert.reset(cert);
  out.ca.reset(ca);
  return out;
}

std::string Alias(X509* cert) {
  int len = 0;
  const unsigned char* alias = X509_alias_get0(cert, &len);
  return alias == nullptr
             ? std::string()
             : std::string(reinterpret_cast<const char*>(alias), static_cast<size_t>(len));
}

std::string ParamName(const ::testing::TestParamInfo<Pkcs12Encryption>& param) {
  return param.param == Pkcs12Encryption::kAes256 ? "Aes256" : "Legacy";
}

// What each choice must write, as DescribeAlgorithm and ParseBags render it.
struct Expected {
  std::string pbe;
  std::string mac_digest;
};
Expected ExpectedFor(Pkcs12Encryption e) {
  const std::string iterations = absl::StrCat(kPkcs12Iterations);
  if (e == Pkcs12Encryption::kAes256) {
    return {absl::StrCat("PBES2 PBKDF2 hmacWithSHA256 AES-256-CBC ", iterations, " salt 16"),
            "SHA256"};
  }
  return {absl::StrCat("pbeWithSHA1And3-KeyTripleDES-CBC ", iterations, " salt 16"), "SHA1"};
}

class Pkcs12Test : public ::testing::TestWithParam<Pkcs12Encryption> {
 protected:
  void SetUp() override { ASSERT_NO_FATAL_FAILURE(MakeHierarchy(h_)); }
  Hierarchy h_;
};

INSTANTIATE_TEST_SUITE_P(Encryptions, Pkcs12Test,
                         ::testing::Values(Pkcs12Encryption::kAes256, Pkcs12Encryption::kLegacy),
                         ParamName);

TEST_P(Pkcs12Test, TrustStoreRoundTripsThroughPkcs12Parse) {
  auto der = BuildTrustStorePkcs12(TrustEntries(h_), kPassword, GetParam());
  ASSERT_TRUE(der.ok()) << der.status();

  Opened opened = Parse(*der, kPassword);
  ASSERT_TRUE(opened.ok);
  EXPECT_EQ(opened.key, nullptr);
  EXPECT_EQ(opened.cert, nullptr);
  ASSERT_NE(opened.ca, nullptr);
  ASSERT_EQ(sk_X509_num(opened.ca.get()), 2);
  X509* first = sk_X509_value(opened.ca.get(), 0);
  X509* second = sk_X509_value(opened.ca.get(), 1);
  EXPECT_EQ(X509_cmp(first, h_.inter.get()), 0);
  EXPECT_EQ(X509_cmp(second, h_.root.get()), 0);
  EXPECT_EQ(Alias(first), "Fleet-Devices");
  EXPECT_EQ(Alias(second), "fleet-root");

  EXPECT_FALSE(Parse(*der, "wrong-password").ok);
}

TEST_P(Pkcs12Test, TrustStoreBagsCarryAliasAndJavaTrust) {
  auto der = BuildTrustStorePkcs12(TrustEntries(h_), kPassword, GetParam());
  ASSERT_TRUE(der.ok()) << der.status();
  const Parsed parsed = ParseBags(*der, kPassword);
  const Expected want = ExpectedFor(GetParam());
  EXPECT_EQ(parsed.mac_digest, want.mac_digest);
  EXPECT_EQ(parsed.mac_iterations, kPkcs12Iterations);
  EXPECT_EQ(parsed.mac_salt_length, 16);
  ASSERT_EQ(parsed.bags.size(), 2u);
  const char* aliases[] = {"Fleet-Devices", "fleet-root"};
  const X509* certs[] = {h_.inter.get(), h_.root.get()};
  for (size_t i = 0; i < 2; ++i) {
    SCOPED_TRACE(aliases[i]);
    const Bag& bag = parsed.bags[i];
    EXPECT_EQ(bag.type, NID_certBag);
    EXPECT_EQ(bag.safe_algorithm, want.pbe);
    EXPECT_EQ(bag.friendly_name, aliases[i]);
    EXPECT_EQ(bag.trusted_attributes, 1);
    EXPECT_THAT(bag.trusted_usages, ElementsAre("2.5.29.37.0"));
    EXPECT_TRUE(bag.local_key_id.empty());
    ASSERT_NE(bag.cert, nullptr);
    EXPECT_EQ(X509_cmp(bag.cert.get(), certs[i]), 0);
  }
}

TEST_P(Pkcs12Test, KeyStoreRoundTripsThroughPkcs12Parse) {
  auto der = BuildKeyStorePkcs12(h_.leaf.get(), {h_.inter.get(), h_.root.get()},
                                 KeyPem(h_.leaf_key), kPassword, "My Device", GetParam());
  ASSERT_TRUE(der.ok()) << der.status();

  Opened opened = Parse(*der, kPassword);
  ASSERT_TRUE(opened.ok);
  ASSERT_NE(opened.key, nullptr);
  ASSERT_NE(opened.cert, nullptr);
  EXPECT_TRUE(PublicKeysMatch(opened.key.get(), h_.leaf_key));
  EXPECT_EQ(EVP_PKEY_eq(opened.key.get(), h_.leaf_key), 1);
  EXPECT_EQ(X509_cmp(opened.cert.get(), h_.leaf.get()), 0);
  EXPECT_EQ(Alias(opened.cert.get()), "My Device");
  ASSERT_NE(opened.ca, nullptr);
  ASSERT_EQ(sk_X509_num(opened.ca.get()), 2);
  EXPECT_EQ(X509_cmp(sk_X509_value(opened.ca.get(), 0), h_.inter.get()), 0);
  EXPECT_EQ(X509_cmp(sk_X509_value(opened.ca.get(), 1), h_.root.get()), 0);

  EXPECT_FALSE(Parse(*der, "wrong-password").ok);
  EXPECT_FALSE(Parse(*der, "").ok);
}

TEST_P(Pkcs12Test, KeyStoreBagsPairKeyAndCertificate) {
  auto der = BuildKeyStorePkcs12(h_.leaf.get(), {h_.inter.get(), h_.root.get()},
                                 KeyPem(h_.leaf_key), kPassword, "My Device", GetParam());
  ASSERT_TRUE(der.ok()) << der.status();
  const Parsed parsed = ParseBags(*der, kPassword);
  const Expected want = ExpectedFor(GetParam());
  EXPECT_EQ(parsed.mac_digest, want.mac_digest);
  EXPECT_EQ(parsed.mac_iterations, kPkcs12Iterations);
  ASSERT_EQ(parsed.bags.size(), 4u);

  const Bag& leaf = parsed.bags[0];
  EXPECT_EQ(leaf.type, NID_certBag);
  EXPECT_EQ(leaf.safe_algorithm, want.pbe);
  EXPECT_EQ(leaf.friendly_name, "My Device");
  EXPECT_EQ(leaf.local_key_id.size(), 20u);  // SHA-1
  EXPECT_EQ(leaf.trusted_attributes, 0) << "a key entry's certificate is not a trusted entry";
  ASSERT_NE(leaf.cert, nullptr);
  EXPECT_EQ(X509_cmp(leaf.cert.get(), h_.leaf.get()), 0);
  for (size_t i : {1u, 2u}) {
    const Bag& ca = parsed.bags[i];
    EXPECT_EQ(ca.type, NID_certBag);
    EXPECT_EQ(ca.safe_algorithm, want.pbe);
    EXPECT_TRUE(ca.friendly_name.empty());
    EXPECT_TRUE(ca.local_key_id.empty());
    EXPECT_EQ(ca.trusted_attributes, 0);
  }
  const Bag& key = parsed.bags[3];
  EXPECT_EQ(key.type, NID_pkcs8ShroudedKeyBag);
  EXPECT_EQ(key.safe_algorithm, "") << "the key bag is encrypted itself, in a plain safe";
  EXPECT_EQ(key.key_algorithm, want.pbe);
  EXPECT_EQ(key.friendly_name, "My Device");
  EXPECT_EQ(key.local_key_id, leaf.local_key_id);
}

TEST(Pkcs12KeyStoreTest, EveryKeyAlgorithmRoundTrips) {
  for (KeyAlgorithm alg : {KeyAlgorithm::kEcdsaP256, KeyAlgorithm::kEcdsaP384,
                           KeyAlgorithm::kRsa2048, KeyAlgorithm::kEd25519}) {
    SCOPED_TRACE(KeyAlgorithmName(alg));
    Hierarchy h;
    ASSERT_NO_FATAL_FAILURE(MakeHierarchy(h, alg));
    auto der = BuildKeyStorePkcs12(h.leaf.get(), {}, KeyPem(h.leaf_key), kPassword, "",
                                   Pkcs12Encryption::kAes256);
    ASSERT_TRUE(der.ok()) << der.status();
    Opened opened = Parse(*der, kPassword);
    ASSERT_TRUE(opened.ok);
    ASSERT_NE(opened.key, nullptr);
    EXPECT_EQ(EVP_PKEY_eq(opened.key.get(), h.leaf_key), 1);
    ASSERT_NE(opened.cert, nullptr);
    // No friendly_name: the certificate's Common Name.
    EXPECT_EQ(Alias(opened.cert.get()), "dev-0001");
    EXPECT_TRUE(opened.ca == nullptr || sk_X509_num(opened.ca.get()) == 0);
  }
}

TEST(Pkcs12KeyStoreTest, TraditionalPemKeyIsAccepted) {
  Hierarchy h;
  ASSERT_NO_FATAL_FAILURE(MakeHierarchy(h, KeyAlgorithm::kRsa2048));
  BioPtr bio(BIO_new(BIO_s_mem()));
  ASSERT_EQ(PEM_write_bio_PrivateKey_traditional(bio.get(), h.leaf_key, nullptr, nullptr, 0,
                                                 nullptr, nullptr),
            1);
  char* data = nullptr;
  const long len = BIO_ctrl(bio.get(), BIO_CTRL_INFO, 0, &data);
  const std::string pem(data, static_cast<size_t>(len));
  ASSERT_THAT(pem, StartsWith("-----BEGIN RSA PRIVATE KEY-----"));
  auto der = BuildKeyStorePkcs12(h.leaf.get(), {h.inter.get()}, pem, kPassword, "dev",
                                 Pkcs12Encryption::kLegacy);
  ASSERT_TRUE(der.ok()) << der.status();
  EXPECT_TRUE(Parse(*der, kPassword).ok);
}

// ---- Refusals: INVALID_ARGUMENT naming the field, never echoing a key. ----

void ExpectInvalid(const absl::Status& st, const std::string& field) {
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << st;
  EXPECT_THAT(std::string(st.message()), StartsWith(field + ": "));
  EXPECT_THAT(std::string(st.message()), Not(HasSubstr("BEGIN")));
}

TEST(Pkcs12KeyStoreTest, RefusesBadInput) {
  Hierarchy h;
  ASSERT_NO_FATAL_FAILURE(MakeHierarchy(h));
  const X509* leaf = h.leaf.get();
  const X509* inter = h.inter.get();
  const std::string key = KeyPem(h.leaf_key);
  const std::string other_key = KeyPem(CachedKey(KeyAlgorithm::kEcdsaP256, 7));
  const std::string rsa_key = KeyPem(CachedKey(KeyAlgorithm::kRsa2048, 7));
  const std::string leaf_pem = CertificateToPem(leaf).value();
  const std::string long_name(256, 'n');
  X509Ptr no_cn = testing::MakeRawCertificate(h.leaf_key, "");
  // MakeRawCertificate always adds a CN entry; drop it for "no Common Name".
  X509_NAME* name = X509_get_subject_name(no_cn.get());
  X509_NAME_ENTRY_free(X509_NAME_delete_entry(name, 0));
  ASSERT_EQ(X509_NAME_entry_count(name), 0);

  struct Case {
    const char* name;
    const char* field;
    const X509* cert;
    std::vector<const X509*> chain;
    std::string key;
    std::string password;
    std::string friendly_name;
  };
  const std::vector<Case> cases = {
      {"no_certificate", "certificate", nullptr, {}, key, kPassword, "a"},
      {"null_in_chain", "chain[1]", leaf, {inter, nullptr}, key, kPassword, "a"},
      {"key_of_another_certificate", "private_key_pem", leaf, {}, other_key, kPassword, "a"},
      {"key_of_another_algorithm", "private_key_pem", leaf, {}, rsa_key, kPassword, "a"},
      {"key_not_pem", "private_key_pem", leaf, {}, "not a key", kPassword, "a"},
      {"key_empty", "private_key_pem", leaf, {}, "", kPassword, "a"},
      {"certificate_instead_of_key", "private_key_pem", leaf, {}, leaf_pem, kPassword, "a"},
      {"empty_password", "password", leaf, {}, key, "", "a"},
      {"password_129_bytes", "password", leaf, {}, key, std::string(129, 'p'), "a"},
      {"password_with_nul", "password", leaf, {}, key, std::string("ab\0cd", 5), "a"},
      {"password_not_utf8", "password", leaf, {}, key, "caf\xe9", "a"},
      {"friendly_name_control", "friendly_name", leaf, {}, key, kPassword, "a\nb"},
      {"friendly_name_too_long", "friendly_name", leaf, {}, key, kPassword, long_name},
      {"no_friendly_name_no_cn", "friendly_name", no_cn.get(), {}, key, kPassword, ""},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    auto der = BuildKeyStorePkcs12(c.cert, c.chain, c.key, c.password, c.friendly_name,
                                   Pkcs12Encryption::kAes256);
    ASSERT_FALSE(der.ok());
    ExpectInvalid(der.status(), c.field);
  }
  // The limits themselves are accepted: 128 bytes of password, UTF-8 names.
  auto der = BuildKeyStorePkcs12(leaf, {}, key, std::string(128, 'p'), "Gerät \xe2\x84\x96 7",
                                 Pkcs12Encryption::kAes256);
  ASSERT_TRUE(der.ok()) << der.status();
  Opened opened = Parse(*der, std::string(128, 'p').c_str());
  ASSERT_TRUE(opened.ok);
  EXPECT_EQ(Alias(opened.cert.get()), "Gerät \xe2\x84\x96 7");
}

TEST(Pkcs12TrustStoreTest, RefusesBadInput) {
  Hierarchy h;
  ASSERT_NO_FATAL_FAILURE(MakeHierarchy(h));
  const X509* root = h.root.get();
  const X509* inter = h.inter.get();
  struct Case {
    const char* name;
    const char* field;
    std::vector<TrustStoreEntry> entries;
    std::string password;
  };
  const std::vector<Case> cases = {
      {"no_entries", "entries", {}, kPassword},
      {"empty_alias", "entries[0].alias", {{"", root}}, kPassword},
      {"null_certificate", "entries[1].certificate", {{"root", root}, {"ca", nullptr}}, kPassword},
      {"aliases_differ_in_case", "entries[1].alias", {{"Root", root}, {"rOOT", inter}}, kPassword},
      {"alias_with_control", "entries[0].alias", {{"ro\tot", root}}, kPassword},
      {"alias_not_utf8", "entries[0].alias", {{"\xff", root}}, kPassword},
      {"empty_password", "password", {{"root", root}}, ""},
      {"password_129_bytes", "password", {{"root", root}}, std::string(129, 'p')},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    auto der = BuildTrustStorePkcs12(c.entries, c.password, Pkcs12Encryption::kAes256);
    ASSERT_FALSE(der.ok());
    ExpectInvalid(der.status(), c.field);
  }
}

TEST(Pkcs12TrustStoreTest, EachFileHasFreshSalts) {
  Hierarchy h;
  ASSERT_NO_FATAL_FAILURE(MakeHierarchy(h));
  auto a = BuildTrustStorePkcs12(TrustEntries(h), kPassword, Pkcs12Encryption::kAes256);
  auto b = BuildTrustStorePkcs12(TrustEntries(h), kPassword, Pkcs12Encryption::kAes256);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(*a, *b);
}

// ---- Real clients: `openssl pkcs12` and Java's keytool read the files. ----

// Keytool returns the keytool command, failing the test (not skipping it) when there is
// none: the Java compatibility is part of what these files promise.
std::string Keytool() {
  const auto found = testing::Run("command -v keytool");
  if (found.exit_code != 0) {
    ADD_FAILURE() << "keytool not found on PATH: install Debian's openjdk-17-jre-headless "
                     "(apt-get install -y --no-install-recommends openjdk-17-jre-headless); "
                     "the PKCS#12 files must be checked with Java's own reader";
    return std::string();
  }
  return std::string(absl::StripAsciiWhitespace(found.output));
}

// KeytoolEntries splits the output of `keytool -list -v` into alias -> the entry's text.
std::map<std::string, std::string> KeytoolEntries(const std::string& output) {
  std::map<std::string, std::string> entries;
  const std::vector<absl::string_view> blocks = absl::StrSplit(output, "Alias name: ");
  for (size_t i = 1; i < blocks.size(); ++i) {  // blocks[0]: the header before the first
    const size_t eol = blocks[i].find('\n');
    if (eol == absl::string_view::npos) continue;
    entries[std::string(blocks[i].substr(0, eol))] = std::string(blocks[i].substr(eol + 1));
  }
  return entries;
}

class Pkcs12ClientsTest : public Pkcs12Test {
 protected:
  void SetUp() override {
    Pkcs12Test::SetUp();
    ASSERT_TRUE(testing::HaveOpensslCli()) << "the openssl command line tool is required";
    dir_ = testing::MakeTempDir();
  }
  void TearDown() override {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }
  std::string Write(const std::string& name, const std::string& data) {
    const std::string path = dir_ + "/" + name;
    testing::WriteFile(path, data);
    return path;
  }
  std::string dir_;
};

INSTANTIATE_TEST_SUITE_P(Encryptions, Pkcs12ClientsTest,
                         ::testing::Values(Pkcs12Encryption::kAes256, Pkcs12Encryption::kLegacy),
                         ParamName);

// The algorithm lines `openssl pkcs12 -info` prints for each choice.
std::string OpensslPbeLine(Pkcs12Encryption e) {
  const std::string iterations = absl::StrCat(kPkcs12Iterations);
  return e == Pkcs12Encryption::kAes256
             ? absl::StrCat("PBES2, PBKDF2, AES-256-CBC, Iteration ", iterations,
                            ", PRF hmacWithSHA256")
             : absl::StrCat("pbeWithSHA1And3-KeyTripleDES-CBC, Iteration ", iterations);
}
std::string OpensslMacLine(Pkcs12Encryption e) {
  return absl::StrCat("MAC: ", e == Pkcs12Encryption::kAes256 ? "sha256" : "sha1", ", Iteration ",
                      kPkcs12Iterations);
}

TEST_P(Pkcs12ClientsTest, OpensslReadsTheTrustStore) {
  auto der = BuildTrustStorePkcs12(TrustEntries(h_), kPassword, GetParam());
  ASSERT_TRUE(der.ok()) << der.status();
  const std::string file = Write("trust.p12", *der);
  // No -legacy: OpenSSL 3's default provider has everything both choices use (3DES too;
  // only RC2 and the like need the legacy provider).
  const auto info = testing::Run(
      absl::StrCat("openssl pkcs12 -info -nokeys -in ", file, " -passin pass:", kPassword));
  ASSERT_EQ(info.exit_code, 0) << info.output;
  EXPECT_THAT(info.output, HasSubstr(OpensslMacLine(GetParam())));
  EXPECT_THAT(info.output,
              HasSubstr(absl::StrCat("PKCS7 Encrypted data: ", OpensslPbeLine(GetParam()))));
  EXPECT_THAT(info.output, HasSubstr("friendlyName: Fleet-Devices"));
  EXPECT_THAT(info.output, HasSubstr("friendlyName: fleet-root"));
  // OpenSSL 3.0 knows no name for Java's attribute (3.2 prints "Trusted key usage
  // (Oracle)"): it shows the OID; once per bag.
  const std::string attr_line = absl::StrCat(kOracleTrustedKeyUsageOid, ": ");
  size_t count = 0;
  for (size_t at = info.output.find(attr_line); at != std::string::npos;
       at = info.output.find(attr_line, at + 1)) {
    ++count;
  }
  EXPECT_EQ(count, 2u) << info.output;
  EXPECT_THAT(info.output, HasSubstr("subject=O = Acme Fleet, CN = Fleet Devices CA"));
  EXPECT_THAT(info.output, HasSubstr("subject=O = Acme Fleet, CN = Fleet Root CA"));
  std::cout << info.output.substr(0, info.output.find("-----BEGIN")) << std::flush;

  const auto wrong =
      testing::Run(absl::StrCat("openssl pkcs12 -info -nokeys -in ", file, " -passin pass:wrong"));
  EXPECT_NE(wrong.exit_code, 0);
  EXPECT_THAT(wrong.output, HasSubstr("Mac verify error"));
}

TEST_P(Pkcs12ClientsTest, OpensslReadsTheKeyStore) {
  auto der = BuildKeyStorePkcs12(h_.leaf.get(), {h_.inter.get(), h_.root.get()},
                                 KeyPem(h_.leaf_key), kPassword, "dev-0001", GetParam());
  ASSERT_TRUE(der.ok()) << der.status();
  const std::string file = Write("device.p12", *der);

  const auto certs = testing::Run(
      absl::StrCat("openssl pkcs12 -info -nokeys -in ", file, " -passin pass:", kPassword));
  ASSERT_EQ(certs.exit_code, 0) << certs.output;
  EXPECT_THAT(certs.output, HasSubstr(OpensslMacLine(GetParam())));
  EXPECT_THAT(certs.output,
              HasSubstr(absl::StrCat("PKCS7 Encrypted data: ", OpensslPbeLine(GetParam()))));
  EXPECT_THAT(certs.output, HasSubstr("friendlyName: dev-0001"));
  EXPECT_THAT(certs.output, HasSubstr("subject=O = Acme Fleet, CN = dev-0001"));
  EXPECT_THAT(certs.output, HasSubstr("subject=O = Acme Fleet, CN = Fleet Devices CA"));
  EXPECT_THAT(certs.output, HasSubstr("subject=O = Acme Fleet, CN = Fleet Root CA"));
  EXPECT_THAT(certs.output, Not(HasSubstr(kOracleTrustedKeyUsageOid)));

  const auto keys = testing::Run(
      absl::StrCat("openssl pkcs12 -info -nocerts -noenc -in ", file, " -passin pass:", kPassword));
  ASSERT_EQ(keys.exit_code, 0) << keys.output;
  EXPECT_THAT(keys.output,
              HasSubstr(absl::StrCat("Shrouded Keybag: ", OpensslPbeLine(GetParam()))));
  EXPECT_THAT(keys.output, HasSubstr("friendlyName: dev-0001"));
  EXPECT_THAT(keys.output, HasSubstr("localKeyID: "));
  const size_t begin = keys.output.find("-----BEGIN PRIVATE KEY-----");
  ASSERT_NE(begin, std::string::npos) << keys.output;
  auto key = PrivateKeyFromPem(keys.output.substr(begin), "");
  ASSERT_TRUE(key.ok()) << key.status();
  EXPECT_EQ(EVP_PKEY_eq(key->get(), h_.leaf_key), 1);
  std::cout << keys.output.substr(0, begin) << std::flush;
}

TEST_P(Pkcs12ClientsTest, KeytoolListsTrustedCertEntries) {
  const std::string keytool = Keytool();
  ASSERT_FALSE(keytool.empty());
  auto der = BuildTrustStorePkcs12(TrustEntries(h_), kPassword, GetParam());
  ASSERT_TRUE(der.ok()) << der.status();
  const std::string file = Write("trust.p12", *der);

  const auto list = testing::Run(absl::StrCat(keytool, " -list -v -storetype PKCS12 -keystore ",
                                              file, " -storepass ", kPassword));
  ASSERT_EQ(list.exit_code, 0) << list.output;
  EXPECT_THAT(list.output, HasSubstr("Keystore type: PKCS12"));
  EXPECT_THAT(list.output, HasSubstr("Your keystore contains 2 entries"));
  const auto entries = KeytoolEntries(list.output);
  // Java keeps aliases lowercased.
  ASSERT_EQ(entries.size(), 2u) << list.output;
  ASSERT_EQ(entries.count("fleet-devices"), 1u) << list.output;
  ASSERT_EQ(entries.count("fleet-root"), 1u) << list.output;
  EXPECT_THAT(entries.at("fleet-devices"), HasSubstr("Entry type: trustedCertEntry"));
  EXPECT_THAT(entries.at("fleet-devices"), HasSubstr("Owner: CN=Fleet Devices CA, O=Acme Fleet"));
  EXPECT_THAT(entries.at("fleet-root"), HasSubstr("Entry type: trustedCertEntry"));
  EXPECT_THAT(entries.at("fleet-root"), HasSubstr("Owner: CN=Fleet Root CA, O=Acme Fleet"));
  for (absl::string_view line : absl::StrSplit(list.output, '\n')) {
    if (absl::StartsWith(line, "Alias name:") || absl::StartsWith(line, "Entry type:") ||
        absl::StartsWith(line, "Your keystore")) {
      std::cout << line << "\n";
    }
  }

  const auto wrong = testing::Run(absl::StrCat(keytool, " -list -storetype PKCS12 -keystore ", file,
                                               " -storepass wrong-password"));
  EXPECT_NE(wrong.exit_code, 0) << wrong.output;
  EXPECT_THAT(wrong.output, HasSubstr("password was incorrect"));
}

TEST_P(Pkcs12ClientsTest, KeytoolListsThePrivateKeyEntryWithItsChain) {
  const std::string keytool = Keytool();
  ASSERT_FALSE(keytool.empty());
  auto der = BuildKeyStorePkcs12(h_.leaf.get(), {h_.inter.get(), h_.root.get()},
                                 KeyPem(h_.leaf_key), kPassword, "dev-0001", GetParam());
  ASSERT_TRUE(der.ok()) << der.status();
  const std::string file = Write("device.p12", *der);

  const auto list = testing::Run(absl::StrCat(keytool, " -list -v -storetype PKCS12 -keystore ",
                                              file, " -storepass ", kPassword));
  ASSERT_EQ(list.exit_code, 0) << list.output;
  EXPECT_THAT(list.output, HasSubstr("Your keystore contains 1 entry"));
  const auto entries = KeytoolEntries(list.output);
  ASSERT_EQ(entries.size(), 1u) << list.output;
  ASSERT_EQ(entries.count("dev-0001"), 1u) << list.output;
  const std::string& entry = entries.at("dev-0001");
  EXPECT_THAT(entry, HasSubstr("Entry type: PrivateKeyEntry"));
  EXPECT_THAT(entry, HasSubstr("Certificate chain length: 3"));
  EXPECT_THAT(entry, HasSubstr("Certificate[1]:\nOwner: CN=dev-0001, O=Acme Fleet"));
  EXPECT_THAT(entry, HasSubstr("Certificate[2]:\nOwner: CN=Fleet Devices CA, O=Acme Fleet"));
  EXPECT_THAT(entry, HasSubstr("Certificate[3]:\nOwner: CN=Fleet Root CA, O=Acme Fleet"));
  for (absl::string_view line : absl::StrSplit(list.output, '\n')) {
    if (absl::StartsWith(line, "Alias name:") || absl::StartsWith(line, "Entry type:") ||
        absl::StartsWith(line, "Certificate chain length:") ||
        absl::StartsWith(line, "Your keystore")) {
      std::cout << line << "\n";
    }
  }
}

}  // namespace
}  // namespace fleetca::pki
