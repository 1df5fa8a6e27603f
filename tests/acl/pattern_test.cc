#include "acl/pattern.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "acl/topic.h"

namespace fleetca::acl {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

TopicPattern MustParse(absl::string_view text) {
  absl::StatusOr<TopicPattern> p = TopicPattern::Parse(text);
  EXPECT_TRUE(p.ok()) << text << ": " << p.status();
  if (!p.ok()) return *TopicPattern::Parse("unused");
  return *std::move(p);
}

TEST(PatternTest, ParseValid) {
  struct Case {
    const char* name;
    std::string text;
    bool has_substitutions;
    std::vector<std::string> attributes;
  };
  const Case cases[] = {
      {"device_profile", "devices/%c/#", true, {}},
      {"watcher_profile", "#", false, {}},
      {"plain_filter", "+/status", false, {}},
      {"attribute_and_client", "sites/%{site}/devices/%c/#", true, {"site"}},
      {"username", "users/%u/+", true, {}},
      {"inside_a_level", "pre-%c-post/x", true, {}},
      {"adjacent", "%c%u%{a}", true, {"a"}},
      {"attribute_order_dedup", "%{zone}/%{site}/%{zone}", true, {"zone", "site"}},
      {"attribute_charset", "x/%{Site_2.a-b}", true, {"Site_2.a-b"}},
      {"attribute_max_length", "x/%{" + std::string(63, 'n') + "}", true, {std::string(63, 'n')}},
      {"percent_escape", "metrics/100%%", false, {}},
      {"escaped_c", "a/%%c", false, {}},
      {"escaped_brace", "a/%%{site}", false, {}},
      {"escape_then_client", "a/%%%c", true, {}},
      {"dollar_literal", "$SYS/broker/#", false, {}},
      {"max_size", std::string(1024, 'a'), false, {}},
  };
  for (const auto& c : cases) {
    absl::StatusOr<TopicPattern> p = TopicPattern::Parse(c.text);
    ASSERT_TRUE(p.ok()) << c.name << ": " << p.status();
    EXPECT_EQ(p->text(), c.text) << c.name;
    EXPECT_EQ(p->has_substitutions(), c.has_substitutions) << c.name;
    EXPECT_EQ(p->attributes(), c.attributes) << c.name;
  }
}

TEST(PatternTest, ParseInvalid) {
  struct Case {
    const char* name;
    std::string text;
    const char* message;  // a part of the error message
  };
  const Case cases[] = {
      {"empty", "", "pattern is empty"},
      {"too_long", std::string(1025, 'a'), "1025 bytes, more than the 1024 allowed"},
      {"plus_mixed_with_client", "devices/%c+/#", "'+' inside a level (at offset 10)"},
      {"hash_not_last", "a/#/b", "'#' before its last level"},
      {"hash_mixed", "a/%c#", "'#' inside a level"},
      {"nul", std::string("a/%c\0", 5), "NUL byte at offset 4"},
      {"bad_utf8", "a/\xff/%c", "not valid UTF-8 (at offset 2)"},
      {"overlong", "\xc0\xaf%c", "not valid UTF-8"},
      {"unknown_sequence", "devices/%x", "unknown substitution \"%x\" at offset 8"},
      {"upper_c", "devices/%C", "unknown substitution \"%C\""},
      {"percent_slash", "a%/b", "unknown substitution \"%/\" at offset 1"},
      {"percent_space", "a/% b", "unknown substitution \"% \""},
      {"lone_percent", "a/b%", "lone '%' (at offset 3)"},
      {"odd_percents", "a/%%%", "lone '%' (at offset 4)"},
      {"unterminated", "sites/%{site/x", "unterminated \"%{\" at offset 6"},
      {"unterminated_end", "a/%{", "unterminated \"%{\" at offset 2"},
      {"empty_name", "a/%{}", "invalid attribute name \"\" at offset 2"},
      {"name_with_slash", "a/%{b/c}", "invalid attribute name \"b/c\""},
      {"name_with_space", "a/%{b c}", "invalid attribute name"},
      {"name_leading_dash", "a/%{-b}", "invalid attribute name \"-b\""},
      {"name_leading_dot", "a/%{.b}", "invalid attribute name"},
      {"name_too_long", "a/%{" + std::string(64, 'n') + "}", "invalid attribute name"},
      {"name_non_ascii", "a/%{caf\xc3\xa9}", "invalid attribute name"},
      {"name_with_percent", "a/%{%c}", "invalid attribute name"},
  };
  for (const auto& c : cases) {
    absl::StatusOr<TopicPattern> p = TopicPattern::Parse(c.text);
    ASSERT_FALSE(p.ok()) << c.name;
    EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument) << c.name;
    EXPECT_THAT(p.status().message(), HasSubstr(c.message)) << c.name;
  }
}

