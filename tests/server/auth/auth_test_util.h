#pragma once

// Helpers shared by the auth tests: a small fleetca CA hierarchy built in memory (root,
// operators CA, devices CA, a brokers CA that signs no callers) next to a foreign one whose
// CAs carry the same names, and client certificates issued from either.

#include <gtest/gtest.h>
#include <openssl/x509.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "pki/certificate_builder.h"
#include "pki/key_store.h"
#include "pki/keys.h"
#include "pki/openssl_util.h"
#include "server/auth/authenticator.h"

namespace fleetca::auth::testing {

// Certificates carry whole seconds: so must the times the tests compare with them.
inline absl::Time WholeSeconds(absl::Time t) {
  return absl::FromUnixSeconds(absl::ToUnixSeconds(t));
}

// A client certificate to issue. Issuer is one of TestPki's key ids.
struct LeafSpec {
  std::string issuer = "operators";
  std::string common_name = "station-12";
  std::vector<std::string> uris = {"fleetca://role/provisioner/station-12"};
  pki::CertificateProfile profile = pki::CertificateProfile::kClient;
  absl::Duration not_before_offset = -absl::Hours(1);  // relative to TestPki::now()
  absl::Duration validity = absl::Hours(24);
};

struct Leaf {
  std::string pem;
  std::string serial_hex;
  absl::Time not_after;
};

class TestPki {
 public:
  // Init builds the CAs, valid around `now`. Call it with ASSERT_NO_FATAL_FAILURE.
  void Init(absl::Time now) {
    now_ = WholeSeconds(now);
    ASSERT_NO_FATAL_FAILURE(MakeCa("root", "Fleet Root", nullptr, "", &root_));
    ASSERT_NO_FATAL_FAILURE(
        MakeCa("operators", "Fleet Operators CA", root_.get(), "root", &operators_));
    ASSERT_NO_FATAL_FAILURE(MakeCa("devices", "Fleet Devices CA", root_.get(), "root", &devices_));
    ASSERT_NO_FATAL_FAILURE(MakeCa("brokers", "Fleet Brokers CA", root_.get(), "root", &brokers_));
    // The foreign hierarchy copies fleetca's names: only keys tell them apart.
    ASSERT_NO_FATAL_FAILURE(MakeCa("foreign-root", "Fleet Root", nullptr, "", &foreign_root_));
    ASSERT_NO_FATAL_FAILURE(MakeCa("foreign-operators", "Fleet Operators CA", foreign_root_.get(),
                                   "foreign-root", &foreign_operators_));
    auto leaf_key = pki::GenerateKey(pki::KeyAlgorithm::kEcdsaP256);
    ASSERT_TRUE(leaf_key.ok()) << leaf_key.status();
    leaf_key_ = std::move(*leaf_key);
  }

  absl::Time now() const { return now_; }
  const X509* root() const { return root_.get(); }
  const X509* operators() const { return operators_.get(); }
  const X509* devices() const { return devices_.get(); }
  // CaKey: a CA's private key, for certificates fleetca's builder would not make.
  const EVP_PKEY* CaKey(const std::string& id) const { return keys_.at(id).get(); }
  const EVP_PKEY* leaf_key() const { return leaf_key_.get(); }

  // Anchors: what the server trusts for callers (fleetca's CAs, not the foreign ones).
  std::vector<TrustAnchor> Anchors() const {
    std::vector<TrustAnchor> out;
    out.push_back(Anchor("root", TrustAnchor::Kind::kRoot, root_.get()));
    out.push_back(Anchor("operators", TrustAnchor::Kind::kOperators, operators_.get()));
    out.push_back(Anchor("devices", TrustAnchor::Kind::kDevices, devices_.get()));
    out.push_back(Anchor("brokers", TrustAnchor::Kind::kOther, brokers_.get()));
    return out;
  }

  static TrustAnchor Anchor(const std::string& id, TrustAnchor::Kind kind, const X509* cert) {
    TrustAnchor a;
    a.issuer_id = id;
    a.kind = kind;
    X509_up_ref(const_cast<X509*>(cert));
    a.certificate.reset(const_cast<X509*>(cert));
    return a;
  }

  // Issue makes a client certificate (empty PEM, and a test failure, if it cannot).
  Leaf Issue(const LeafSpec& spec) {
    const X509* issuer = spec.issuer == "operators"           ? operators_.get()
                         : spec.issuer == "devices"           ? devices_.get()
                         : spec.issuer == "brokers"           ? brokers_.get()
                         : spec.issuer == "foreign-root"      ? foreign_root_.get()
                         : spec.issuer == "foreign-operators" ? foreign_operators_.get()
                                                              : root_.get();
    pki::CertificateTemplate tmpl;
    tmpl.profile = spec.profile;
    tmpl.serial = pki::RandomSerial();
    tmpl.subject.common_name = spec.common_name;
    tmpl.not_before = now_ + spec.not_before_offset;
    tmpl.not_after = tmpl.not_before + spec.validity;
    tmpl.public_key = leaf_key_.get();
    tmpl.uris = spec.uris;
    Leaf leaf;
    auto cert = pki::BuildCertificate(tmpl, issuer, store_, spec.issuer);
    EXPECT_TRUE(cert.ok()) << cert.status();
    if (!cert.ok()) return leaf;
    auto pem = pki::CertificateToPem(cert->get());
    EXPECT_TRUE(pem.ok()) << pem.status();
    if (!pem.ok()) return leaf;
    leaf.pem = *pem;
    leaf.serial_hex = pki::SerialToHex(tmpl.serial);
    leaf.not_after = tmpl.not_after;
    return leaf;
  }

 private:
  void MakeCa(const std::string& id, const std::string& cn, const X509* issuer,
              const std::string& issuer_id, pki::X509Ptr* out) {
    auto key = pki::GenerateKey(pki::KeyAlgorithm::kEcdsaP256);
    ASSERT_TRUE(key.ok()) << key.status();
    pki::CertificateTemplate tmpl;
    tmpl.profile = issuer == nullptr ? pki::CertificateProfile::kRootCa
                                     : pki::CertificateProfile::kIntermediateCa;
    tmpl.serial = pki::RandomSerial();
    tmpl.subject.common_name = cn;
    tmpl.subject.organization = "Acme Fleet";
    tmpl.not_before = now_ - absl::Hours(24);
    tmpl.not_after = now_ + absl::Hours(24 * 365);
    tmpl.public_key = key->get();
    EVP_PKEY_up_ref(key->get());  // the store takes a reference; keys_ keeps tmpl's alive
    store_.Add(id, pki::EvpPkeyPtr(key->get()));
    keys_[id] = std::move(*key);
    auto cert = pki::BuildCertificate(tmpl, issuer, store_, issuer == nullptr ? id : issuer_id);
    ASSERT_TRUE(cert.ok()) << cert.status();
    *out = std::move(*cert);
  }

  absl::Time now_;
  pki::SoftwareKeyStore store_;
  pki::X509Ptr root_, operators_, devices_, brokers_, foreign_root_, foreign_operators_;
  std::map<std::string, pki::EvpPkeyPtr> keys_;
  pki::EvpPkeyPtr leaf_key_;
};

}  // namespace fleetca::auth::testing
