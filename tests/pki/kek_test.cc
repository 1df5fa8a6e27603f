#include "pki/kek.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace fleetca::pki {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

constexpr size_t kOverhead = 4 + 12 + 16;  // "fkw1" + nonce + tag

Kek MustGenerate(const std::string& id) {
  auto kek = Kek::Generate(id);
  EXPECT_TRUE(kek.ok()) << kek.status();
  return std::move(*kek);
}

TEST(KekTest, SerializeParseRoundTrip) {
  const Kek kek = MustGenerate("kek-2026.01_a");
  const std::string line = kek.Serialize();
  EXPECT_THAT(line, StartsWith("fleetca-kek-v1:kek-2026.01_a:"));
  std::string key;
  ASSERT_TRUE(absl::Base64Unescape(line.substr(line.rfind(':') + 1), &key));
  EXPECT_EQ(key.size(), 32u);

  // Surrounding whitespace (a trailing newline in a file) is ignored.
  auto parsed = Kek::Parse(absl::StrCat("  ", line, "\n"));
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->id(), "kek-2026.01_a");
  EXPECT_EQ(parsed->Serialize(), line);

  // Same key: what one wraps the other unwraps.
  auto wrapped = kek.Wrap("secret", "issuer-1");
  ASSERT_TRUE(wrapped.ok());
  auto plain = parsed->Unwrap(*wrapped, "issuer-1");
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_EQ(*plain, "secret");
}

TEST(KekTest, GeneratedKeysDiffer) {
  EXPECT_NE(MustGenerate("a").Serialize().substr(17), MustGenerate("a").Serialize().substr(17));
}

TEST(KekTest, GenerateRejectsBadIds) {
  for (const std::string& id : {std::string(), std::string(65, 'a'), std::string("a:b"),
                                std::string("a b"), std::string("caf\xc3\xa9")}) {
    EXPECT_EQ(Kek::Generate(id).status().code(), absl::StatusCode::kInvalidArgument) << id;
  }
  EXPECT_TRUE(Kek::Generate(std::string(64, 'a')).ok());
}

TEST(KekTest, ParseRejectsMalformedLinesWithoutEchoingTheKey) {
  const std::string b64 = absl::Base64Escape(std::string(32, '\x5a'));
  const std::string b64_31 = absl::Base64Escape(std::string(31, '\x5a'));
  const std::string b64_33 = absl::Base64Escape(std::string(33, '\x5a'));
  struct Case {
    const char* name;
    std::string text;
    const char* why;
  };
  const Case cases[] = {
      {"empty", "", "not a fleetca KEK (expected fleetca-kek-v1:<id>:<base64>)"},
      {"bare_base64", b64, "not a fleetca KEK"},
      {"wrong_version", "fleetca-kek-v2:k1:" + b64, "not a fleetca KEK"},
      {"no_id_separator", "fleetca-kek-v1:" + b64, "not a fleetca KEK"},
      {"empty_id", "fleetca-kek-v1::" + b64, "bad key id"},
      {"id_with_space", "fleetca-kek-v1:k 1:" + b64, "bad key id"},
      {"id_too_long", "fleetca-kek-v1:" + std::string(65, 'k') + ":" + b64, "bad key id"},
      {"empty_key", "fleetca-kek-v1:k1:", "base64"},
      {"not_base64", "fleetca-kek-v1:k1:" + b64.substr(0, 20) + "!!" + b64.substr(22), "base64"},
      {"extra_field", "fleetca-kek-v1:k1:" + b64 + ":x", "base64"},
      {"short_key", "fleetca-kek-v1:k1:" + b64_31, "key must be 32 bytes"},
      {"long_key", "fleetca-kek-v1:k1:" + b64_33, "key must be 32 bytes"},
      {"inner_space", "fleetca-kek-v1:k1:" + b64.substr(0, 10) + " " + b64.substr(10), "base64"},
  };
  for (const auto& c : cases) {
    auto kek = Kek::Parse(c.text);
    ASSERT_FALSE(kek.ok()) << c.name;
    EXPECT_EQ(kek.status().code(), absl::StatusCode::kInvalidArgument) << c.name;
    const std::string message(kek.status().message());
    EXPECT_THAT(message, HasSubstr(c.why)) << c.name << ": " << message;
    // No part of the secret appears in the message.
    EXPECT_THAT(message, Not(HasSubstr(b64.substr(0, 8)))) << c.name;
    EXPECT_THAT(message, Not(HasSubstr(b64_31.substr(0, 8)))) << c.name;
  }
}

TEST(KekTest, WrapFormat) {
  const Kek kek = MustGenerate("k1");
  const std::string plaintext(121, 'p');
  auto a = kek.Wrap(plaintext, "issuer-1");
  auto b = kek.Wrap(plaintext, "issuer-1");
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_THAT(*a, StartsWith("fkw1"));
  EXPECT_EQ(a->size(), kOverhead + plaintext.size());
  EXPECT_NE(*a, *b) << "each wrap uses a fresh nonce";
  EXPECT_NE(a->substr(4, 12), b->substr(4, 12));
  EXPECT_EQ(a->find(plaintext.substr(0, 16)), std::string::npos) << "ciphertext leaks plaintext";
}

