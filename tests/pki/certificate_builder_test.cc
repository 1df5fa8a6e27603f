#include "pki/certificate_builder.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include <functional>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "pki/csr.h"
#include "tests/pki/pki_test_util.h"

namespace fleetca::pki {
namespace {

using testing::CachedKey;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using testing::NewRef;

constexpr char kCrlUrl[] = "http://pki.example.test/crl/devices.crl";
constexpr char kIssuersUrl[] = "http://pki.example.test/ca/devices.der";

absl::Time Now() { return absl::FromUnixSeconds(absl::ToUnixSeconds(absl::Now())); }

SubjectName Name(const std::string& cn, const std::string& o = "Acme Fleet",
                 const std::string& ou = "", const std::string& c = "") {
  SubjectName name;
  name.common_name = cn;
  name.organization = o;
  name.organizational_unit = ou;
  name.country = c;
  return name;
}

CertificateTemplate Template(CertificateProfile profile, const std::string& cn, const EVP_PKEY* key,
                             absl::Time not_before, absl::Duration validity) {
  CertificateTemplate tmpl;
  tmpl.profile = profile;
  tmpl.serial = RandomSerial();
  tmpl.subject = Name(cn);
  tmpl.not_before = not_before;
  tmpl.not_after = not_before + validity;
  tmpl.public_key = key;
  if (profile == CertificateProfile::kClient || profile == CertificateProfile::kServer) {
    tmpl.crl_url = kCrlUrl;
    tmpl.ca_issuers_url = kIssuersUrl;
  }
  return tmpl;
}

// A root and an intermediate whose keys sit in `store` under "<prefix>root" and
// "<prefix>inter".
struct Hierarchy {
  SoftwareKeyStore store;
  X509Ptr root;
  X509Ptr inter;
  std::string inter_id;
};

void MakeHierarchy(Hierarchy& h, KeyAlgorithm root_alg, KeyAlgorithm inter_alg,
                   const std::string& prefix = "", int key_slot = 0,
                   const std::string& inter_cn = "Devices CA") {
  const EVP_PKEY* root_key = CachedKey(root_alg, key_slot);
  const EVP_PKEY* inter_key = CachedKey(inter_alg, key_slot + 10);
  h.store.Add(prefix + "root", NewRef(root_key));
  h.store.Add(prefix + "inter", NewRef(inter_key));
  h.inter_id = prefix + "inter";
  const absl::Time start = Now() - absl::Hours(1);
  auto root = BuildCertificate(
      Template(CertificateProfile::kRootCa, "Fleet Root", root_key, start, absl::Hours(24 * 3650)),
      nullptr, h.store, prefix + "root");
  ASSERT_TRUE(root.ok()) << root.status();
  h.root = std::move(*root);
  auto inter = BuildCertificate(Template(CertificateProfile::kIntermediateCa, inter_cn, inter_key,
                                         start, absl::Hours(24 * 1825)),
                                h.root.get(), h.store, prefix + "root");
  ASSERT_TRUE(inter.ok()) << inter.status();
  h.inter = std::move(*inter);
}

std::string Pem(const X509* cert) {
  auto pem = CertificateToPem(cert);
  EXPECT_TRUE(pem.ok()) << pem.status();
  return pem.ok() ? *pem : std::string();
}

std::string Hex(absl::string_view bytes) { return absl::BytesToHexString(bytes); }

// ExtensionCritical returns 1/0 for a present extension's critical flag, -1 when absent.
int ExtensionCritical(const X509* cert, int nid) {
  const int pos = X509_get_ext_by_NID(cert, nid, -1);
  if (pos < 0) {
    return -1;
  }
  return X509_EXTENSION_get_critical(X509_get_ext(cert, pos));
}

// Checks every certificate property the profile promises, with OpenSSL's own parsers.
void ExpectProfile(const X509* cert_c, const X509* issuer_c, CertificateProfile profile,
                   const std::string& what) {
  X509* cert = const_cast<X509*>(cert_c);
  X509* issuer = const_cast<X509*>(issuer_c);
  SCOPED_TRACE(what);
  EXPECT_EQ(X509_get_version(cert), X509_VERSION_3);
  EXPECT_EQ(ExtensionCritical(cert, NID_basic_constraints), 1);
  EXPECT_EQ(ExtensionCritical(cert, NID_key_usage), 1);
  EXPECT_EQ(ExtensionCritical(cert, NID_subject_key_identifier), 0);
  EXPECT_EQ(ExtensionCritical(cert, NID_authority_key_identifier), 0);
  const uint32_t ku = X509_get_key_usage(cert);
  const bool is_ca =
      profile == CertificateProfile::kRootCa || profile == CertificateProfile::kIntermediateCa;
  EXPECT_EQ(X509_check_ca(cert) != 0, is_ca);
  if (is_ca) {
    EXPECT_EQ(ku, static_cast<uint32_t>(KU_KEY_CERT_SIGN | KU_CRL_SIGN));
    EXPECT_EQ(ExtensionCritical(cert, NID_ext_key_usage), -1);
    EXPECT_EQ(X509_get_pathlen(cert), profile == CertificateProfile::kIntermediateCa ? 0 : -1);
  } else {
    EXPECT_EQ(ku, static_cast<uint32_t>(KU_DIGITAL_SIGNATURE));
    EXPECT_EQ(ExtensionCritical(cert, NID_ext_key_usage), 0);
    EXPECT_EQ(X509_get_extended_key_usage(cert),
              static_cast<uint32_t>(profile == CertificateProfile::kClient ? XKU_SSL_CLIENT
                                                                           : XKU_SSL_SERVER));
  }
  // SKI: RFC 5280 method 1 over this certificate's key; AKI: the issuer's SKI.
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int md_len = 0;
  ASSERT_EQ(X509_pubkey_digest(cert, EVP_sha1(), md, &md_len), 1);
  const ASN1_OCTET_STRING* ski = X509_get0_subject_key_id(cert);
  ASSERT_NE(ski, nullptr);
  EXPECT_EQ(Hex(std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(ski)),
                            static_cast<size_t>(ASN1_STRING_length(ski)))),
            Hex(std::string(reinterpret_cast<const char*>(md), md_len)));
  const ASN1_OCTET_STRING* aki = X509_get0_authority_key_id(cert);
  const ASN1_OCTET_STRING* issuer_ski = X509_get0_subject_key_id(issuer);
  ASSERT_NE(aki, nullptr);
  ASSERT_NE(issuer_ski, nullptr);
  EXPECT_EQ(ASN1_OCTET_STRING_cmp(aki, issuer_ski), 0);
  EXPECT_EQ(X509_NAME_cmp(X509_get_issuer_name(cert), X509_get_subject_name(issuer)), 0);
  // Signed by the issuer's key.
  EXPECT_EQ(X509_verify(cert, X509_get0_pubkey(issuer)), 1);
  // The serial: positive, 20 octets.
  const ASN1_INTEGER* serial = X509_get0_serialNumber(cert);
  EXPECT_EQ(ASN1_STRING_type(serial), V_ASN1_INTEGER);
  EXPECT_EQ(ASN1_STRING_length(serial), 20);
  // No extension OpenSSL does not understand, none twice.
  EXPECT_EQ(X509_check_purpose(cert, -1, 0), 1);
  EXPECT_EQ(X509_get_extension_flags(cert) & EXFLAG_INVALID, 0u);
}

