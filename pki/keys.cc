#include "pki/keys.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <climits>
#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"

namespace fleetca::pki {
namespace {

using Pkcs8Ptr = std::unique_ptr<PKCS8_PRIV_KEY_INFO,
                                 OpenSslDeleter<PKCS8_PRIV_KEY_INFO, PKCS8_PRIV_KEY_INFO_free>>;

struct AlgorithmEntry {
  KeyAlgorithm algorithm;
  const char* name;
};
constexpr AlgorithmEntry kAlgorithms[] = {
    {KeyAlgorithm::kEcdsaP256, "ecdsa-p256"}, {KeyAlgorithm::kEcdsaP384, "ecdsa-p384"},
    {KeyAlgorithm::kRsa2048, "rsa-2048"},     {KeyAlgorithm::kRsa3072, "rsa-3072"},
    {KeyAlgorithm::kRsa4096, "rsa-4096"},     {KeyAlgorithm::kEd25519, "ed25519"},
};

// PasswordCallback hands OpenSSL the caller's password, and refuses (instead of prompting
// on the terminal, OpenSSL's default) when there is none.
int PasswordCallback(char* buf, int size, int /*rwflag*/, void* u) {
  const auto* password = static_cast<const absl::string_view*>(u);
  if (password == nullptr || password->empty() || size <= 0 ||
      password->size() > static_cast<size_t>(size)) {
    return 0;
  }
  std::memcpy(buf, password->data(), password->size());
  return static_cast<int>(password->size());
}

}  // namespace

const char* KeyAlgorithmName(KeyAlgorithm algorithm) {
  for (const auto& entry : kAlgorithms) {
    if (entry.algorithm == algorithm) {
      return entry.name;
    }
  }
  return "unknown";
}

absl::StatusOr<KeyAlgorithm> ParseKeyAlgorithmName(absl::string_view name) {
  for (const auto& entry : kAlgorithms) {
    if (name == entry.name) {
      return entry.algorithm;
    }
  }
  return absl::InvalidArgumentError(
      "unknown key algorithm: expected one of ecdsa-p256, ecdsa-p384, rsa-2048, rsa-3072, "
      "rsa-4096, ed25519");
}

absl::StatusOr<KeyAlgorithm> KeyAlgorithmOf(const EVP_PKEY* key) {
  if (key == nullptr) {
    return absl::InvalidArgumentError("no public key");
  }
  switch (EVP_PKEY_get_base_id(key)) {
    case EVP_PKEY_RSA: {
      const int bits = EVP_PKEY_get_bits(key);
      if (bits < 2048) {
        return absl::InvalidArgumentError(
            absl::StrCat("RSA key of ", bits, " bits is too weak: at least 2048"));
      }
      if (bits >= 4096) {
        return KeyAlgorithm::kRsa4096;
      }
      if (bits >= 3072) {
        return KeyAlgorithm::kRsa3072;
      }
      return KeyAlgorithm::kRsa2048;
    }
    case EVP_PKEY_EC: {
      char group[80] = {0};
      size_t len = 0;
      if (EVP_PKEY_get_group_name(key, group, sizeof(group), &len) != 1) {
        ClearOpenSslErrors();
        return absl::InvalidArgumentError(
            "EC key with explicit or unnamed curve parameters is not supported: P-256 or P-384");
      }
      const std::string curve(group, len);
      if (curve == "prime256v1" || curve == "P-256" || curve == "secp256r1") {
        return KeyAlgorithm::kEcdsaP256;
      }
      if (curve == "secp384r1" || curve == "P-384") {
        return KeyAlgorithm::kEcdsaP384;
      }
      return absl::InvalidArgumentError(
          absl::StrCat("EC curve ", curve, " is not supported: P-256 or P-384"));
    }
    case EVP_PKEY_ED25519:
      return KeyAlgorithm::kEd25519;
    case EVP_PKEY_RSA_PSS:
      return absl::InvalidArgumentError(
          "RSA-PSS keys are not supported: use an rsaEncryption key of at least 2048 bits");
    case EVP_PKEY_DSA:
      return absl::InvalidArgumentError("DSA keys are not supported");
    case EVP_PKEY_ED448:
      return absl::InvalidArgumentError("Ed448 keys are not supported: use Ed25519");
    default: {
      const char* type = EVP_PKEY_get0_type_name(key);
      return absl::InvalidArgumentError(
          absl::StrCat("keys of type ", type != nullptr ? type : "unknown",
                       " are not supported: RSA, ECDSA P-256/P-384 or Ed25519"));
    }
  }
}

absl::StatusOr<EvpPkeyPtr> GenerateKey(KeyAlgorithm algorithm) {
  EVP_PKEY* key = nullptr;
  switch (algorithm) {
    case KeyAlgorithm::kEcdsaP256:
      key = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
      break;
    case KeyAlgorithm::kEcdsaP384:
      key = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-384");
      break;
    case KeyAlgorithm::kRsa2048:
      key = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<size_t>(2048));
      break;
    case KeyAlgorithm::kRsa3072:
      key = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<size_t>(3072));
      break;
    case KeyAlgorithm::kRsa4096:
      key = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<size_t>(4096));
      break;
    case KeyAlgorithm::kEd25519:
      key = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
      break;
  }
  if (key == nullptr) {
    return OpenSslError(absl::StrCat("EVP_PKEY_Q_keygen(", KeyAlgorithmName(algorithm), ")"));
  }
  return EvpPkeyPtr(key);
}

