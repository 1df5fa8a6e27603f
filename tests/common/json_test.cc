#include "common/json.h"

#include <gtest/gtest.h>

namespace fleetca {
namespace {

TEST(JsonTest, EscapesQuotesBackslashesAndControls) {
  EXPECT_EQ(JsonString("a\"b\\c\nd\x01"), "\"a\\\"b\\\\c\\nd\\u0001\"");
  EXPECT_EQ(JsonString(""), "\"\"");
}

TEST(JsonTest, ObjectRoundTrips) {
  const std::map<std::string, std::string> m = {
      {"site", "lyon"}, {"q\"uote", "back\\slash"}, {"utf8", "caf\xc3\xa9"}, {"nl", "a\nb"}};
  auto parsed = ParseFlatJsonObject(JsonObject(m));
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(*parsed, m);
}

TEST(JsonTest, Array) {
  EXPECT_EQ(JsonArray({}), "[]");
  EXPECT_EQ(JsonArray({"a", "b\"c"}), "[\"a\",\"b\\\"c\"]");
}

TEST(JsonTest, ParsesPostgresJsonbOutput) {
  // jsonb::text puts a space after ':' and ',' and may use \u escapes.
  auto parsed = ParseFlatJsonObject(R"({"a": "1", "b": "\u00e9\ud83d\ude00"})");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->at("a"), "1");
  EXPECT_EQ(parsed->at("b"), "\xc3\xa9\xf0\x9f\x98\x80");
  EXPECT_TRUE(ParseFlatJsonObject("{}")->empty());
}

TEST(JsonTest, RejectsWhatItDoesNotWrite) {
  for (const char* bad : {"", "[]", "{\"a\":1}", "{\"a\":\"b\"", "{\"a\":\"b\"} x", "{a:\"b\"}",
                          "{\"a\":\"\\x\"}", "{\"a\":\"\\ud800\"}"}) {
    EXPECT_FALSE(ParseFlatJsonObject(bad).ok()) << bad;
  }
}

}  // namespace
}  // namespace fleetca
