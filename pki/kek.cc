#include "pki/kek.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <set>
#include <string>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "pki/openssl_util.h"

namespace fleetca::pki {
namespace {

constexpr absl::string_view kKekPrefix = "fleetca-kek-v1:";
constexpr absl::string_view kWrapMagic = "fkw1";
constexpr size_t kKeyBytes = 32;
constexpr size_t kNonceBytes = 12;
constexpr size_t kTagBytes = 16;

// Wipe clears a string that held a secret before its memory goes back to the allocator.
void Wipe(std::string& s) {
  if (!s.empty()) {
    OPENSSL_cleanse(s.data(), s.size());
  }
  s.clear();
}

// SecretString wipes its buffer on every exit path.
struct SecretString {
  std::string value;
  ~SecretString() { Wipe(value); }
};

bool IsValidKeyId(absl::string_view id) {
  if (id.empty() || id.size() > 64) {
    return false;
  }
  for (const char c : id) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-') {
      return false;
    }
  }
  return true;
}

const unsigned char* Bytes(absl::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

}  // namespace

absl::StatusOr<Kek> Kek::Parse(absl::string_view text) {
  // Messages name what is wrong and never include any part of the text: it is a secret.
  const absl::string_view line = absl::StripAsciiWhitespace(text);
  if (!absl::StartsWith(line, kKekPrefix)) {
    return absl::InvalidArgumentError("not a fleetca KEK (expected fleetca-kek-v1:<id>:<base64>)");
  }
  const absl::string_view rest = line.substr(kKekPrefix.size());
  const size_t colon = rest.find(':');
  if (colon == absl::string_view::npos) {
    return absl::InvalidArgumentError("not a fleetca KEK (expected fleetca-kek-v1:<id>:<base64>)");
  }
  const absl::string_view id = rest.substr(0, colon);
  const absl::string_view encoded = rest.substr(colon + 1);
  if (!IsValidKeyId(id)) {
    return absl::InvalidArgumentError("bad key id: 1 to 64 characters of [A-Za-z0-9._-]");
  }
  // Strictly the base64 alphabet: absl would skip embedded whitespace, which a one-line
  // secret never contains.
  const bool alphabet_ok = std::all_of(encoded.begin(), encoded.end(), [](char c) {
    return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '/' || c == '=';
  });
  SecretString key;
  if (encoded.empty() || !alphabet_ok || !absl::Base64Unescape(encoded, &key.value)) {
    return absl::InvalidArgumentError("key is not valid base64");
  }
  if (key.value.size() != kKeyBytes) {
    return absl::InvalidArgumentError("key must be 32 bytes");
  }
  return Kek(std::string(id), std::string(key.value));
}

absl::StatusOr<Kek> Kek::Generate(absl::string_view key_id) {
  if (!IsValidKeyId(key_id)) {
    return absl::InvalidArgumentError("bad key id: 1 to 64 characters of [A-Za-z0-9._-]");
  }
  std::string key(kKeyBytes, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(key.data()), static_cast<int>(key.size())) != 1) {
    Wipe(key);
    return OpenSslError("RAND_bytes");
  }
  return Kek(std::string(key_id), std::move(key));
}

std::string Kek::Serialize() const {
  SecretString encoded{absl::Base64Escape(key_)};
  return absl::StrCat(kKekPrefix, id_, ":", encoded.value);
}

absl::StatusOr<std::string> Kek::Wrap(absl::string_view plaintext, absl::string_view aad) const {
  if (plaintext.size() > static_cast<size_t>(INT_MAX) - 64 ||
      aad.size() > static_cast<size_t>(INT_MAX)) {
    return absl::InvalidArgumentError("data to wrap is too large");
  }
  // 1. Fresh random nonce: with a random 96-bit nonce per message, GCM stays safe for far
  //    more messages than a CA will ever wrap under one KEK (NIST SP 800-38D section 8.3).
  std::string out(kWrapMagic.size() + kNonceBytes + plaintext.size() + kTagBytes, '\0');
  std::memcpy(out.data(), kWrapMagic.data(), kWrapMagic.size());
  auto* nonce = reinterpret_cast<unsigned char*>(out.data() + kWrapMagic.size());
  if (RAND_bytes(nonce, static_cast<int>(kNonceBytes)) != 1) {
    return OpenSslError("RAND_bytes");
  }
  // 2. AES-256-GCM with the caller's aad.
  EvpCipherCtxPtr ctx(EVP_CIPHER_CTX_new());
  if (ctx == nullptr) {
    return OpenSslError("EVP_CIPHER_CTX_new");
  }
  if (EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, Bytes(key_), nonce) != 1) {
    return OpenSslError("EVP_EncryptInit_ex");
  }
  int len = 0;
  if (!aad.empty() &&
      EVP_EncryptUpdate(ctx.get(), nullptr, &len, Bytes(aad), static_cast<int>(aad.size())) != 1) {
    return OpenSslError("EVP_EncryptUpdate(aad)");
  }
  auto* ciphertext = nonce + kNonceBytes;
  int written = 0;
  if (!plaintext.empty()) {
    if (EVP_EncryptUpdate(ctx.get(), ciphertext, &len, Bytes(plaintext),
                          static_cast<int>(plaintext.size())) != 1) {
      return OpenSslError("EVP_EncryptUpdate");
    }
    written = len;
  }
  if (EVP_EncryptFinal_ex(ctx.get(), ciphertext + written, &len) != 1) {
    return OpenSslError("EVP_EncryptFinal_ex");
  }
  written += len;
  if (static_cast<size_t>(written) != plaintext.size()) {
    return absl::InternalError("AES-GCM produced an unexpected length");
  }
  // 3. Append the tag.
  if (EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_AEAD_GET_TAG, static_cast<int>(kTagBytes),
                          ciphertext + written) != 1) {
    return OpenSslError("EVP_CTRL_AEAD_GET_TAG");
  }
  return out;
}

