#pragma once

// Key algorithms fleetca supports, key generation and private-key (de)serialization.
// Private keys are secrets: they leave this library only encrypted (kek.h) or inside a
// KeyStore; never log them.

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "pki/openssl_util.h"

namespace fleetca::pki {

enum class KeyAlgorithm { kEcdsaP256, kEcdsaP384, kRsa2048, kRsa3072, kRsa4096, kEd25519 };

// KeyAlgorithmName: the database and config spelling: "ecdsa-p256", "ecdsa-p384",
// "rsa-2048", "rsa-3072", "rsa-4096", "ed25519".
const char* KeyAlgorithmName(KeyAlgorithm algorithm);
// ParseKeyAlgorithmName is the inverse; INVALID_ARGUMENT for anything else.
absl::StatusOr<KeyAlgorithm> ParseKeyAlgorithmName(absl::string_view name);

// KeyAlgorithmOf classifies a public key. Allowed: RSA with a modulus of 2048, 3072 or 4096
// bits (other sizes >= 2048 are classified as the next smaller of these three), EC P-256 and
// P-384, Ed25519. INVALID_ARGUMENT naming the reason otherwise ("RSA key of 1024 bits is
// too weak: at least 2048", "EC curve secp256k1 is not supported: P-256 or P-384", "DSA keys
// are not supported", ...).
absl::StatusOr<KeyAlgorithm> KeyAlgorithmOf(const EVP_PKEY* key);

// GenerateKey creates a new private key.
absl::StatusOr<EvpPkeyPtr> GenerateKey(KeyAlgorithm algorithm);

// PrivateKeyToDer encodes a private key as unencrypted PKCS#8 DER (to be wrapped at once).
absl::StatusOr<std::string> PrivateKeyToDer(const EVP_PKEY* key);
// PrivateKeyFromDer decodes PKCS#8 DER.
absl::StatusOr<EvpPkeyPtr> PrivateKeyFromDer(absl::string_view der);
// PrivateKeyFromPem decodes a PEM private key (PKCS#8, traditional RSA/EC), encrypted when
// password is not empty. INVALID_ARGUMENT when it cannot (wrong password included).
absl::StatusOr<EvpPkeyPtr> PrivateKeyFromPem(absl::string_view pem, absl::string_view password);

// PublicKeyToDer encodes the public half of a key as a DER SubjectPublicKeyInfo.
absl::StatusOr<std::string> PublicKeyToDer(const EVP_PKEY* key);

// PublicKeysMatch reports whether two keys have the same public part.
bool PublicKeysMatch(const EVP_PKEY* a, const EVP_PKEY* b);

}  // namespace fleetca::pki
