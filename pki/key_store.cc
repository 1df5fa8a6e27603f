#include "pki/key_store.h"

#include <openssl/crypto.h>

#include <string>
#include <utility>

#include "absl/strings/str_cat.h"

namespace fleetca::pki {
namespace {

// DerWiper clears a plaintext PKCS#8 buffer on every exit path.
struct DerWiper {
  std::string* der;
  ~DerWiper() {
    if (!der->empty()) {
      OPENSSL_cleanse(der->data(), der->size());
    }
    der->clear();
  }
};

// DigestFor picks the signature digest for a CA key: SHA-384 for P-384 (matching the
// curve's strength, RFC 5480 section 4), SHA-256 for P-256 and RSA, none for Ed25519
// (RFC 8410 section 6: Ed25519 hashes internally).
absl::StatusOr<const EVP_MD*> DigestFor(const std::string& issuer_id, const EVP_PKEY* key) {
  auto algorithm = KeyAlgorithmOf(key);
  if (!algorithm.ok()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "signing key of issuer ", issuer_id, " is not usable: ", algorithm.status().message()));
  }
  switch (*algorithm) {
    case KeyAlgorithm::kEcdsaP384:
      return EVP_sha384();
    case KeyAlgorithm::kEd25519:
      return static_cast<const EVP_MD*>(nullptr);
    case KeyAlgorithm::kEcdsaP256:
    case KeyAlgorithm::kRsa2048:
    case KeyAlgorithm::kRsa3072:
    case KeyAlgorithm::kRsa4096:
      break;
  }
  return EVP_sha256();
}

absl::Status NoKey(const std::string& issuer_id) {
  return absl::NotFoundError(absl::StrCat("no signing key loaded for issuer ", issuer_id));
}

}  // namespace

void SoftwareKeyStore::Add(const std::string& issuer_id, EvpPkeyPtr key) {
  EvpPkeyPtr previous;
  {
    absl::MutexLock lock(&mu_);
    EvpPkeyPtr& slot = keys_[issuer_id];
    previous = std::move(slot);
    slot = std::move(key);
  }
  // `previous` is freed here, outside the lock (other signers may still hold references).
}

absl::Status SoftwareKeyStore::AddWrapped(const std::string& issuer_id, absl::string_view kek_id,
                                          absl::string_view wrapped, const KeyRing& ring) {
  auto der = ring.Unwrap(kek_id, wrapped, issuer_id);
  if (!der.ok()) {
    return der.status();
  }
  DerWiper wiper{&*der};
  auto key = PrivateKeyFromDer(*der);
  if (!key.ok()) {
    // It authenticated, so this is what was wrapped: a programming error, not a wrong KEK.
    return absl::InternalError(
        absl::StrCat("wrapped key of issuer ", issuer_id, " is not a usable PKCS#8 key"));
  }
  Add(issuer_id, std::move(*key));
  return absl::OkStatus();
}

void SoftwareKeyStore::Remove(const std::string& issuer_id) {
  EvpPkeyPtr previous;
  {
    absl::MutexLock lock(&mu_);
    auto it = keys_.find(issuer_id);
    if (it == keys_.end()) {
      return;
    }
    previous = std::move(it->second);
    keys_.erase(it);
  }
}

EvpPkeyPtr SoftwareKeyStore::Key(const std::string& issuer_id) {
  absl::MutexLock lock(&mu_);
  auto it = keys_.find(issuer_id);
  if (it == keys_.end() || it->second == nullptr) {
    return nullptr;
  }
  if (EVP_PKEY_up_ref(it->second.get()) != 1) {
    ClearOpenSslErrors();
    return nullptr;
  }
  return EvpPkeyPtr(it->second.get());
}

bool SoftwareKeyStore::HasKey(const std::string& issuer_id) {
  absl::MutexLock lock(&mu_);
  auto it = keys_.find(issuer_id);
  return it != keys_.end() && it->second != nullptr;
}

// Each Sign* takes a reference under the lock and signs outside it: signing is the slow
// part, and many gRPC threads sign with the same CA key at once.
template <typename T>
absl::Status SoftwareKeyStore::SignWith(const std::string& issuer_id, T* object,
                                        int (*sign)(T*, EVP_PKEY*, const EVP_MD*),
                                        const char* what) {
  if (object == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("nothing to sign (", what, ")"));
  }
  EvpPkeyPtr key = Key(issuer_id);
  if (key == nullptr) {
    return NoKey(issuer_id);
  }
  auto md = DigestFor(issuer_id, key.get());
  if (!md.ok()) {
    return md.status();
  }
  if (sign(object, key.get(), *md) <= 0) {
    return OpenSslError(what);
  }
  return absl::OkStatus();
}

absl::Status SoftwareKeyStore::SignCertificate(const std::string& issuer_id, X509* cert) {
  return SignWith(issuer_id, cert, X509_sign, "X509_sign");
}

absl::Status SoftwareKeyStore::SignCsr(const std::string& issuer_id, X509_REQ* req) {
  return SignWith(issuer_id, req, X509_REQ_sign, "X509_REQ_sign");
}

absl::Status SoftwareKeyStore::SignCrl(const std::string& issuer_id, X509_CRL* crl) {
  return SignWith(issuer_id, crl, X509_CRL_sign, "X509_CRL_sign");
}

absl::StatusOr<std::string> WrapPrivateKey(const EVP_PKEY* key, const std::string& issuer_id,
                                           const KeyRing& ring) {
  auto der = PrivateKeyToDer(key);
  if (!der.ok()) {
    return der.status();
  }
  DerWiper wiper{&*der};
  return ring.current().Wrap(*der, issuer_id);
}

absl::Status SoftwareKeyStore::CheckMatches(const std::string& issuer_id,
                                            const X509* certificate) {
  EvpPkeyPtr key = Key(issuer_id);
  if (key == nullptr) {
    return absl::NotFoundError(absl::StrCat("no key loaded for issuer \"", issuer_id, "\""));
  }
  if (X509_check_private_key(certificate, key.get()) != 1) {
    ClearOpenSslErrors();
    return absl::FailedPreconditionError(absl::StrCat(
        "the key stored for issuer \"", issuer_id, "\" does not match its certificate"));
  }
  return absl::OkStatus();
}

}  // namespace fleetca::pki