absl::StatusOr<std::string> PublicKeyToDer(const EVP_PKEY* key) {
  if (key == nullptr) {
    return absl::InvalidArgumentError("no public key");
  }
  unsigned char* encoded = nullptr;
  const int len = i2d_PUBKEY(key, &encoded);
  if (len <= 0 || encoded == nullptr) {
    return OpenSslError("i2d_PUBKEY");
  }
  std::string der(reinterpret_cast<const char*>(encoded), static_cast<size_t>(len));
  OPENSSL_free(encoded);
  return der;
}

absl::StatusOr<std::string> PrivateKeyToDer(const EVP_PKEY* key) {
  if (key == nullptr) {
    return absl::InvalidArgumentError("no private key");
  }
  Pkcs8Ptr p8(EVP_PKEY2PKCS8(key));
  if (p8 == nullptr) {
    return OpenSslError("EVP_PKEY2PKCS8");
  }
  const int len = i2d_PKCS8_PRIV_KEY_INFO(p8.get(), nullptr);
  if (len <= 0) {
    return OpenSslError("i2d_PKCS8_PRIV_KEY_INFO");
  }
  // Encode straight into the returned buffer: no other copy of the plaintext is made here
  // (PKCS8_PRIV_KEY_INFO_free clears its own copy).
  std::string der(static_cast<size_t>(len), '\0');
  unsigned char* p = reinterpret_cast<unsigned char*>(der.data());
  if (i2d_PKCS8_PRIV_KEY_INFO(p8.get(), &p) != len) {
    OPENSSL_cleanse(der.data(), der.size());
    return OpenSslError("i2d_PKCS8_PRIV_KEY_INFO");
  }
  return der;
}

absl::StatusOr<EvpPkeyPtr> PrivateKeyFromDer(absl::string_view der) {
  if (der.empty() || der.size() > static_cast<size_t>(LONG_MAX)) {
    return absl::InvalidArgumentError("not a PKCS#8 private key");
  }
  const unsigned char* p = reinterpret_cast<const unsigned char*>(der.data());
  const unsigned char* const end = p + der.size();
  Pkcs8Ptr p8(d2i_PKCS8_PRIV_KEY_INFO(nullptr, &p, static_cast<long>(der.size())));
  if (p8 == nullptr || p != end) {
    ClearOpenSslErrors();
    return absl::InvalidArgumentError("not a PKCS#8 private key");
  }
  EvpPkeyPtr key(EVP_PKCS82PKEY(p8.get()));
  if (key == nullptr) {
    ClearOpenSslErrors();
    return absl::InvalidArgumentError("PKCS#8 private key of an unsupported type");
  }
  return key;
}

absl::StatusOr<EvpPkeyPtr> PrivateKeyFromPem(absl::string_view pem, absl::string_view password) {
  if (pem.empty() || pem.size() > static_cast<size_t>(INT_MAX)) {
    return absl::InvalidArgumentError("not a PEM private key");
  }
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (bio == nullptr) {
    return OpenSslError("BIO_new_mem_buf");
  }
  absl::string_view pass = password;
  EvpPkeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, &PasswordCallback, &pass));
  if (key == nullptr) {
    ClearOpenSslErrors();
    return absl::InvalidArgumentError(
        password.empty() ? "not a PEM private key (or it is encrypted and no password was given)"
                         : "not a PEM private key, or the password is wrong");
  }
  return key;
}

bool PublicKeysMatch(const EVP_PKEY* a, const EVP_PKEY* b) {
  if (a == nullptr || b == nullptr) {
    return false;
  }
  const bool match = EVP_PKEY_eq(a, b) == 1;
  ClearOpenSslErrors();  // a type mismatch leaves an error behind
  return match;
}

}  // namespace fleetca::pki
