#include "acl/policy.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <utility>
#include <string>
#include <vector>

#include "acl/pattern.h"

namespace fleetca::acl {
namespace {

using Reason = Decision::Reason;

struct OpCase {
  const char* name;
  Operation op;
  std::string topic;
  bool allowed;
  int rule_index;
  Reason reason;
};

void ExpectDecisions(const std::vector<ResolvedRule>& rules, const std::vector<OpCase>& cases) {
  for (const auto& c : cases) {
    const Decision d = Evaluate(rules, c.op, c.topic);
    EXPECT_EQ(d.allowed, c.allowed) << c.name;
    EXPECT_EQ(d.rule_index, c.rule_index) << c.name;
    EXPECT_EQ(d.reason, c.reason) << c.name << ": " << ReasonText(d.reason);
  }
}

// The built-in profiles (acl.proto), resolved the way the server resolves them.
std::vector<ResolvedRule> Resolve(const char* pattern, Access access, const char* client_id) {
  absl::StatusOr<TopicPattern> p = TopicPattern::Parse(pattern);
  EXPECT_TRUE(p.ok()) << p.status();
  absl::StatusOr<std::string> f = p->Substitute({client_id, "", nullptr});
  EXPECT_TRUE(f.ok()) << f.status();
  return {{*f, access}};
}

constexpr auto kPub = Operation::kPublish;
constexpr auto kSub = Operation::kSubscribe;
constexpr auto kRecv = Operation::kReceive;

TEST(PolicyTest, DeviceProfile) {
  const auto rules = Resolve("devices/%c/#", Access::kReadWrite, "dev1");
  ExpectDecisions(
      rules,
      {
          {"publish_own", kPub, "devices/dev1/telemetry", true, 0, Reason::kAllowed},
          {"publish_own_root", kPub, "devices/dev1", true, 0, Reason::kAllowed},
          {"publish_own_deep", kPub, "devices/dev1/a/b/c", true, 0, Reason::kAllowed},
          {"publish_other", kPub, "devices/dev2/telemetry", false, -1, Reason::kNoMatchingRule},
          {"publish_prefix_lookalike", kPub, "devices/dev10/x", false, -1, Reason::kNoMatchingRule},
          {"publish_sys", kPub, "$SYS/broker", false, -1, Reason::kNoMatchingRule},
          {"receive_own", kRecv, "devices/dev1/cmd", true, 0, Reason::kAllowed},
          {"receive_other", kRecv, "devices/dev2/cmd", false, -1, Reason::kNoMatchingRule},
          {"subscribe_own_tree", kSub, "devices/dev1/#", true, 0, Reason::kAllowed},
          {"subscribe_own_plus", kSub, "devices/dev1/+/status", true, 0, Reason::kAllowed},
          {"subscribe_everyone", kSub, "devices/+/status", false, -1, Reason::kNoMatchingRule},
          {"subscribe_all", kSub, "#", false, -1, Reason::kNoMatchingRule},
          {"subscribe_devices", kSub, "devices/#", false, -1, Reason::kNoMatchingRule},
      });
}

TEST(PolicyTest, WatcherProfile) {
  const auto rules = Resolve("#", Access::kRead, "watcher-1");
  ExpectDecisions(
      rules, {
                 {"subscribe_all", kSub, "#", true, 0, Reason::kAllowed},
                 {"subscribe_some", kSub, "devices/+/status", true, 0, Reason::kAllowed},
                 {"receive", kRecv, "devices/dev1/status", true, 0, Reason::kAllowed},
                 {"publish", kPub, "devices/dev1/cmd", false, -1, Reason::kNoMatchingRule},
                 // MQTT 4.7.2: "#" does not reach the broker's '$' topics.
                 {"subscribe_sys", kSub, "$SYS/#", false, -1, Reason::kNoMatchingRule},
                 {"receive_sys", kRecv, "$SYS/broker/uptime", false, -1, Reason::kNoMatchingRule},
             });
}

TEST(PolicyTest, ControllerProfile) {
  const auto rules = Resolve("#", Access::kReadWrite, "controller-1");
  ExpectDecisions(rules, {
                             {"publish", kPub, "devices/dev1/cmd", true, 0, Reason::kAllowed},
                             {"receive", kRecv, "devices/dev1/status", true, 0, Reason::kAllowed},
                             {"subscribe_all", kSub, "#", true, 0, Reason::kAllowed},
                             {"subscribe_plus", kSub, "+/x/#", true, 0, Reason::kAllowed},
                             {"publish_sys", kPub, "$SYS/x", false, -1, Reason::kNoMatchingRule},
                         });
}

TEST(PolicyTest, DenyWinsWhateverTheOrder) {
  const std::vector<ResolvedRule> deny_last = {{"#", Access::kReadWrite},
                                               {"secret/#", Access::kDeny}};
  const std::vector<ResolvedRule> deny_first = {{"secret/#", Access::kDeny},
                                                {"#", Access::kReadWrite}};
  for (const auto* rules : {&deny_last, &deny_first}) {
    const int deny = rules == &deny_last ? 1 : 0;
    const int allow = 1 - deny;
    ExpectDecisions(*rules,
                    {
                        {"publish_secret", kPub, "secret/a", false, deny, Reason::kDenyRule},
                        {"publish_secret_root", kPub, "secret", false, deny, Reason::kDenyRule},
                        {"publish_public", kPub, "public/a", true, allow, Reason::kAllowed},
                        {"receive_secret", kRecv, "secret/a/b", false, deny, Reason::kDenyRule},
                        {"receive_public", kRecv, "public/a", true, allow, Reason::kAllowed},
                        {"subscribe_secret", kSub, "secret/+", false, deny, Reason::kDenyRule},
                        {"subscribe_secret_tree", kSub, "secret/#", false, deny, Reason::kDenyRule},
                        // The DENY overlaps "#" without covering it: the SUBSCRIBE goes through,
                        // and RECEIVE keeps the secret messages out (receive_secret above).
                        {"subscribe_all", kSub, "#", true, allow, Reason::kAllowed},
                        {"subscribe_overlap", kSub, "+/a", true, allow, Reason::kAllowed},
                    });
  }
}

TEST(PolicyTest, DenyWithoutAllowStillDenies) {
  const std::vector<ResolvedRule> rules = {{"a/#", Access::kDeny}};
  ExpectDecisions(rules, {
                             {"publish_denied", kPub, "a/b", false, 0, Reason::kDenyRule},
                             {"publish_unmatched", kPub, "b", false, -1, Reason::kNoMatchingRule},
                         });
}

TEST(PolicyTest, SubscribeOnlyDoesNotAllowReceive) {
  std::vector<ResolvedRule> rules = {{"alerts/#", Access::kSubscribe}};
  ExpectDecisions(rules, {
                             {"subscribe", kSub, "alerts/+", true, 0, Reason::kAllowed},
                             {"subscribe_tree", kSub, "alerts/#", true, 0, Reason::kAllowed},
                             {"receive", kRecv, "alerts/fire", false, -1, Reason::kNoMatchingRule},
                             {"publish", kPub, "alerts/fire", false, -1, Reason::kNoMatchingRule},
                         });
  rules.push_back({"alerts/fire", Access::kRead});
  ExpectDecisions(rules,
                  {
                      {"subscribe", kSub, "alerts/+", true, 0, Reason::kAllowed},
                      {"receive_read", kRecv, "alerts/fire", true, 1, Reason::kAllowed},
                      {"receive_other", kRecv, "alerts/flood", false, -1, Reason::kNoMatchingRule},
                  });
}

TEST(PolicyTest, AccessGrantsOnlyItsOperations) {
  const std::vector<ResolvedRule> write = {{"t/#", Access::kWrite}};
  ExpectDecisions(write, {
                             {"publish", kPub, "t/x", true, 0, Reason::kAllowed},
                             {"subscribe", kSub, "t/#", false, -1, Reason::kNoMatchingRule},
                             {"receive", kRecv, "t/x", false, -1, Reason::kNoMatchingRule},
                         });
  const std::vector<ResolvedRule> read = {{"t/#", Access::kRead}};
  ExpectDecisions(read, {
                            {"publish", kPub, "t/x", false, -1, Reason::kNoMatchingRule},
                            {"subscribe", kSub, "t/#", true, 0, Reason::kAllowed},
                            {"receive", kRecv, "t/x", true, 0, Reason::kAllowed},
                        });
  // An access outside the enum (a proto value not checked) grants nothing.
  const std::vector<ResolvedRule> unknown = {{"#", static_cast<Access>(0)},
                                             {"#", static_cast<Access>(9)}};
  ExpectDecisions(unknown, {
                               {"publish", kPub, "t/x", false, -1, Reason::kNoMatchingRule},
                               {"subscribe", kSub, "t/#", false, -1, Reason::kNoMatchingRule},
                               {"receive", kRecv, "t/x", false, -1, Reason::kNoMatchingRule},
                           });
}

TEST(PolicyTest, SubscribeNeedsOneRuleCoveringTheFilter) {
  const std::vector<ResolvedRule> rules = {{"a/+/#", Access::kRead}, {"a/b/c", Access::kRead}};
  ExpectDecisions(rules,
                  {
                      // "a/#" matches "a", which "a/+/#" does not.
                      {"parent_not_covered", kSub, "a/#", false, -1, Reason::kNoMatchingRule},
                      {"covered", kSub, "a/+/#", true, 0, Reason::kAllowed},
                      {"literal", kSub, "a/b/c", true, 0, Reason::kAllowed},
                      {"receive_parent", kRecv, "a", false, -1, Reason::kNoMatchingRule},
                  });
}

TEST(PolicyTest, FirstGrantingRuleIsReported) {
  const std::vector<ResolvedRule> rules = {
      {"a/#", Access::kRead}, {"a/b", Access::kReadWrite}, {"#", Access::kReadWrite}};
  ExpectDecisions(rules, {
                             {"publish", kPub, "a/b", true, 1, Reason::kAllowed},
                             {"receive", kRecv, "a/b", true, 0, Reason::kAllowed},
                             {"publish_elsewhere", kPub, "z", true, 2, Reason::kAllowed},
                         });
}

TEST(PolicyTest, NoRulesDenies) {
  ExpectDecisions({}, {
                          {"publish", kPub, "a", false, -1, Reason::kNoMatchingRule},
                          {"subscribe", kSub, "#", false, -1, Reason::kNoMatchingRule},
                          {"receive", kRecv, "a", false, -1, Reason::kNoMatchingRule},
                      });
}

TEST(PolicyTest, MalformedInputIsDenied) {
  // Everything allowed, so only the input check can say no.
  const std::vector<ResolvedRule> rules = {{"#", Access::kReadWrite}};
  ExpectDecisions(
      rules,
      {
          {"publish_empty", kPub, "", false, -1, Reason::kMalformedInput},
          {"publish_plus", kPub, "a/+", false, -1, Reason::kMalformedInput},
          {"publish_hash", kPub, "a/#", false, -1, Reason::kMalformedInput},
          {"publish_nul", kPub, std::string("a\0b", 3), false, -1, Reason::kMalformedInput},
          {"receive_bad_utf8", kRecv, "a/\xff", false, -1, Reason::kMalformedInput},
          {"receive_surrogate", kRecv, "\xed\xa0\x80", false, -1, Reason::kMalformedInput},
          {"subscribe_empty", kSub, "", false, -1, Reason::kMalformedInput},
          {"subscribe_hash_inside", kSub, "a/#/b", false, -1, Reason::kMalformedInput},
          {"subscribe_plus_mixed", kSub, "a+/b", false, -1, Reason::kMalformedInput},
          {"subscribe_overlong", kSub, "\xc0\xaf", false, -1, Reason::kMalformedInput},
          {"subscribe_too_long", kSub, std::string(65536, 'a'), false, -1, Reason::kMalformedInput},
      });
  const Decision d = Evaluate(rules, static_cast<Operation>(0), "a");
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.reason, Reason::kMalformedInput);
}

TEST(PolicyTest, ReasonTextIsDistinct) {
  std::set<std::string> texts;
  for (const Reason r :
       {Reason::kAllowed, Reason::kDenyRule, Reason::kNoMatchingRule, Reason::kMalformedInput}) {
    texts.insert(std::string(ReasonText(r)));
  }
  EXPECT_EQ(texts.size(), 4u);
  EXPECT_EQ(texts.count(""), 0u);
}

TEST(PolicyTest, EnumsMirrorTheProtoNumbers) {
  // Access is converted from AclAccess and Operation from TopicOperation by number.
  EXPECT_EQ(static_cast<int>(Access::kRead), 1);
  EXPECT_EQ(static_cast<int>(Access::kWrite), 2);
  EXPECT_EQ(static_cast<int>(Access::kReadWrite), 3);
  EXPECT_EQ(static_cast<int>(Access::kSubscribe), 4);
  EXPECT_EQ(static_cast<int>(Access::kDeny), 5);
  EXPECT_EQ(static_cast<int>(Operation::kPublish), 1);
  EXPECT_EQ(static_cast<int>(Operation::kSubscribe), 2);
  EXPECT_EQ(static_cast<int>(Operation::kReceive), 3);
}

TEST(PolicyTest, RuleOrderPutsDenyFirstThenFilterThenAccess) {
  std::vector<ResolvedRule> rules = {{"b/#", Access::kRead},
                                     {"a/#", Access::kWrite},
                                     {"z/#", Access::kDeny},
                                     {"a/#", Access::kRead},
                                     {"c/#", Access::kDeny}};
  std::sort(rules.begin(), rules.end(), RuleOrder);
  const std::vector<std::pair<std::string, Access>> want = {{"c/#", Access::kDeny},
                                                            {"z/#", Access::kDeny},
                                                            {"a/#", Access::kRead},
                                                            {"a/#", Access::kWrite},
                                                            {"b/#", Access::kRead}};
  ASSERT_EQ(rules.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(rules[i].filter, want[i].first) << i;
    EXPECT_EQ(rules[i].access, want[i].second) << i;
  }
  EXPECT_FALSE(RuleOrder(rules[0], rules[0]));  // irreflexive
}

}  // namespace
}  // namespace fleetca::acl