TEST(BuildCertificateTest, EveryProfileForEveryAlgorithm) {
  for (const KeyAlgorithm ca_alg : testing::kAllAlgorithms) {
    Hierarchy h;
    MakeHierarchy(h, ca_alg, ca_alg);
    if (HasFatalFailure()) {
      return;
    }
    const std::string ca = KeyAlgorithmName(ca_alg);
    ExpectProfile(h.root.get(), h.root.get(), CertificateProfile::kRootCa, ca + " root");
    ExpectProfile(h.inter.get(), h.root.get(), CertificateProfile::kIntermediateCa, ca + " inter");
    EXPECT_TRUE(VerifyChain(h.inter.get(), {}, {h.root.get()}, Now()).ok()) << ca;

    for (const KeyAlgorithm leaf_alg : testing::kAllAlgorithms) {
      for (const CertificateProfile profile :
           {CertificateProfile::kClient, CertificateProfile::kServer}) {
        const std::string what =
            absl::StrCat(ca, " CA, ", KeyAlgorithmName(leaf_alg), " leaf, ",
                         profile == CertificateProfile::kClient ? "client" : "server");
        CertificateTemplate tmpl = Template(profile, "356938035643809", CachedKey(leaf_alg, 2),
                                            Now(), absl::Hours(24 * 365));
        if (profile == CertificateProfile::kServer) {
          tmpl.dns_names = {"broker.example.test"};
          tmpl.ip_addresses = {"192.0.2.10", "2001:db8::10"};
        }
        auto leaf = BuildCertificate(tmpl, h.inter.get(), h.store, h.inter_id);
        ASSERT_TRUE(leaf.ok()) << what << ": " << leaf.status();
        ExpectProfile(leaf->get(), h.inter.get(), profile, what);
        const absl::Status verified =
            VerifyChain(leaf->get(), {h.inter.get()}, {h.root.get()}, Now() + absl::Minutes(1));
        EXPECT_TRUE(verified.ok()) << what << ": " << verified;
      }
    }
  }
}

