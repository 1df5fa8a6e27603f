#include "server/registry/validation.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

namespace fleetca::registry {
namespace {

using ::testing::HasSubstr;

TEST(ValidateCommIdTest, Table) {
  struct Case {
    const char* name;
    std::string comm_id;
    bool ok;
    const char* why;  // expected part of the message when not ok
  };
  const Case cases[] = {
      {"imei", "356938035643809", true, ""},
      {"serial_with_punctuation", "SN-2026.A:01", true, ""},
      {"max_length", std::string(64, 'a'), true, ""},
      {"case_sensitive", "AbC", true, ""},
      {"empty", "", false, "is required"},
      {"too_long", std::string(65, 'a'), false, "65 bytes"},
      {"slash", "a/b", false, "topic separator or wildcard"},
      {"plus", "dev+1", false, "topic separator or wildcard"},
      {"hash", "dev#1", false, "topic separator or wildcard"},
      {"space", "dev 1", false, "a space"},
      {"nul", std::string("dev\0x", 5), false, "NUL"},
      {"non_ascii", "d\xc3\xa9v", false, "non-ASCII"},
      {"underscore", "dev_1", false, "outside"},
      {"sql", "x';DROP TABLE devices;--", false, "outside"},
      {"newline", "dev\n", false, "control character"},
  };
  for (const auto& c : cases) {
    const absl::Status st = ValidateCommId("device.comm_id", c.comm_id);
    EXPECT_EQ(st.ok(), c.ok) << c.name << ": " << st;
    if (!c.ok) {
      EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << c.name;
      EXPECT_THAT(std::string(st.message()), HasSubstr("device.comm_id: ")) << c.name;
      EXPECT_THAT(std::string(st.message()), HasSubstr(c.why)) << c.name;
    }
  }
}

TEST(ValidateAttributesTest, Table) {
  struct Case {
    const char* name;
    std::map<std::string, std::string> attributes;
    bool ok;
  };
  std::map<std::string, std::string> too_many;
  for (int i = 0; i < 33; ++i) too_many["k" + std::to_string(i)] = "v";
  const Case cases[] = {
      {"empty", {}, true},
      {"simple", {{"site", "lyon"}, {"_x", ""}, {"model.rev-2", "caf\xc3\xa9"}}, true},
      {"key_digit_first", {{"1site", "x"}}, false},
      {"key_slash", {{"a/b", "x"}}, false},
      {"key_empty", {{"", "x"}}, false},
      {"key_too_long", {{std::string(64, 'k'), "x"}}, false},
      {"value_control", {{"k", "a\nb"}}, false},
      {"value_bad_utf8", {{"k", "\xff"}}, false},
      {"value_too_long", {{"k", std::string(257, 'v')}}, false},
      {"too_many", too_many, false},
  };
  for (const auto& c : cases) {
    const absl::Status st = ValidateAttributes("device.attributes", c.attributes);
    EXPECT_EQ(st.ok(), c.ok) << c.name << ": " << st;
    if (!c.ok) {
      EXPECT_THAT(std::string(st.message()), HasSubstr("device.attributes")) << c.name;
    }
  }
}

TEST(NormalizeGroupsTest, SortsAndRefusesDuplicatesAndBadNames) {
  std::vector<std::string> groups = {"line-2", "factory.lyon", "a"};
  ASSERT_TRUE(NormalizeGroups("device.groups", &groups).ok());
  EXPECT_EQ(groups, (std::vector<std::string>{"a", "factory.lyon", "line-2"}));

  std::vector<std::string> dup = {"a", "b", "a"};
  EXPECT_THAT(std::string(NormalizeGroups("device.groups", &dup).message()),
              HasSubstr("listed twice"));
  std::vector<std::string> upper = {"Line"};
  EXPECT_THAT(std::string(NormalizeGroups("device.groups", &upper).message()),
              HasSubstr("device.groups[0]"));
  std::vector<std::string> many(17, "g");
  EXPECT_THAT(std::string(NormalizeGroups("device.groups", &many).message()),
              HasSubstr("at most 16"));
}

TEST(ValidateNewDeviceTest, NamesTheFieldPath) {
  storage::Device d;
  d.comm_id = "ok-1";
  d.display_name = "bad\x01name";
  const absl::Status st = ValidateNewDevice("devices[7]", &d);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(st.message()), HasSubstr("devices[7].display_name"));
}

TEST(QuoteTest, EscapesAndCuts) {
  EXPECT_EQ(Quote("a\"b"), "\"a\\\"b\"");
  EXPECT_EQ(Quote(std::string("\0", 1)), "\"\\x00\"");
  EXPECT_EQ(Quote(std::string(100, 'x')), "\"" + std::string(80, 'x') + "...\"");
}

}  // namespace
}  // namespace fleetca::registry
