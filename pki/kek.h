#pragma once

// Key-encryption keys: CA private keys are stored only wrapped with AES-256-GCM under a KEK.
//
// A KEK is written as one line, in a file or an environment variable:
//   fleetca-kek-v1:<key id>:<base64 of 32 random bytes>
// The key id ([A-Za-z0-9._-], 1 to 64) is stored beside every wrapped key, so a KeyRing
// holding the new KEK and the old ones can unwrap everything while keys are re-wrapped
// under the new one.
//
// Wrapped format: "fkw1" || 12-byte random nonce || ciphertext || 16-byte GCM tag, with the
// additional authenticated data chosen by the caller (the issuer id), so a wrapped key
// cannot be moved to another issuer's row undetected.

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace fleetca::pki {

class Kek {
 public:
  // Parse reads the one-line form (surrounding whitespace ignored). INVALID_ARGUMENT
  // without echoing the secret: "not a fleetca KEK (expected fleetca-kek-v1:<id>:<base64>)",
  // "key must be 32 bytes", "bad key id".
  static absl::StatusOr<Kek> Parse(absl::string_view text);
  // Generate makes a new random KEK.
  static absl::StatusOr<Kek> Generate(absl::string_view key_id);

  const std::string& id() const { return id_; }
  // Serialize returns the one-line form (a secret: write it with mode 0600).
  std::string Serialize() const;

  // Wrap encrypts plaintext, authenticating aad too.
  absl::StatusOr<std::string> Wrap(absl::string_view plaintext, absl::string_view aad) const;
  // Unwrap decrypts; FAILED_PRECONDITION "wrapped key does not authenticate under KEK <id>"
  // when the KEK is wrong, the data was altered or aad differs.
  absl::StatusOr<std::string> Unwrap(absl::string_view wrapped, absl::string_view aad) const;

  ~Kek();  // wipes the key (OPENSSL_cleanse)
  Kek(const Kek&);
  Kek& operator=(const Kek&);
  Kek(Kek&&) noexcept;
  Kek& operator=(Kek&&) noexcept;

 private:
  Kek(std::string id, std::string key) : id_(std::move(id)), key_(std::move(key)) {}
  std::string id_;
  std::string key_;  // 32 bytes
};

// KeyRing: the current KEK (wraps) and older ones (unwrap only).
class KeyRing {
 public:
  // The first KEK is the current one. INVALID_ARGUMENT when empty or ids repeat.
  static absl::StatusOr<KeyRing> Create(std::vector<Kek> keks);
  const Kek& current() const { return keks_.front(); }
  // Find returns the KEK with this id, or nullptr.
  const Kek* Find(absl::string_view id) const;
  // Unwrap with the KEK named kek_id. FAILED_PRECONDITION "KEK <id> is not configured"
  // when it is missing, or Kek::Unwrap's error.
  absl::StatusOr<std::string> Unwrap(absl::string_view kek_id, absl::string_view wrapped,
                                     absl::string_view aad) const;

 private:
  explicit KeyRing(std::vector<Kek> keks) : keks_(std::move(keks)) {}
  std::vector<Kek> keks_;
};

}  // namespace fleetca::pki