TEST(BuildCertificateTest, OpensslCliVerifiesAndShowsTheExtensions) {
  // scripts/deps.sh installs Debian's openssl package: its absence is a failure, not a skip.
  ASSERT_TRUE(testing::HaveOpensslCli()) << "the openssl command is required";
  struct Case {
    const char* name;
    KeyAlgorithm root_alg;
    KeyAlgorithm inter_alg;
    KeyAlgorithm leaf_alg;
    CertificateProfile profile;
    std::vector<std::string> expected;  // lines or fragments of `openssl x509 -text`
  };
  const std::vector<std::string> common = {
      "Version: 3 (0x2)",
      "X509v3 Basic Constraints: critical",
      "CA:FALSE",
      "X509v3 Key Usage: critical",
      "Digital Signature",
      "X509v3 Subject Key Identifier",
      "X509v3 Authority Key Identifier",
      "X509v3 CRL Distribution Points",
      absl::StrCat("URI:", kCrlUrl),
      "Authority Information Access",
      absl::StrCat("CA Issuers - URI:", kIssuersUrl),
      "Subject: O = Acme Fleet, CN = 356938035643809",
      "Issuer: O = Acme Fleet, CN = Devices CA",
  };
  auto with = [&](std::vector<std::string> extra) {
    std::vector<std::string> all = common;
    all.insert(all.end(), extra.begin(), extra.end());
    return all;
  };
  const Case cases[] = {
      {"p256_client", KeyAlgorithm::kEcdsaP256, KeyAlgorithm::kEcdsaP256, KeyAlgorithm::kEcdsaP256,
       CertificateProfile::kClient,
       with({"X509v3 Extended Key Usage", "TLS Web Client Authentication", "ecdsa-with-SHA256"})},
      {"p384_ca_rsa_client", KeyAlgorithm::kEcdsaP384, KeyAlgorithm::kEcdsaP384,
       KeyAlgorithm::kRsa2048, CertificateProfile::kClient,
       with({"TLS Web Client Authentication", "ecdsa-with-SHA384", "Public-Key: (2048 bit)"})},
      {"rsa_ca_ed25519_client", KeyAlgorithm::kRsa4096, KeyAlgorithm::kRsa3072,
       KeyAlgorithm::kEd25519, CertificateProfile::kClient,
       with({"TLS Web Client Authentication", "sha256WithRSAEncryption", "ED25519"})},
      {"ed25519_server", KeyAlgorithm::kEd25519, KeyAlgorithm::kEd25519, KeyAlgorithm::kEcdsaP256,
       CertificateProfile::kServer,
       with({"TLS Web Server Authentication", "X509v3 Subject Alternative Name",
             "DNS:broker.example.test, IP Address:192.0.2.10, IP Address:2001:DB8:0:0:0:0:0:10",
             "Signature Algorithm: ED25519"})},
  };
  const std::string dir = testing::MakeTempDir();
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    Hierarchy h;
    MakeHierarchy(h, c.root_alg, c.inter_alg);
    ASSERT_FALSE(HasFatalFailure());
    CertificateTemplate tmpl = Template(c.profile, "356938035643809", CachedKey(c.leaf_alg, 3),
                                        Now() - absl::Minutes(5), absl::Hours(24 * 90));
    if (c.profile == CertificateProfile::kServer) {
      tmpl.dns_names = {"broker.example.test"};
      tmpl.ip_addresses = {"192.0.2.10", "2001:db8::10"};
    } else {
      tmpl.uris = {"fleetca://role/provisioner/station-12"};
    }
    auto leaf = BuildCertificate(tmpl, h.inter.get(), h.store, h.inter_id);
    ASSERT_TRUE(leaf.ok()) << leaf.status();

    const std::string root_pem = absl::StrCat(dir, "/", c.name, "-root.pem");
    const std::string inter_pem = absl::StrCat(dir, "/", c.name, "-inter.pem");
    const std::string leaf_pem = absl::StrCat(dir, "/", c.name, "-leaf.pem");
    testing::WriteFile(root_pem, Pem(h.root.get()));
    testing::WriteFile(inter_pem, Pem(h.inter.get()));
    testing::WriteFile(leaf_pem, Pem(leaf->get()));

    auto verify = testing::Run(absl::StrCat("openssl verify -CAfile ", root_pem, " -untrusted ",
                                            inter_pem, " ", leaf_pem));
    EXPECT_EQ(verify.exit_code, 0) << verify.output;
    EXPECT_EQ(verify.output, absl::StrCat(leaf_pem, ": OK\n"));
    // The purpose the broker or device will check.
    const char* purpose = c.profile == CertificateProfile::kClient ? "sslclient" : "sslserver";
    auto purpose_verify =
        testing::Run(absl::StrCat("openssl verify -x509_strict -purpose ", purpose, " -CAfile ",
                                  root_pem, " -untrusted ", inter_pem, " ", leaf_pem));
    EXPECT_EQ(purpose_verify.exit_code, 0) << purpose_verify.output;
    EXPECT_THAT(purpose_verify.output, HasSubstr(": OK"));
    // The wrong purpose is refused: the EKU is really there.
    const char* other = c.profile == CertificateProfile::kClient ? "sslserver" : "sslclient";
    auto wrong_purpose =
        testing::Run(absl::StrCat("openssl verify -purpose ", other, " -CAfile ", root_pem,
                                  " -untrusted ", inter_pem, " ", leaf_pem));
    EXPECT_NE(wrong_purpose.exit_code, 0) << wrong_purpose.output;
    // Without the intermediate there is no chain.
    auto no_inter = testing::Run(absl::StrCat("openssl verify -CAfile ", root_pem, " ", leaf_pem));
    EXPECT_NE(no_inter.exit_code, 0) << no_inter.output;

    auto text = testing::Run(absl::StrCat("openssl x509 -noout -text -in ", leaf_pem));
    ASSERT_EQ(text.exit_code, 0) << text.output;
    for (const std::string& fragment : c.expected) {
      EXPECT_THAT(text.output, HasSubstr(fragment)) << text.output;
    }
    // basicConstraints critical, then CA:FALSE on the next line; keyUsage likewise.
    EXPECT_THAT(text.output,
                HasSubstr("X509v3 Basic Constraints: critical\n                CA:FALSE"));
    EXPECT_THAT(text.output,
                HasSubstr("X509v3 Key Usage: critical\n                Digital Signature\n"));

    auto inter_text = testing::Run(absl::StrCat("openssl x509 -noout -text -in ", inter_pem));
    EXPECT_THAT(
        inter_text.output,
        HasSubstr("X509v3 Basic Constraints: critical\n                CA:TRUE, pathlen:0"));
    EXPECT_THAT(
        inter_text.output,
        HasSubstr("X509v3 Key Usage: critical\n                Certificate Sign, CRL Sign"));
    auto root_text = testing::Run(absl::StrCat("openssl x509 -noout -text -in ", root_pem));
    EXPECT_THAT(root_text.output,
                HasSubstr("X509v3 Basic Constraints: critical\n                CA:TRUE\n"));
  }
  testing::Run("rm -rf " + dir);
}

