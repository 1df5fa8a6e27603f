#pragma once

// Helpers shared by the pki tests: cached keys (RSA-4096 generation is slow), CSRs built
// directly with OpenSSL (so that tests can make the bad ones fleetca never would), and
// running the real `openssl` command line tool.

#include <gtest/gtest.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "pki/keys.h"
#include "pki/openssl_util.h"

namespace fleetca::pki::testing {

inline const KeyAlgorithm kAllAlgorithms[] = {
    KeyAlgorithm::kEcdsaP256, KeyAlgorithm::kEcdsaP384, KeyAlgorithm::kRsa2048,
    KeyAlgorithm::kRsa3072,   KeyAlgorithm::kRsa4096,   KeyAlgorithm::kEd25519,
};

// CachedKey returns a borrowed key of this algorithm, generated once per process and slot
// (use different slots when two distinct keys of one algorithm are needed).
inline const EVP_PKEY* CachedKey(KeyAlgorithm algorithm, int slot = 0) {
  static std::mutex mu;
  static std::map<std::pair<KeyAlgorithm, int>, EvpPkeyPtr>* keys =
      new std::map<std::pair<KeyAlgorithm, int>, EvpPkeyPtr>();
  std::lock_guard<std::mutex> lock(mu);
  auto& key = (*keys)[{algorithm, slot}];
  if (key == nullptr) {
    auto generated = GenerateKey(algorithm);
    EXPECT_TRUE(generated.ok()) << generated.status();
    if (generated.ok()) {
      key = std::move(*generated);
    }
  }
  return key.get();
}

// OwnedCopy returns a new reference to a key (for APIs that take ownership).
inline EvpPkeyPtr NewRef(const EVP_PKEY* key) {
  EVP_PKEY* k = const_cast<EVP_PKEY*>(key);
  EVP_PKEY_up_ref(k);
  return EvpPkeyPtr(k);
}

// QKeygen wraps EVP_PKEY_Q_keygen for keys fleetca itself never generates.
inline EvpPkeyPtr GenerateRsa(size_t bits) {
  return EvpPkeyPtr(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", bits));
}
inline EvpPkeyPtr GenerateEc(const char* curve) {
  return EvpPkeyPtr(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", curve));
}
inline EvpPkeyPtr GenerateNamed(const char* type) {
  return EvpPkeyPtr(EVP_PKEY_Q_keygen(nullptr, nullptr, type));
}
inline EvpPkeyPtr GenerateRsaPss() {
  EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, "RSA-PSS", nullptr));
  EVP_PKEY* key = nullptr;
  if (ctx == nullptr || EVP_PKEY_keygen_init(ctx.get()) != 1 ||
      EVP_PKEY_CTX_set_rsa_keygen_bits(ctx.get(), 2048) != 1 ||
      EVP_PKEY_keygen(ctx.get(), &key) != 1) {
    return nullptr;
  }
  return EvpPkeyPtr(key);
}
inline EvpPkeyPtr GenerateDsa() {
  EvpPkeyCtxPtr pctx(EVP_PKEY_CTX_new_from_name(nullptr, "DSA", nullptr));
  EVP_PKEY* params = nullptr;
  if (pctx == nullptr || EVP_PKEY_paramgen_init(pctx.get()) != 1 ||
      EVP_PKEY_CTX_set_dsa_paramgen_bits(pctx.get(), 1024) != 1 ||
      EVP_PKEY_CTX_set_dsa_paramgen_q_bits(pctx.get(), 160) != 1 ||
      EVP_PKEY_paramgen(pctx.get(), &params) != 1) {
    return nullptr;
  }
  EvpPkeyPtr owned_params(params);
  EvpPkeyCtxPtr kctx(EVP_PKEY_CTX_new_from_pkey(nullptr, params, nullptr));
  EVP_PKEY* key = nullptr;
  if (kctx == nullptr || EVP_PKEY_keygen_init(kctx.get()) != 1 ||
      EVP_PKEY_keygen(kctx.get(), &key) != 1) {
    return nullptr;
  }
  return EvpPkeyPtr(key);
}

// DigestFor: the digest a test signs with (none for the EdDSA keys).
inline const EVP_MD* TestDigest(const EVP_PKEY* key) {
  const int id = EVP_PKEY_get_base_id(key);
  if (id == EVP_PKEY_ED25519 || id == EVP_PKEY_ED448) {
    return nullptr;
  }
  return EVP_sha256();
}

struct CsrSpec {
  std::vector<std::string> common_names = {"dev-1"};
  std::string organization;
  // Entries for the subjectAltName extension in OpenSSL config syntax
  // ("DNS:a.example,IP:192.0.2.1,URI:https://x"); empty for none.
  std::string san;
  bool add_basic_constraints = false;  // also request basicConstraints CA:FALSE
  bool duplicate_san = false;          // request subjectAltName twice
};

// MakeCsr builds and signs a CSR with key (its own private half), straight with OpenSSL.
inline X509ReqPtr MakeCsr(const EVP_PKEY* key, const CsrSpec& spec = {}) {
  X509ReqPtr req(X509_REQ_new());
  X509_REQ_set_version(req.get(), X509_REQ_VERSION_1);
  X509_NAME* name = X509_REQ_get_subject_name(req.get());
  if (!spec.organization.empty()) {
    X509_NAME_add_entry_by_NID(name, NID_organizationName, MBSTRING_UTF8,
                               reinterpret_cast<const unsigned char*>(spec.organization.data()),
                               static_cast<int>(spec.organization.size()), -1, 0);
  }
  for (const std::string& cn : spec.common_names) {
    X509_NAME_add_entry_by_NID(name, NID_commonName, MBSTRING_UTF8,
                               reinterpret_cast<const unsigned char*>(cn.data()),
                               static_cast<int>(cn.size()), -1, 0);
  }
  X509_REQ_set_pubkey(req.get(), const_cast<EVP_PKEY*>(key));
  STACK_OF(X509_EXTENSION)* exts = sk_X509_EXTENSION_new_null();
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, nullptr, nullptr, req.get(), nullptr, 0);
  if (!spec.san.empty()) {
    for (int i = 0; i < (spec.duplicate_san ? 2 : 1); ++i) {
      X509_EXTENSION* ext =
          X509V3_EXT_nconf_nid(nullptr, &ctx, NID_subject_alt_name, spec.san.c_str());
      EXPECT_NE(ext, nullptr) << "bad SAN spec " << spec.san;
      if (ext != nullptr) {
        sk_X509_EXTENSION_push(exts, ext);
      }
    }
  }
  if (spec.add_basic_constraints) {
    X509_EXTENSION* ext = X509V3_EXT_nconf_nid(nullptr, &ctx, NID_basic_constraints, "CA:FALSE");
    sk_X509_EXTENSION_push(exts, ext);
  }
  if (sk_X509_EXTENSION_num(exts) > 0) {
    X509_REQ_add_extensions(req.get(), exts);
  }
  sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
  EXPECT_GT(X509_REQ_sign(req.get(), const_cast<EVP_PKEY*>(key), TestDigest(key)), 0);
  return req;
}