absl::StatusOr<std::string> Kek::Unwrap(absl::string_view wrapped, absl::string_view aad) const {
  const absl::Status not_authentic = absl::FailedPreconditionError(
      absl::StrCat("wrapped key does not authenticate under KEK ", id_));
  if (wrapped.size() < kWrapMagic.size() + kNonceBytes + kTagBytes ||
      !absl::StartsWith(wrapped, kWrapMagic)) {
    return absl::FailedPreconditionError(
        absl::StrCat("wrapped key is not in the fkw1 format (KEK ", id_, ")"));
  }
  if (wrapped.size() > static_cast<size_t>(INT_MAX) || aad.size() > static_cast<size_t>(INT_MAX)) {
    return absl::InvalidArgumentError("wrapped key is too large");
  }
  const unsigned char* nonce = Bytes(wrapped) + kWrapMagic.size();
  const unsigned char* ciphertext = nonce + kNonceBytes;
  const size_t ciphertext_len = wrapped.size() - kWrapMagic.size() - kNonceBytes - kTagBytes;
  unsigned char tag[kTagBytes];
  std::memcpy(tag, ciphertext + ciphertext_len, kTagBytes);

  EvpCipherCtxPtr ctx(EVP_CIPHER_CTX_new());
  if (ctx == nullptr) {
    return OpenSslError("EVP_CIPHER_CTX_new");
  }
  if (EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, Bytes(key_), nonce) != 1) {
    return OpenSslError("EVP_DecryptInit_ex");
  }
  int len = 0;
  if (!aad.empty() &&
      EVP_DecryptUpdate(ctx.get(), nullptr, &len, Bytes(aad), static_cast<int>(aad.size())) != 1) {
    return OpenSslError("EVP_DecryptUpdate(aad)");
  }
  SecretString plaintext;
  plaintext.value.assign(ciphertext_len, '\0');
  auto* out = reinterpret_cast<unsigned char*>(plaintext.value.data());
  int written = 0;
  if (ciphertext_len > 0) {
    if (EVP_DecryptUpdate(ctx.get(), out, &len, ciphertext, static_cast<int>(ciphertext_len)) !=
        1) {
      return OpenSslError("EVP_DecryptUpdate");
    }
    written = len;
  }
  if (EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_AEAD_SET_TAG, static_cast<int>(kTagBytes), tag) !=
      1) {
    return OpenSslError("EVP_CTRL_AEAD_SET_TAG");
  }
  // The tag check happens here; on failure the (unauthenticated) plaintext is wiped by
  // SecretString and never returned.
  if (EVP_DecryptFinal_ex(ctx.get(), out + written, &len) != 1) {
    ClearOpenSslErrors();
    return not_authentic;
  }
  written += len;
  if (static_cast<size_t>(written) != ciphertext_len) {
    return absl::InternalError("AES-GCM produced an unexpected length");
  }
  std::string result = std::move(plaintext.value);
  return result;
}

Kek::~Kek() { Wipe(key_); }

Kek::Kek(const Kek& other) : id_(other.id_), key_(other.key_) {}

Kek& Kek::operator=(const Kek& other) {
  if (this != &other) {
    Wipe(key_);
    id_ = other.id_;
    key_ = other.key_;
  }
  return *this;
}

Kek::Kek(Kek&& other) noexcept : id_(std::move(other.id_)), key_(std::move(other.key_)) {
  Wipe(other.key_);
}

Kek& Kek::operator=(Kek&& other) noexcept {
  if (this != &other) {
    Wipe(key_);
    id_ = std::move(other.id_);
    key_ = std::move(other.key_);
    Wipe(other.key_);
  }
  return *this;
}

absl::StatusOr<KeyRing> KeyRing::Create(std::vector<Kek> keks) {
  if (keks.empty()) {
    return absl::InvalidArgumentError("a key ring needs at least one KEK");
  }
  std::set<std::string> ids;
  for (const Kek& kek : keks) {
    if (!ids.insert(kek.id()).second) {
      return absl::InvalidArgumentError(absl::StrCat("KEK id ", kek.id(), " appears twice"));
    }
  }
  return KeyRing(std::move(keks));
}

const Kek* KeyRing::Find(absl::string_view id) const {
  for (const Kek& kek : keks_) {
    if (kek.id() == id) {
      return &kek;
    }
  }
  return nullptr;
}

absl::StatusOr<std::string> KeyRing::Unwrap(absl::string_view kek_id, absl::string_view wrapped,
                                            absl::string_view aad) const {
  const Kek* kek = Find(kek_id);
  if (kek == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat("KEK ", kek_id, " is not configured"));
  }
  return kek->Unwrap(wrapped, aad);
}

}  // namespace fleetca::pki
