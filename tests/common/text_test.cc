#include "common/text.h"

#include <gtest/gtest.h>

#include <string>

namespace fleetca {
namespace {

TEST(TextTest, Utf8) {
  struct Case {
    const char* name;
    std::string text;
    bool valid;
  };
  const Case cases[] = {
      {"ascii", "hello", true},
      {"two_byte", "caf\xc3\xa9", true},
      {"four_byte", "\xf0\x9f\x98\x80", true},
      {"lone_continuation", "\x80", false},
      {"overlong_slash", "\xc0\xaf", false},
      {"overlong_three", "\xe0\x80\xaf", false},
      {"surrogate", "\xed\xa0\x80", false},
      {"above_max", "\xf4\x90\x80\x80", false},
      {"truncated", "\xe2\x82", false},
      {"latin1", "caf\xe9", false},
  };
  for (const auto& c : cases) EXPECT_EQ(IsValidUtf8(c.text), c.valid) << c.name;
}

TEST(TextTest, ControlCharacters) {
  EXPECT_FALSE(HasControlCharacters("plain text, with punctuation!"));
  EXPECT_TRUE(HasControlCharacters(std::string("nul\0inside", 10)));
  EXPECT_TRUE(HasControlCharacters("tab\there"));
  EXPECT_TRUE(HasControlCharacters("del\x7f"));
}

}  // namespace
}  // namespace fleetca