TEST(BuildCertificateTest, RejectsBadTemplates) {
  Hierarchy h;
  MakeHierarchy(h, KeyAlgorithm::kEcdsaP256, KeyAlgorithm::kEcdsaP256);
  ASSERT_FALSE(HasFatalFailure());
  EvpPkeyPtr weak = testing::GenerateRsa(1024);
  const CertificateTemplate good =
      Template(CertificateProfile::kClient, "dev-1", CachedKey(KeyAlgorithm::kEcdsaP256, 2), Now(),
               absl::Hours(1));
  struct Case {
    const char* name;
    std::function<void(CertificateTemplate&)> mutate;
    const char* why;
  };
  const Case cases[] = {
      {"empty_serial", [](CertificateTemplate& t) { t.serial.clear(); }, "serial is empty"},
      {"serial_21_bytes", [](CertificateTemplate& t) { t.serial = std::string(21, '\x11'); },
       "longer than 20 bytes"},
      {"serial_negative_when_encoded",
       [](CertificateTemplate& t) { t.serial = std::string(20, '\x81'); }, "longer than 20 bytes"},
      {"serial_leading_zero", [](CertificateTemplate& t) { t.serial = std::string("\0\x01", 2); },
       "leading zero"},
      {"serial_zero", [](CertificateTemplate& t) { t.serial = std::string(1, '\0'); },
       "leading zero"},
      {"not_after_equals_not_before", [](CertificateTemplate& t) { t.not_after = t.not_before; },
       "not_after must be after not_before"},
      {"not_after_before_not_before",
       [](CertificateTemplate& t) { t.not_after = t.not_before - absl::Seconds(1); },
       "not_after must be after not_before"},
      {"infinite_future", [](CertificateTemplate& t) { t.not_after = absl::InfiniteFuture(); },
       "outside the years"},
      {"bad_ip", [](CertificateTemplate& t) { t.ip_addresses = {"192.0.2.300"}; },
       "bad IP address"},
      {"ip_with_port", [](CertificateTemplate& t) { t.ip_addresses = {"192.0.2.1:80"}; },
       "bad IP address"},
      {"uri_with_space", [](CertificateTemplate& t) { t.uris = {"fleetca://role/a b"}; },
       "bad URI"},
      {"dns_with_space", [](CertificateTemplate& t) { t.dns_names = {"a b.example"}; },
       "bad DNS name"},
      {"dns_empty", [](CertificateTemplate& t) { t.dns_names = {""}; }, "bad DNS name"},
      {"empty_cn", [](CertificateTemplate& t) { t.subject.common_name.clear(); },
       "common name is empty"},
      {"cn_too_long", [](CertificateTemplate& t) { t.subject.common_name = std::string(65, 'a'); },
       "bad subject common name"},
      {"country_three_letters", [](CertificateTemplate& t) { t.subject.country = "FRA"; },
       "bad subject country"},
      {"no_key", [](CertificateTemplate& t) { t.public_key = nullptr; }, "no public key"},
      {"weak_key", [&](CertificateTemplate& t) { t.public_key = weak.get(); }, "too weak"},
      {"crl_url_with_space", [](CertificateTemplate& t) { t.crl_url = "http://x/a b"; },
       "bad CRL distribution point URL"},
  };
  for (const auto& c : cases) {
    CertificateTemplate tmpl = good;
    c.mutate(tmpl);
    auto cert = BuildCertificate(tmpl, h.inter.get(), h.store, h.inter_id);
    ASSERT_FALSE(cert.ok()) << c.name;
    EXPECT_EQ(cert.status().code(), absl::StatusCode::kInvalidArgument) << c.name;
    EXPECT_THAT(std::string(cert.status().message()), HasSubstr(c.why))
        << c.name << ": " << cert.status();
  }
  // The unchanged template does build, and the KeyStore's error comes through.
  EXPECT_TRUE(BuildCertificate(good, h.inter.get(), h.store, h.inter_id).ok());
  EXPECT_EQ(BuildCertificate(good, h.inter.get(), h.store, "unknown-issuer").status().code(),
            absl::StatusCode::kNotFound);
}