TEST(PatternTest, SubstituteDeviceProfile) {
  const TopicPattern p = MustParse("devices/%c/#");
  absl::StatusOr<std::string> f = p.Substitute({"dev-1", "", nullptr});
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(*f, "devices/dev-1/#");
  EXPECT_TRUE(FilterMatchesTopic(*f, "devices/dev-1/telemetry"));
  EXPECT_FALSE(FilterMatchesTopic(*f, "devices/dev-2/telemetry"));
}

TEST(PatternTest, SubstituteEverything) {
  const std::map<std::string, std::string> attrs = {{"site", "lyon"}, {"zone", "z\xc3\xa9"}};
  const MapAttributeSource source(attrs);
  const TopicPattern p = MustParse("sites/%{site}/%{zone}/%u/%c-%%/#");
  absl::StatusOr<std::string> f = p.Substitute({"dev1", "cn=dev1", &source});
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(*f, "sites/lyon/z\xc3\xa9/cn=dev1/dev1-%/#");
  EXPECT_TRUE(ValidateTopicFilter(*f).ok());
}

TEST(PatternTest, PercentEscape) {
  absl::StatusOr<std::string> f =
      MustParse("metrics/100%%/%%c/%%%c").Substitute({"x", "", nullptr});
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(*f, "metrics/100%/%c/%x");
}

TEST(PatternTest, UnusedValuesAreNotChecked) {
  // A pattern without %u does not care that the username is empty, and so on.
  absl::StatusOr<std::string> f = MustParse("devices/%c/#").Substitute({"d", "a/+/#", nullptr});
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(*f, "devices/d/#");
  f = MustParse("#").Substitute({});
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(*f, "#");
}

