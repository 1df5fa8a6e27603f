#include "pki/key_store.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <cstdlib>
#include <memory>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "pki/der.h"

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

absl::Status NoKey(const std::string& issuer_id) {
  return absl::NotFoundError(absl::StrCat("no signing key loaded for issuer ", issuer_id));
}

}  // namespace

struct SoftwareKeyStore::Slot {
  EvpPkeyPtr key;
  absl::Status usable;         // why this key cannot sign, if it cannot
  std::string algorithm_der;   // AlgorithmIdentifier of its signatures
  const EVP_MD* md = nullptr;  // digest (fetched once); null for Ed25519
  EvpPkeyCtxPtr sign_ctx;      // initialised for EVP_PKEY_sign with md; null for Ed25519
};

namespace {

// AlgorithmIdentifiers (RFC 5758 section 3.2, RFC 4055 section 5, RFC 8410 section 3):
// ECDSA and Ed25519 omit the parameters, RSA PKCS#1 v1.5 carries NULL.
std::string AlgorithmIdentifier(const char* oid, bool null_parameters) {
  std::string contents = der::Element(der::kOid, der::OidFromText(oid));
  if (null_parameters) der::AppendElement(&contents, der::kNull, "");
  return der::Element(der::kSequence, contents);
}

const EVP_MD* FetchDigest(const char* name) {
  // Fetched once for the process (explicit fetching avoids a lookup per signature).
  EVP_MD* md = EVP_MD_fetch(nullptr, name, nullptr);
  if (md == nullptr) std::abort();  // the default provider always has SHA-2
  return md;
}

}  // namespace

void SoftwareKeyStore::Add(const std::string& issuer_id, EvpPkeyPtr key) {
  auto slot = std::make_shared<Slot>();
  slot->key = std::move(key);
  const auto algorithm = KeyAlgorithmOf(slot->key.get());
  if (!algorithm.ok()) {
    slot->usable = absl::FailedPreconditionError(absl::StrCat(
        "signing key of issuer ", issuer_id, " is not usable: ", algorithm.status().message()));
  } else {
    // The digest matches the key's strength: SHA-384 for P-384 (RFC 5480 section 4),
    // SHA-256 for P-256 and RSA, none for Ed25519 (RFC 8410 section 6: it hashes itself).
    static const EVP_MD* const sha256 = FetchDigest("SHA256");
    static const EVP_MD* const sha384 = FetchDigest("SHA384");
    switch (*algorithm) {
      case KeyAlgorithm::kEcdsaP256:
        slot->algorithm_der = AlgorithmIdentifier("1.2.840.10045.4.3.2", false);
        slot->md = sha256;
        break;
      case KeyAlgorithm::kEcdsaP384:
        slot->algorithm_der = AlgorithmIdentifier("1.2.840.10045.4.3.3", false);
        slot->md = sha384;
        break;
      case KeyAlgorithm::kRsa2048:
      case KeyAlgorithm::kRsa3072:
      case KeyAlgorithm::kRsa4096:
        slot->algorithm_der = AlgorithmIdentifier("1.2.840.113549.1.1.11", true);
        slot->md = sha256;
        break;
      case KeyAlgorithm::kEd25519:
        slot->algorithm_der = AlgorithmIdentifier("1.3.101.112", false);
        break;
    }
    if (slot->md != nullptr) {
      slot->sign_ctx.reset(EVP_PKEY_CTX_new_from_pkey(nullptr, slot->key.get(), nullptr));
      if (slot->sign_ctx == nullptr || EVP_PKEY_sign_init(slot->sign_ctx.get()) <= 0 ||
          EVP_PKEY_CTX_set_signature_md(slot->sign_ctx.get(), slot->md) <= 0) {
        slot->usable = OpenSslError("EVP_PKEY_sign_init");
        slot->sign_ctx.reset();
      }
    }
  }
  std::shared_ptr<const Slot> previous;
  {
    absl::MutexLock lock(&mu_);
    std::shared_ptr<const Slot>& entry = slots_[issuer_id];
    previous = std::move(entry);
    entry = std::move(slot);
  }
  // `previous` is freed here, outside the lock (other signers may still hold it).
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
  std::shared_ptr<const Slot> previous;
  {
    absl::MutexLock lock(&mu_);
    auto it = slots_.find(issuer_id);
    if (it == slots_.end()) {
      return;
    }
    previous = std::move(it->second);
    slots_.erase(it);
  }
}