TEST(BuildCertificateTest, SubjectIsBuiltFromTheTemplate) {
  Hierarchy h;
  MakeHierarchy(h, KeyAlgorithm::kEcdsaP256, KeyAlgorithm::kEcdsaP256);
  ASSERT_FALSE(HasFatalFailure());
  struct Case {
    const char* name;
    SubjectName subject;
    const char* want;
  };
  const Case cases[] = {
      {"cn_only", Name("dev-1", ""), "CN=dev-1"},
      {"all_parts", Name("dev-1", "Acme", "Line 2", "FR"), "CN=dev-1,OU=Line 2,O=Acme,C=FR"},
      {"utf8_org", Name("dev-1", "Soci\xc3\xa9t\xc3\xa9"), "CN=dev-1,O=Soci\xc3\xa9t\xc3\xa9"},
      {"max_cn", Name(std::string(64, 'c'), ""), nullptr},
  };
  for (const auto& c : cases) {
    CertificateTemplate tmpl =
        Template(CertificateProfile::kClient, "x", CachedKey(KeyAlgorithm::kEcdsaP256, 2), Now(),
                 absl::Hours(1));
    tmpl.subject = c.subject;
    auto cert = BuildCertificate(tmpl, h.inter.get(), h.store, h.inter_id);
    ASSERT_TRUE(cert.ok()) << c.name << ": " << cert.status();
    auto info = InspectCertificate(cert->get());
    ASSERT_TRUE(info.ok());
    EXPECT_EQ(info->common_name, c.subject.common_name) << c.name;
    if (c.want != nullptr) {
      EXPECT_EQ(info->subject, c.want) << c.name;
    }
  }
}

