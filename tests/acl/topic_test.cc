#include "acl/topic.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <bitset>
#include <string>
#include <vector>

#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace fleetca::acl {
namespace {

using ::testing::HasSubstr;

struct ValidityCase {
  const char* name;
  std::string text;
  bool valid;
  const char* message = "";  // a part of the error message, when invalid
};

TEST(TopicTest, ValidateTopicName) {
  const ValidityCase cases[] = {
      {"one_level", "a", true},
      {"levels", "sport/tennis/player1", true},
      {"only_separator", "/", true},
      {"empty_levels", "a//b/", true},
      {"dollar", "$SYS/broker/uptime", true},
      {"two_byte", "caf\xc3\xa9", true},
      {"four_byte", "\xf0\x9f\x98\x80/x", true},
      {"max_size", std::string(65535, 'a'), true},
      {"empty", "", false, "topic is empty"},
      {"too_long", std::string(65536, 'a'), false, "65536 bytes"},
      {"plus", "a/+/b", false, "topic holds a wildcard ('+' at offset 2)"},
      {"plus_inside", "a+", false, "wildcard"},
      {"hash", "a/#", false, "topic holds a wildcard ('#' at offset 2)"},
      {"nul", std::string("a\0b", 3), false, "NUL byte at offset 1"},
      {"overlong_slash", "a\xc0\xaf", false, "not valid UTF-8 (at offset 1)"},
      {"overlong_three", "\xe0\x80\xaf", false, "UTF-8"},
      {"surrogate", "\xed\xa0\x80", false, "UTF-8"},
      {"high_surrogate_end", "\xed\xbf\xbf", false, "UTF-8"},
      {"ff", "\xff", false, "UTF-8"},
      {"lone_continuation", "\x80", false, "UTF-8"},
      {"truncated", "x/\xe2\x82", false, "UTF-8"},
      {"above_max", "\xf4\x90\x80\x80", false, "UTF-8"},
      {"latin1", "caf\xe9", false, "UTF-8"},
  };
  for (const auto& c : cases) {
    const absl::Status s = ValidateTopicName(c.text);
    EXPECT_EQ(s.ok(), c.valid) << c.name << ": " << s;
    EXPECT_EQ(IsValidTopicName(c.text), c.valid) << c.name;
    if (!c.valid) {
      EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << c.name;
      EXPECT_THAT(s.message(), HasSubstr(c.message)) << c.name;
    }
  }
}

TEST(TopicTest, ValidateTopicFilter) {
  const ValidityCase cases[] = {
      {"literal", "sport/tennis", true},
      {"hash_alone", "#", true},
      {"plus_alone", "+", true},
      {"hash_last", "sport/tennis/#", true},
      {"plus_levels", "+/tennis/+", true},
      {"plus_then_hash", "+/#", true},
      {"leading_empty", "/+", true},
      {"empty_levels", "a//+//#", true},
      {"dollar", "$SYS/#", true},
      {"utf8", "caf\xc3\xa9/+", true},
      {"max_size", std::string(65535, 'a'), true},
      {"empty", "", false, "filter is empty"},
      {"too_long", std::string(65536, '+'), false, "65536 bytes, more than the 65535"},
      {"hash_inside", "sport/tennis#", false, "'#' inside a level (at offset 12)"},
      {"hash_first_inside", "#a", false, "'#' inside a level (at offset 0)"},
      {"hash_not_last", "sport/#/ranking", false, "'#' before its last level (at offset 6)"},
      {"hash_then_empty", "#/", false, "before its last level"},
      {"double_hash", "##", false, "inside a level"},
      {"plus_inside", "sport+", false, "'+' inside a level (at offset 5)"},
      {"plus_first_inside", "+a/b", false, "'+' inside a level (at offset 0)"},
      {"double_plus", "a/++", false, "inside a level"},
      {"nul", std::string("a/\0/#", 5), false, "NUL byte at offset 2"},
      {"overlong", "\xc0\xaf/#", false, "not valid UTF-8 (at offset 0)"},
      {"surrogate", "a/\xed\xa0\x80", false, "UTF-8"},
      {"ff", "+/\xff", false, "UTF-8"},
  };
  for (const auto& c : cases) {
    const absl::Status s = ValidateTopicFilter(c.text);
    EXPECT_EQ(s.ok(), c.valid) << c.name << ": " << s;
    EXPECT_EQ(IsValidTopicFilter(c.text), c.valid) << c.name;
    if (!c.valid) {
      EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << c.name;
      EXPECT_THAT(s.message(), HasSubstr(c.message)) << c.name;
    }
  }
}

struct MatchCase {
  const char* filter;
  const char* topic;
  bool matches;
};

TEST(TopicTest, FilterMatchesTopic) {
  const MatchCase cases[] = {
      // MQTT 4.7.1.2: '#' matches the parent level and any number of child levels.
      {"sport/tennis/player1/#", "sport/tennis/player1", true},
      {"sport/tennis/player1/#", "sport/tennis/player1/ranking", true},
      {"sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", true},
      {"sport/tennis/player1/#", "sport/tennis", false},
      {"sport/tennis/player1/#", "sport/tennis/player2", false},
      {"sport/#", "sport", true},
      {"sport/#", "sports", false},
      {"sport/#", "sport/", true},
      {"#", "sport", true},
      {"#", "/", true},
      {"#", "a/b/c", true},
      // MQTT 4.7.1.3: '+' matches exactly one level, empty levels included.
      {"sport/tennis/+", "sport/tennis/player1", true},
      {"sport/tennis/+", "sport/tennis/player2", true},
      {"sport/tennis/+", "sport/tennis/player1/ranking", false},
      {"sport/tennis/+", "sport/tennis", false},
      {"sport/+", "sport", false},
      {"sport/+", "sport/", true},
      {"+/+", "/finance", true},
      {"/+", "/finance", true},
      {"+", "/finance", false},
      {"+", "finance", true},
      {"+/tennis/#", "sport/tennis/player1", true},
      {"+/tennis/#", "sport/tennis", true},
      {"+/tennis/#", "sport/golf", false},
      // MQTT 4.7.2: '$' topics are not matched by a filter starting with a wildcard.
      {"#", "$SYS/monitor/Clients", false},
      {"+/monitor/Clients", "$SYS/monitor/Clients", false},
      {"$SYS/#", "$SYS/monitor/Clients", true},
      {"$SYS/monitor/+", "$SYS/monitor/Clients", true},
      {"$SYS/#", "$SYS", true},
      {"+", "$", false},
      {"#", "$", false},
      {"+/#", "$SYS", false},
      // '$' only matters at the very start of the topic.
      {"#", "a/$SYS", true},
      {"+/+", "a/$SYS", true},
      {"+", "a$", true},
      // Literals: exact, case-sensitive, level by level; empty levels are real.
      {"a/b", "a/b", true},
      {"a/b", "A/b", false},
      {"a/b", "a/b/c", false},
      {"a/b", "a", false},
      {"a/b", "a/bc", false},
      {"a/b", "a/b/", false},
      {"a//b", "a//b", true},
      {"a//b", "a/b", false},
      {"a/+/b", "a//b", true},
      {"a/+/b", "a/b", false},
      {"/", "/", true},
      {"+/+", "/", true},
      {"+", "/", false},
      {"caf\xc3\xa9/+", "caf\xc3\xa9/x", true},
      // Malformed filters match nothing they should not.
      {"a/#/b", "a/x/b", false},
      {"a/#/b", "a", false},
      {"", "a", false},
      {"a", "", false},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(FilterMatchesTopic(c.filter, c.topic), c.matches)
        << "filter \"" << c.filter << "\" topic \"" << c.topic << "\"";
  }
}

struct CoverCase {
  const char* rule;
  const char* requested;
  bool covers;
};

TEST(TopicTest, FilterCoversFilter) {
  const CoverCase cases[] = {
      // The device profile, "devices/%c/#" resolved for device x.
      {"devices/x/#", "devices/x/+/status", true},
      {"devices/x/#", "devices/x/#", true},
      {"devices/x/#", "devices/x", true},
      {"devices/x/#", "devices/x/a/b/c", true},
      {"devices/x/#", "devices/+/status", false},
      {"devices/x/#", "devices/#", false},
      {"devices/x/#", "devices", false},
      {"devices/x/#", "devices/y/status", false},
      {"devices/x/#", "#", false},
      {"devices/x/#", "+/x/#", false},
      // '#' in the requested filter also matches its parent level.
      {"a/+/#", "a/#", false},
      {"a/#", "a/#", true},
      {"a/#", "a/+/#", true},
      {"a/+/#", "a/+/#", true},
      {"a/+/#", "a/+", true},
      {"a/+/#", "a/b/c/d", true},
      {"a/+/#", "a", false},
      {"a/+", "a/#", false},
      {"a/+", "a/+/#", false},
      {"a/b/#", "a/#", false},
      {"a", "a/#", false},
      // '+' covers one level, literal or '+'; a literal covers only itself.
      {"a/+", "a/+", true},
      {"a/+", "a/b", true},
      {"a/+", "a/", true},
      {"a/+", "a/b/c", false},
      {"a/+", "a", false},
      {"a/b", "a/+", false},
      {"a/b", "a/b", true},
      {"a/b", "a/c", false},
      {"a/b", "a/b/c", false},
      {"a/b/c", "a/b", false},
      {"a//#", "a//b", true},
      {"a/+/c", "a//c", true},
      {"a//c", "a/+/c", false},
      // A whole-tree rule.
      {"#", "#", true},
      {"#", "+", true},
      {"#", "+/#", true},
      {"#", "a/b/#", true},
      {"#", "/", true},
      // "+/#" matches exactly what "#" matches: a topic has a first level, and '#'
      // matches its parent.
      {"+/#", "#", true},
      {"+/#", "+/#", true},
      {"+/#", "+", true},
      {"+/#", "a", true},
      {"+/+/#", "#", false},
      {"+/+/#", "+/#", false},
      {"+", "#", false},
      {"+", "+/#", false},
      {"+", "+", true},
      {"+", "a/b", false},
      // Likewise "/#" never matches its parent, the empty string, which is no topic.
      {"/+/#", "/#", true},
      {"+/+/#", "/#", true},
      {"/+", "/#", false},
      {"/+/+/#", "/#", false},
      {"/+/#", "/", true},
      {"+/+/#", "+/#", false},
      {"a/+/#", "a/#", false},
      {"//+/#", "//#", false},
      // MQTT 4.7.2: a rule starting with a wildcard covers nothing under '$'.
      {"#", "$SYS/#", false},
      {"#", "$SYS", false},
      {"#", "$SYS/broker/+", false},
      {"+/#", "$SYS/#", false},
      {"+", "$x", false},
      {"+/broker/#", "$SYS/broker/uptime", false},
      {"$SYS/#", "$SYS/broker/+", true},
      {"$SYS/#", "$SYS", true},
      {"$SYS/#", "#", false},
      {"$SYS/+", "$SYS/#", false},
      {"#", "a/$SYS/#", true},
      // Malformed input covers nothing.
      {"a/#/b", "a/#/b", false},
      {"a/#/b", "a/x/b", false},
      {"", "a", false},
      {"a", "", false},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(FilterCoversFilter(c.rule, c.requested), c.covers)
        << "rule \"" << c.rule << "\" requested \"" << c.requested << "\"";
  }
}

// ReferenceMatch is MQTT 4.7 written plainly (split, then recurse), to check the
// allocation-free FilterMatchesTopic against.
bool ReferenceMatchLevels(const std::vector<std::string>& f, size_t fi,
                          const std::vector<std::string>& t, size_t ti) {
  if (fi == f.size()) return ti == t.size();
  if (f[fi] == "#") return true;  // the rest, including nothing
  if (ti == t.size()) return false;
  if (f[fi] != "+" && f[fi] != t[ti]) return false;
  return ReferenceMatchLevels(f, fi + 1, t, ti + 1);
}

bool ReferenceMatch(const std::string& filter, const std::string& topic) {
  const std::vector<std::string> f = absl::StrSplit(filter, '/');
  const std::vector<std::string> t = absl::StrSplit(topic, '/');
  if (t[0].size() > 0 && t[0][0] == '$' && (f[0] == "+" || f[0] == "#")) return false;
  return ReferenceMatchLevels(f, 0, t, 0);
}

// AllSequences returns every '/'-joined sequence of 1 to max_levels levels drawn from
// `levels`.
std::vector<std::string> AllSequences(const std::vector<std::string>& levels, size_t max_levels) {
  std::vector<std::string> out;
  std::vector<std::vector<std::string>> current = {{}};
  for (size_t depth = 1; depth <= max_levels; ++depth) {
    std::vector<std::vector<std::string>> next;
    for (const auto& prefix : current) {
      for (const auto& level : levels) {
        next.push_back(prefix);
        next.back().push_back(level);
        out.push_back(absl::StrJoin(next.back(), "/"));
      }
    }
    current = std::move(next);
  }
  return out;
}

// Every small filter against every small topic: a filter's levels come from literals
// ("a", "$s", the empty level) and wildcards; a topic's also from "z", a level no filter
// names, and one level deeper than any filter, so that whenever a filter does not cover
// another, some topic here shows it.
TEST(TopicTest, ExhaustiveSmallUniverse) {
  std::vector<std::string> filters;
  for (const auto& f : AllSequences({"a", "$s", "", "+", "#"}, 3)) {
    if (IsValidTopicFilter(f)) filters.push_back(f);
  }
  std::vector<std::string> topics;
  for (const auto& t : AllSequences({"a", "z", "$s", ""}, 4)) {
    if (IsValidTopicName(t)) topics.push_back(t);
  }
  ASSERT_GT(filters.size(), 100u);
  ASSERT_LE(topics.size(), 512u);

  std::vector<std::bitset<512>> matched(filters.size());
  for (size_t i = 0; i < filters.size(); ++i) {
    for (size_t j = 0; j < topics.size(); ++j) {
      const bool expected = ReferenceMatch(filters[i], topics[j]);
      ASSERT_EQ(FilterMatchesTopic(filters[i], topics[j]), expected)
          << "filter \"" << filters[i] << "\" topic \"" << topics[j] << "\"";
      matched[i][j] = expected;
    }
  }
  // Covering is exactly "every topic the requested filter matches, the rule matches".
  int covered_pairs = 0;
  for (size_t r = 0; r < filters.size(); ++r) {
    for (size_t q = 0; q < filters.size(); ++q) {
      const bool subset = (matched[q] & ~matched[r]).none();
      ASSERT_EQ(FilterCoversFilter(filters[r], filters[q]), subset)
          << "rule \"" << filters[r] << "\" requested \"" << filters[q] << "\"";
      covered_pairs += subset ? 1 : 0;
    }
  }
  EXPECT_GT(covered_pairs, static_cast<int>(filters.size()));  // not only each with itself
}

}  // namespace
}  // namespace fleetca::acl