// MakeRawCertificate builds a minimal self-signed certificate straight with OpenSSL (for
// tests of code that must not depend on the builder).
inline X509Ptr MakeRawCertificate(const EVP_PKEY* key, const std::string& cn, long serial = 1) {
  X509Ptr cert(X509_new());
  X509_set_version(cert.get(), X509_VERSION_3);
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), serial);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_NID(name, NID_commonName, MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>(cn.data()),
                             static_cast<int>(cn.size()), -1, 0);
  X509_set_issuer_name(cert.get(), name);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), 0);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 3600);
  X509_set_pubkey(cert.get(), const_cast<EVP_PKEY*>(key));
  EXPECT_GT(X509_sign(cert.get(), const_cast<EVP_PKEY*>(key), TestDigest(key)), 0);
  return cert;
}

inline std::string CsrPem(const X509_REQ* req) {
  auto pem = CsrToPem(req);
  EXPECT_TRUE(pem.ok()) << pem.status();
  return pem.ok() ? *pem : std::string();
}
inline std::string CsrDer(const X509_REQ* req) {
  auto der = CsrToDer(req);
  EXPECT_TRUE(der.ok()) << der.status();
  return der.ok() ? *der : std::string();
}

// TempDir makes a fresh directory under the test temp dir.
inline std::string MakeTempDir() {
  std::string tmpl = ::testing::TempDir() + "pki_test_XXXXXX";
  const char* dir = mkdtemp(tmpl.data());
  EXPECT_NE(dir, nullptr);
  return tmpl;
}

inline void WriteFile(const std::string& path, const std::string& data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << data;
  ASSERT_TRUE(out.good()) << path;
}

inline std::string ReadFile(const std::string& path) {
  std::string data;
  FILE* f = fopen(path.c_str(), "rb");
  if (f == nullptr) {
    ADD_FAILURE() << "cannot open " << path;
    return data;
  }
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), f)) > 0) {
    data.append(buf.data(), n);
  }
  fclose(f);
  return data;
}

struct CommandResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr
};

// Run runs a shell command and collects its output (stderr included).
inline CommandResult Run(const std::string& command) {
  CommandResult result;
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) {
    return result;
  }
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), pipe)) > 0) {
    result.output.append(buf.data(), n);
  }
  const int status = pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

inline bool HaveOpensslCli() { return Run("openssl version").exit_code == 0; }

}  // namespace fleetca::pki::testing