TEST(InspectCertificateTest, ReadsBackWhatWasBuilt) {
  Hierarchy h;
  MakeHierarchy(h, KeyAlgorithm::kEcdsaP384, KeyAlgorithm::kEcdsaP256);
  ASSERT_FALSE(HasFatalFailure());
  // Past 2049 the validity is a GeneralizedTime (RFC 5280 section 4.1.2.5).
  const absl::Time not_before = absl::FromUnixSeconds(1767225600);  // 2026-01-01T00:00:00Z
  const absl::Time not_after = absl::FromUnixSeconds(2871763199);   // 2060-12-31T23:59:59Z
  CertificateTemplate tmpl =
      Template(CertificateProfile::kServer, "broker-1", CachedKey(KeyAlgorithm::kEd25519, 2),
               not_before, not_after - not_before);
  tmpl.dns_names = {"broker-1.example.test", "mqtt.example.test"};
  tmpl.ip_addresses = {"192.0.2.10", "2001:db8::10"};
  tmpl.uris = {"fleetca://role/broker/broker-1"};
  auto cert = BuildCertificate(tmpl, h.inter.get(), h.store, h.inter_id);
  ASSERT_TRUE(cert.ok()) << cert.status();

  auto info = InspectCertificate(cert->get());
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->serial, tmpl.serial);
  EXPECT_EQ(info->subject, "CN=broker-1,O=Acme Fleet");
  EXPECT_EQ(info->issuer, "CN=Devices CA,O=Acme Fleet");
  EXPECT_EQ(info->common_name, "broker-1");
  EXPECT_EQ(info->not_before, not_before);
  EXPECT_EQ(info->not_after, not_after);
  EXPECT_FALSE(info->is_ca);
  EXPECT_FALSE(info->can_sign_certificates);
  EXPECT_THAT(info->dns_names, ElementsAre("broker-1.example.test", "mqtt.example.test"));
  EXPECT_THAT(info->ip_addresses, ElementsAre("192.0.2.10", "2001:db8::10"));
  EXPECT_THAT(info->uris, ElementsAre("fleetca://role/broker/broker-1"));
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int md_len = 0;
  ASSERT_EQ(X509_pubkey_digest(cert->get(), EVP_sha1(), md, &md_len), 1);
  EXPECT_EQ(info->subject_key_id, std::string(reinterpret_cast<const char*>(md), md_len));

  auto inter = InspectCertificate(h.inter.get());
  ASSERT_TRUE(inter.ok());
  EXPECT_TRUE(inter->is_ca);
  EXPECT_TRUE(inter->can_sign_certificates);
  EXPECT_THAT(inter->dns_names, IsEmpty());
  auto root = InspectCertificate(h.root.get());
  ASSERT_TRUE(root.ok());
  EXPECT_EQ(root->subject, root->issuer);
  EXPECT_TRUE(root->is_ca);

  // A certificate without extensions: no keyUsage means any use is allowed.
  X509Ptr raw = testing::MakeRawCertificate(CachedKey(KeyAlgorithm::kEcdsaP256), "raw", 42);
  auto raw_info = InspectCertificate(raw.get());
  ASSERT_TRUE(raw_info.ok());
  EXPECT_EQ(raw_info->serial, std::string(1, '\x2a'));
  EXPECT_FALSE(raw_info->is_ca);
  EXPECT_TRUE(raw_info->can_sign_certificates);
  EXPECT_TRUE(raw_info->subject_key_id.empty());
  EXPECT_EQ(InspectCertificate(nullptr).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(VerifyChainTest, RejectsForeignExpiredAndNotYetValid) {
  Hierarchy h;
  MakeHierarchy(h, KeyAlgorithm::kEcdsaP256, KeyAlgorithm::kEcdsaP256);
  ASSERT_FALSE(HasFatalFailure());
  // Another CA with the very same names, other keys.
  Hierarchy other;
  MakeHierarchy(other, KeyAlgorithm::kEcdsaP256, KeyAlgorithm::kEcdsaP256, "other-", 1);
  ASSERT_FALSE(HasFatalFailure());

  const EVP_PKEY* leaf_key = CachedKey(KeyAlgorithm::kEcdsaP256, 2);
  const absl::Time now = Now();
  auto good = BuildCertificate(
      Template(CertificateProfile::kClient, "dev-1", leaf_key, now, absl::Hours(24)), h.inter.get(),
      h.store, h.inter_id);
  auto foreign = BuildCertificate(
      Template(CertificateProfile::kClient, "dev-1", leaf_key, now, absl::Hours(24)),
      other.inter.get(), other.store, other.inter_id);
  // Names and AKI point at our intermediate, but another CA's key signed it.
  auto forged = BuildCertificate(
      Template(CertificateProfile::kClient, "dev-1", leaf_key, now, absl::Hours(24)), h.inter.get(),
      other.store, other.inter_id);
  auto expired = BuildCertificate(Template(CertificateProfile::kClient, "dev-1", leaf_key,
                                           now - absl::Hours(48), absl::Hours(24)),
                                  h.inter.get(), h.store, h.inter_id);
  ASSERT_TRUE(good.ok() && foreign.ok() && forged.ok() && expired.ok());

  struct Case {
    const char* name;
    const X509* leaf;
    std::vector<const X509*> intermediates;
    std::vector<const X509*> roots;
    absl::Time at;
    const char* why;  // nullptr: must verify
  };
  const Case cases[] = {
      {"good", good->get(), {h.inter.get()}, {h.root.get()}, now + absl::Minutes(1), nullptr},
      {"good_with_extra_intermediates",
       good->get(),
       {other.inter.get(), h.inter.get()},
       {h.root.get()},
       now + absl::Minutes(1),
       nullptr},
      // Its AKI names the other intermediate, so no issuer is found for it at all.
      {"foreign_ca",
       foreign->get(),
       {h.inter.get()},
       {h.root.get()},
       now + absl::Minutes(1),
       "unable to get local issuer certificate"},
      {"forged_signature",
       forged->get(),
       {h.inter.get()},
       {h.root.get()},
       now + absl::Minutes(1),
       "certificate signature failure"},
      {"other_root_trusted",
       good->get(),
       {h.inter.get()},
       {other.root.get()},
       now + absl::Minutes(1),
       "unable to get local issuer certificate"},
      {"missing_intermediate",
       good->get(),
       {},
       {h.root.get()},
       now + absl::Minutes(1),
       "unable to get local issuer certificate"},
      {"no_roots",
       good->get(),
       {h.inter.get()},
       {},
       now + absl::Minutes(1),
       "unable to get local issuer certificate"},
      {"expired",
       expired->get(),
       {h.inter.get()},
       {h.root.get()},
       now + absl::Minutes(1),
       "certificate has expired"},
      {"not_yet_valid",
       good->get(),
       {h.inter.get()},
       {h.root.get()},
       now - absl::Hours(2),
       "not yet valid"},
      {"expired_at_future_time",
       good->get(),
       {h.inter.get()},
       {h.root.get()},
       now + absl::Hours(25),
       "certificate has expired"},
  };
  ClearOpenSslErrors();
  for (const auto& c : cases) {
    const absl::Status st = VerifyChain(c.leaf, c.intermediates, c.roots, c.at);
    if (c.why == nullptr) {
      EXPECT_TRUE(st.ok()) << c.name << ": " << st;
      continue;
    }
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << c.name << ": " << st;
    EXPECT_THAT(std::string(st.message()), HasSubstr(c.why)) << c.name << ": " << st;
    EXPECT_EQ(ERR_peek_error(), 0u) << c.name;
  }
}

TEST(BuildCsrTest, OfflineRootFlowProducesAVerifiableCsr) {
  SoftwareKeyStore store;
  const EVP_PKEY* key = CachedKey(KeyAlgorithm::kEcdsaP384, 4);
  store.Add("devices", NewRef(key));
  auto req = BuildCsr(Name("Devices CA", "Acme Fleet"), key, store, "devices");
  ASSERT_TRUE(req.ok()) << req.status();
  auto parsed = ParseCsr("csr", *CsrToDer(req->get()), false);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_THAT(parsed->common_names, ElementsAre("Devices CA"));
  EXPECT_EQ(NameToString(X509_REQ_get_subject_name(req->get())), "CN=Devices CA,O=Acme Fleet");
  EXPECT_EQ(parsed->key_algorithm, KeyAlgorithm::kEcdsaP384);
  EXPECT_EQ(X509_REQ_get_signature_nid(req->get()), NID_ecdsa_with_SHA384);

  EXPECT_EQ(BuildCsr(Name("x"), key, store, "brokers").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(BuildCsr(Name(""), key, store, "devices").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(BuildCsr(Name("x"), nullptr, store, "devices").status().code(),
            absl::StatusCode::kInvalidArgument);
  // Signed with a key that is not the CSR's own: the CSR does not verify.
  store.Add("wrong", NewRef(CachedKey(KeyAlgorithm::kEcdsaP384, 5)));
  auto mismatched = BuildCsr(Name("Devices CA"), key, store, "wrong");
  ASSERT_TRUE(mismatched.ok());
  EXPECT_FALSE(ParseCsr("csr", *CsrToDer(mismatched->get()), false).ok());
}

TEST(RandomSerialTest, PositiveTwentyBytesAndDifferent) {
  std::set<std::string> seen;
  for (int i = 0; i < 200; ++i) {
    const std::string serial = RandomSerial();
    ASSERT_EQ(serial.size(), 20u);
    const auto first = static_cast<unsigned char>(serial[0]);
    EXPECT_GE(first, 0x01);
    EXPECT_LE(first, 0x7f);
    EXPECT_TRUE(seen.insert(serial).second) << "repeated serial";
  }
}

TEST(SerialHexTest, Table) {
  struct Case {
    const char* name;
    std::string hex;
    bool ok;
    std::string bytes;
  };
  const Case cases[] = {
      {"lower", "0a1b", true, "\x0a\x1b"},
      {"colons_mixed_case", "0A:1b", true, "\x0a\x1b"},
      {"upper", "7F00FF", true, std::string("\x7f\x00\xff", 3)},
      {"leading_zero_byte_kept", "00:8a:01", true, std::string("\x00\x8a\x01", 3)},
      {"surrounding_space", " 0a1b\n", true, "\x0a\x1b"},
      {"twenty_bytes", std::string(40, 'f'), true, std::string(20, '\xff')},
      {"empty", "", false, ""},
      {"odd_length", "a1b", false, ""},
      {"junk", "0x0a1b", false, ""},
      {"not_hex", "zz", false, ""},
      {"single_digit_group", "0A:b", false, ""},
      {"trailing_colon", "0A:1b:", false, ""},
      {"leading_colon", ":0A", false, ""},
      {"double_colon", "0A::1b", false, ""},
      {"inner_space", "0a 1b", false, ""},
      {"zero", "0000", true, std::string(2, '\0')},
      {"sha256_fingerprint", std::string(64, 'A'), true, std::string(32, '\xaa')},
  };
  for (const auto& c : cases) {
    auto bytes = SerialFromHex(c.hex);
    EXPECT_EQ(bytes.ok(), c.ok) << c.name << ": " << bytes.status();
    if (bytes.ok()) {
      EXPECT_EQ(*bytes, c.bytes) << c.name;
    } else {
      EXPECT_EQ(bytes.status().code(), absl::StatusCode::kInvalidArgument) << c.name;
    }
  }
  EXPECT_EQ(SerialToHex(std::string("\x0a\x1b\xff", 3)), "0a1bff");
  const std::string serial = RandomSerial();
  EXPECT_EQ(SerialToHex(serial).size(), 40u);
  EXPECT_EQ(*SerialFromHex(SerialToHex(serial)), serial);
}

}  // namespace
}  // namespace fleetca::pki