TEST(KekTest, WrapUnwrapSizes) {
  const Kek kek = MustGenerate("k1");
  for (const size_t size : {0, 1, 15, 16, 17, 1200, 5000}) {
    for (const char* aad : {"", "issuer-1"}) {
      const std::string plaintext(size, static_cast<char>('a' + size % 26));
      auto wrapped = kek.Wrap(plaintext, aad);
      ASSERT_TRUE(wrapped.ok()) << size;
      auto plain = kek.Unwrap(*wrapped, aad);
      ASSERT_TRUE(plain.ok()) << size << ": " << plain.status();
      EXPECT_EQ(*plain, plaintext);
    }
  }
}

TEST(KekTest, UnwrapRefusesAnythingThatDoesNotAuthenticate) {
  const Kek kek = MustGenerate("k1");
  const Kek other_key_same_id = MustGenerate("k1");
  const std::string plaintext = "-----pkcs8 bytes-----";
  const std::string wrapped = *kek.Wrap(plaintext, "issuer-1");
  auto flip = [&](size_t pos) {
    std::string w = wrapped;
    w[pos] = static_cast<char>(w[pos] ^ 0x01);
    return w;
  };
  struct Case {
    const char* name;
    const Kek* kek;
    std::string wrapped;
    std::string aad;
    const char* why;
  };
  const Case cases[] = {
      {"wrong_kek", &other_key_same_id, wrapped, "issuer-1",
       "wrapped key does not authenticate under KEK k1"},
      {"other_aad", &kek, wrapped, "issuer-2", "does not authenticate"},
      {"no_aad", &kek, wrapped, "", "does not authenticate"},
      {"altered_nonce", &kek, flip(4), "issuer-1", "does not authenticate"},
      {"altered_ciphertext", &kek, flip(4 + 12 + 3), "issuer-1", "does not authenticate"},
      {"altered_tag", &kek, flip(wrapped.size() - 1), "issuer-1", "does not authenticate"},
      {"truncated_tag", &kek, wrapped.substr(0, wrapped.size() - 1), "issuer-1",
       "does not authenticate"},
      {"extended", &kek, wrapped + "x", "issuer-1", "does not authenticate"},
      {"bad_magic", &kek, "fkw2" + wrapped.substr(4), "issuer-1", "fkw1"},
      {"too_short", &kek, wrapped.substr(0, kOverhead - 1), "issuer-1", "fkw1"},
      {"empty", &kek, "", "issuer-1", "fkw1"},
  };
  for (const auto& c : cases) {
    auto plain = c.kek->Unwrap(c.wrapped, c.aad);
    ASSERT_FALSE(plain.ok()) << c.name;
    EXPECT_EQ(plain.status().code(), absl::StatusCode::kFailedPrecondition) << c.name;
    EXPECT_THAT(std::string(plain.status().message()), HasSubstr(c.why)) << c.name;
    EXPECT_THAT(std::string(plain.status().message()), Not(HasSubstr("pkcs8"))) << c.name;
  }
}

TEST(KekTest, CopiesAndMovesKeepTheKey) {
  const Kek original = MustGenerate("k1");
  const std::string wrapped = *original.Wrap("x", "aad");
  Kek copy = original;
  EXPECT_EQ(*copy.Unwrap(wrapped, "aad"), "x");
  Kek moved = std::move(copy);
  EXPECT_EQ(*moved.Unwrap(wrapped, "aad"), "x");
  Kek assigned = MustGenerate("k2");
  assigned = original;
  EXPECT_EQ(assigned.id(), "k1");
  EXPECT_EQ(*assigned.Unwrap(wrapped, "aad"), "x");
  Kek move_assigned = MustGenerate("k3");
  move_assigned = std::move(assigned);
  EXPECT_EQ(move_assigned.id(), "k1");
  EXPECT_EQ(*move_assigned.Unwrap(wrapped, "aad"), "x");
}

TEST(KeyRingTest, CreateRejectsEmptyAndRepeatedIds) {
  EXPECT_EQ(KeyRing::Create({}).status().code(), absl::StatusCode::kInvalidArgument);
  std::vector<Kek> repeated = {MustGenerate("k1"), MustGenerate("k2"), MustGenerate("k1")};
  auto ring = KeyRing::Create(std::move(repeated));
  EXPECT_EQ(ring.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(ring.status().message()), HasSubstr("k1"));
}

TEST(KeyRingTest, RotationUnwrapsOldAndWrapsNew) {
  const Kek old_kek = MustGenerate("2025");
  const std::string old_wrapped = *old_kek.Wrap("ca key", "issuer-1");

  auto ring = KeyRing::Create({MustGenerate("2026"), old_kek});
  ASSERT_TRUE(ring.ok()) << ring.status();
  EXPECT_EQ(ring->current().id(), "2026");
  ASSERT_NE(ring->Find("2025"), nullptr);
  EXPECT_EQ(ring->Find("2024"), nullptr);

  // Re-wrap: unwrap under the old KEK, wrap under the current one.
  auto plain = ring->Unwrap("2025", old_wrapped, "issuer-1");
  ASSERT_TRUE(plain.ok()) << plain.status();
  const std::string new_wrapped = *ring->current().Wrap(*plain, "issuer-1");
  EXPECT_EQ(*ring->Unwrap("2026", new_wrapped, "issuer-1"), "ca key");

  // Naming the wrong KEK or one the ring lacks.
  auto wrong = ring->Unwrap("2026", old_wrapped, "issuer-1");
  EXPECT_EQ(wrong.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(wrong.status().message()), HasSubstr("under KEK 2026"));
  auto missing = ring->Unwrap("2024", old_wrapped, "issuer-1");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr("KEK 2024 is not configured"));
}

}  // namespace
}  // namespace fleetca::pki