std::shared_ptr<const SoftwareKeyStore::Slot> SoftwareKeyStore::Find(const std::string& issuer_id) {
  absl::MutexLock lock(&mu_);
  auto it = slots_.find(issuer_id);
  return it == slots_.end() ? nullptr : it->second;
}

absl::StatusOr<std::shared_ptr<const SoftwareKeyStore::Slot>> SoftwareKeyStore::Signer(
    const std::string& issuer_id) {
  std::shared_ptr<const Slot> slot = Find(issuer_id);
  if (slot == nullptr || slot->key == nullptr) {
    return NoKey(issuer_id);
  }
  if (!slot->usable.ok()) {
    return slot->usable;
  }
  return slot;
}

bool SoftwareKeyStore::HasKey(const std::string& issuer_id) {
  std::shared_ptr<const Slot> slot = Find(issuer_id);
  return slot != nullptr && slot->key != nullptr;
}

absl::StatusOr<std::string> SoftwareKeyStore::SignatureAlgorithm(const std::string& issuer_id) {
  ASSIGN_OR_RETURN(std::shared_ptr<const Slot> slot, Signer(issuer_id));
  return slot->algorithm_der;
}

absl::StatusOr<std::string> SoftwareKeyStore::Sign(const std::string& issuer_id,
                                                   absl::string_view algorithm,
                                                   absl::string_view data) {
  ASSIGN_OR_RETURN(std::shared_ptr<const Slot> slot, Signer(issuer_id));
  if (algorithm != slot->algorithm_der) {
    return absl::AbortedError(absl::StrCat("the signing key of issuer ", issuer_id,
                                           " changed while signing; retry"));
  }
  std::string signature(static_cast<size_t>(EVP_PKEY_get_size(slot->key.get())), '\0');
  size_t length = signature.size();
  const auto* in = reinterpret_cast<const unsigned char*>(data.data());
  auto* out = reinterpret_cast<unsigned char*>(signature.data());
  if (slot->md == nullptr) {
    // Ed25519 signs the message itself (PureEdDSA): a one-shot DigestSign.
    EvpMdCtxPtr ctx(EVP_MD_CTX_new());
    if (ctx == nullptr ||
        EVP_DigestSignInit_ex(ctx.get(), nullptr, nullptr, nullptr, nullptr, slot->key.get(),
                              nullptr) != 1 ||
        EVP_DigestSign(ctx.get(), out, &length, in, data.size()) != 1) {
      return OpenSslError("EVP_DigestSign");
    }
  } else {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int digest_length = 0;
    if (EVP_Digest(in, data.size(), digest, &digest_length, slot->md, nullptr) != 1) {
      return OpenSslError("EVP_Digest");
    }
    EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_dup(slot->sign_ctx.get()));
    if (ctx == nullptr || EVP_PKEY_sign(ctx.get(), out, &length, digest, digest_length) != 1) {
      return OpenSslError("EVP_PKEY_sign");
    }
  }
  signature.resize(length);
  return signature;
}

// Each Sign* takes a reference to the slot under the lock and signs outside it: signing is
// the slow part, and many gRPC threads sign with the same CA key at once.
template <typename T>
absl::Status SoftwareKeyStore::SignWith(const std::string& issuer_id, T* object,
                                        int (*sign)(T*, EVP_PKEY*, const EVP_MD*),
                                        const char* what) {
  if (object == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("nothing to sign (", what, ")"));
  }
  ASSIGN_OR_RETURN(std::shared_ptr<const Slot> slot, Signer(issuer_id));
  if (sign(object, slot->key.get(), slot->md) <= 0) {
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
  std::shared_ptr<const Slot> slot = Find(issuer_id);
  if (slot == nullptr || slot->key == nullptr) {
    return absl::NotFoundError(absl::StrCat("no key loaded for issuer \"", issuer_id, "\""));
  }
  if (X509_check_private_key(certificate, slot->key.get()) != 1) {
    ClearOpenSslErrors();
    return absl::FailedPreconditionError(absl::StrCat(
        "the key stored for issuer \"", issuer_id, "\" does not match its certificate"));
  }
  return absl::OkStatus();
}

}  // namespace fleetca::pki