TEST(PatternTest, SubstitutionCannotWidenOrRestructure) {
  const std::map<std::string, std::string> attrs = {
      {"slash", "a/b"},
      {"plus", "+"},
      {"hash", "#"},
      {"empty", ""},
      {"nul", std::string("a\0b", 3)},
      {"bad", "\xed\xa0\x80"},
      {"sys", "$SYS"},
  };
  const MapAttributeSource source(attrs);
  const std::string long_id(40000, 'a');  // outlives the views in `cases`
  struct Case {
    const char* name;
    const char* pattern;
    Substitutions values;
    const char* message;
  };
  const Case cases[] = {
      {"client_slash", "devices/%c/#", {"a/b", "", nullptr}, "client id holds '/'"},
      {"client_plus", "devices/%c/#", {"+", "", nullptr}, "client id holds '+'"},
      {"client_hash", "devices/%c", {"#", "", nullptr}, "client id holds '#'"},
      {"client_hash_inside", "devices/%c", {"x#", "", nullptr}, "client id holds '#'"},
      {"client_empty", "devices/%c/#", {"", "", nullptr}, "client id is empty"},
      {"client_nul",
       "devices/%c/#",
       {absl::string_view("a\0", 2), "", nullptr},
       "client id holds a NUL byte"},
      {"client_bad_utf8",
       "devices/%c/#",
       {"\xc0\xaf", "", nullptr},
       "client id is not valid UTF-8"},
      {"client_ff", "devices/%c/#", {"\xff", "", nullptr}, "client id is not valid UTF-8"},
      {"username_slash", "users/%u/#", {"c", "x/y", nullptr}, "username holds '/'"},
      {"username_empty", "users/%u/#", {"c", "", nullptr}, "username is empty"},
      {"attribute_missing", "sites/%{site}/#", {"c", "u", &source}, "attribute site is not set"},
      {"no_attributes", "sites/%{site}/#", {"c", "u", nullptr}, "attribute site is not set"},
      {"attribute_slash", "sites/%{slash}/#", {"c", "u", &source}, "attribute slash holds '/'"},
      {"attribute_plus", "sites/%{plus}/#", {"c", "u", &source}, "attribute plus holds '+'"},
      {"attribute_hash", "sites/%{hash}", {"c", "u", &source}, "attribute hash holds '#'"},
      {"attribute_empty", "sites/%{empty}/#", {"c", "u", &source}, "attribute empty is empty"},
      {"attribute_nul", "sites/%{nul}/#", {"c", "u", &source}, "attribute nul holds a NUL"},
      {"attribute_bad_utf8",
       "sites/%{bad}/#",
       {"c", "u", &source},
       "attribute bad is not valid UTF-8"},
      // "%{site}/#" must not become "$SYS/#": '$' topics are the broker's (MQTT 4.7.2).
      {"attribute_dollar_first",
       "%{sys}/#",
       {"c", "u", &source},
       "attribute sys starts with '$' at the start of the filter"},
      {"client_dollar_first", "%c/#", {"$SYS", "u", nullptr}, "client id starts with '$'"},
      {"result_too_long", "%c/%c", {long_id, "", nullptr}, "substituted filter is 80001 bytes"},
  };
  for (const auto& c : cases) {
    absl::StatusOr<std::string> f = MustParse(c.pattern).Substitute(c.values);
    ASSERT_FALSE(f.ok()) << c.name << " gave " << *f;
    EXPECT_EQ(f.status().code(), absl::StatusCode::kFailedPrecondition) << c.name;
    EXPECT_THAT(f.status().message(), HasSubstr(c.message)) << c.name;
  }
}

TEST(PatternTest, DollarOnlyRefusedAtTheStart) {
  // Past the first character a '$' is ordinary text (MQTT 4.7.2 is about the first
  // character of a topic), and a literal '$' written by the admin is theirs to write.
  const std::map<std::string, std::string> attrs = {{"site", "$x"}};
  const MapAttributeSource source(attrs);
  absl::StatusOr<std::string> f = MustParse("sites/%{site}/#").Substitute({"c", "u", &source});
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(*f, "sites/$x/#");
  f = MustParse("x%c/#").Substitute({"$y", "", nullptr});
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(*f, "x$y/#");
  f = MustParse("$SYS/%c/#").Substitute({"b1", "", nullptr});
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(*f, "$SYS/b1/#");
}

TEST(PatternTest, MapAttributeSource) {
  const std::map<std::string, std::string> attrs = {{"a", "1"}, {"site", ""}};
  const MapAttributeSource source(attrs);
  EXPECT_EQ(source.Attribute("a"), std::optional<absl::string_view>("1"));
  EXPECT_EQ(source.Attribute("site"), std::optional<absl::string_view>(""));
  EXPECT_EQ(source.Attribute("b"), std::nullopt);
  EXPECT_EQ(source.Attribute("A"), std::nullopt);
  const std::map<std::string, std::string> none;
  EXPECT_EQ(MapAttributeSource(none).Attribute("a"), std::nullopt);
}

TEST(PatternTest, AttributesEmptyWithoutAttributeSubstitutions) {
  EXPECT_THAT(MustParse("devices/%c/%u/#").attributes(), IsEmpty());
  EXPECT_THAT(MustParse("%{b}/%{a}/%{b}").attributes(), ElementsAre("b", "a"));
}

}  // namespace
}  // namespace fleetca::acl
