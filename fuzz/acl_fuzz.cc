// The ACL core (acl/): topic name and filter validation, matching, filter covering,
// TopicPattern parsing and substitution, and Evaluate, on hostile text, checking the
// promises of acl/topic.h, acl/pattern.h and acl/policy.h.
//
// Input: up to six lines: A, B (each tried as topic name and as filter), a pattern, a
// client id, a username, and attribute values separated by ',' (the pattern's attributes
// in order; an empty value leaves that attribute unset).

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "acl/pattern.h"
#include "acl/policy.h"
#include "acl/topic.h"
#include "fuzz/fuzz_util.h"

namespace fleetca::fuzz {
namespace {

using acl::FilterCoversFilter;
using acl::FilterMatchesTopic;
using acl::IsValidTopicFilter;
using acl::IsValidTopicName;

size_t Count(absl::string_view s, char c) { return static_cast<size_t>(std::count(s.begin(), s.end(), c)); }

bool HasWildcard(absl::string_view s) { return Count(s, '+') + Count(s, '#') > 0; }

// Instance: a topic name the valid filter f matches ('+' and '#' levels become "x").
std::string Instance(absl::string_view f) {
  std::string t;
  for (absl::string_view level : absl::StrSplit(f, '/')) {
    if (level == "+" || level == "#") {
      t.append("x");
    } else {
      t.append(level.data(), level.size());
    }
    t.push_back('/');
  }
  t.pop_back();
  return t;
}

void CheckValidation(absl::string_view s) {
  const bool name = IsValidTopicName(s);
  const bool filter = IsValidTopicFilter(s);
  const absl::Status name_status = acl::ValidateTopicName(s);
  const absl::Status filter_status = acl::ValidateTopicFilter(s);
  FUZZ_CHECK(name == name_status.ok(), "IsValidTopicName disagrees with ValidateTopicName");
  FUZZ_CHECK(filter == filter_status.ok(),
             "IsValidTopicFilter disagrees with ValidateTopicFilter");
  FUZZ_CHECK(name_status.ok() || absl::IsInvalidArgument(name_status), "name status code");
  FUZZ_CHECK(filter_status.ok() || absl::IsInvalidArgument(filter_status), "filter status code");
  if (name) {
    FUZZ_CHECK(filter, "a valid topic name is not a valid filter");
    FUZZ_CHECK(!HasWildcard(s), "a valid topic name holds a wildcard");
    FUZZ_CHECK(FilterMatchesTopic(s, s), "a topic name as a filter does not match itself");
  }
  if (filter) {
    FUZZ_CHECK(FilterCoversFilter(s, s), "a filter does not cover itself");
    const std::string t = Instance(s);
    FUZZ_CHECK(IsValidTopicName(t) || t.size() > acl::kMaxTopicSize, "instance not a name");
    if (IsValidTopicName(t)) {
      const bool dollar_guard = !s.empty() && (s[0] == '+' || s[0] == '#') && t[0] == '$';
      FUZZ_CHECK(dollar_guard || FilterMatchesTopic(s, t), "a filter misses its instance");
    }
    if (s[0] != '$') FUZZ_CHECK(FilterCoversFilter("#", s), "'#' does not cover a filter");
  }
}

void CheckPair(absl::string_view a, absl::string_view b) {
  // Never crash on malformed input.
  const bool m = FilterMatchesTopic(a, b);
  const bool c = FilterCoversFilter(a, b);
  if (IsValidTopicFilter(a) && IsValidTopicName(b)) {
    if (!HasWildcard(a)) FUZZ_CHECK(m == (a == b), "a literal filter matches another topic");
    if (a == "#" && b[0] != '$') FUZZ_CHECK(m, "'#' does not match a topic");
    if (IsValidTopicFilter(b)) {
      // A topic name is the filter of exactly one topic: covering is matching.
      FUZZ_CHECK(c == m, "covering a topic-name filter disagrees with matching it");
    }
  }
  if (IsValidTopicFilter(a) && IsValidTopicFilter(b)) {
    // Covering is exact: a topic that b matches is matched by a when a covers b.
    const std::string t = Instance(b);
    if (c && IsValidTopicName(t) && FilterMatchesTopic(b, t)) {
      FUZZ_CHECK(FilterMatchesTopic(a, t), "a covering filter misses a covered topic");
    }
    if (c && FilterCoversFilter(b, a)) {
      // Mutual covering means the same topic set.
      if (IsValidTopicName(t) && FilterMatchesTopic(b, t)) {
        FUZZ_CHECK(FilterMatchesTopic(a, t), "equivalent filters disagree");
      }
    }
  }
}

class Attributes final : public acl::AttributeSource {
 public:
  explicit Attributes(std::map<std::string, std::string> values) : values_(std::move(values)) {}
  std::optional<absl::string_view> Attribute(absl::string_view name) const override {
    auto it = values_.find(std::string(name));
    if (it == values_.end()) return std::nullopt;
    return absl::string_view(it->second);
  }

 private:
  std::map<std::string, std::string> values_;
};

// CheckPattern returns the substituted filter, or "" when the pattern or a value is refused.
std::string CheckPattern(absl::string_view text, absl::string_view client_id,
                         absl::string_view username, absl::string_view values) {
  absl::StatusOr<acl::TopicPattern> pattern = acl::TopicPattern::Parse(text);
  if (!pattern.ok()) {
    FUZZ_CHECK(absl::IsInvalidArgument(pattern.status()), "Parse failure code");
    return "";
  }
  FUZZ_CHECK(pattern->text() == text, "text() is not the input");
  FUZZ_CHECK(text.size() <= acl::kMaxPatternSize, "an oversized pattern parsed");
  const std::vector<std::string> value_list = absl::StrSplit(values, ',');
  std::map<std::string, std::string> attrs;
  std::map<std::string, std::string> attrs_map;  // for MapAttributeSource
  for (size_t i = 0; i < pattern->attributes().size() && i < value_list.size(); ++i) {
    if (value_list[i].empty()) continue;
    attrs[pattern->attributes()[i]] = value_list[i];
  }
  const Attributes source(attrs);
  const acl::MapAttributeSource map_source(attrs);
  acl::Substitutions subs{client_id, username, &source};
  absl::StatusOr<std::string> out = pattern->Substitute(subs);
  acl::Substitutions map_subs{client_id, username, &map_source};
  absl::StatusOr<std::string> out2 = pattern->Substitute(map_subs);
  FUZZ_CHECK(out.ok() == out2.ok() && (!out.ok() || *out == *out2),
             "MapAttributeSource substitutes differently");
  if (!out.ok()) {
    FUZZ_CHECK(absl::IsFailedPrecondition(out.status()), "Substitute failure code");
    return "";
  }
  const std::string& f = *out;
  // A substituted value can never widen the rule, change its level structure or reach the
  // broker's '$' topics.
  FUZZ_CHECK(IsValidTopicFilter(f), "substitution made an invalid filter");
  FUZZ_CHECK(Count(f, '/') == Count(text, '/'), "substitution added or removed a level");
  FUZZ_CHECK(Count(f, '+') == Count(text, '+'), "substitution added a '+'");
  FUZZ_CHECK(Count(f, '#') == Count(text, '#'), "substitution added a '#'");
  FUZZ_CHECK(f[0] != '$' || text[0] == '$', "substitution reached a '$' topic");
  if (!pattern->has_substitutions()) {
    FUZZ_CHECK(f == absl::StrReplaceAll(text, {{"%%", "%"}}), "a plain pattern changed");
  }
  // Without substitutions the pattern ignores its principal.
  if (!pattern->has_substitutions()) {
    acl::Substitutions none{"", "", nullptr};
    absl::StatusOr<std::string> same = pattern->Substitute(none);
    FUZZ_CHECK(same.ok() && *same == f, "a plain pattern depends on the principal");
  }
  return f;
}

void CheckEvaluate(const std::vector<acl::ResolvedRule>& rules, absl::string_view x) {
  std::vector<acl::RuleView> views;
  for (const acl::ResolvedRule& r : rules) views.push_back({r.filter, r.access});
  for (const acl::Operation op :
       {acl::Operation::kPublish, acl::Operation::kSubscribe, acl::Operation::kReceive}) {
    const acl::Decision d = acl::Evaluate(rules, op, x);
    const acl::Decision dv = acl::Evaluate(absl::MakeConstSpan(views), op, x);
    FUZZ_CHECK(d.allowed == dv.allowed && d.rule_index == dv.rule_index && d.reason == dv.reason,
               "Evaluate over views decides differently");
    FUZZ_CHECK(!acl::ReasonText(d.reason).empty(), "reason text");
    const bool subscribe = op == acl::Operation::kSubscribe;
    const bool valid = subscribe ? IsValidTopicFilter(x) : IsValidTopicName(x);
    if (!valid) {
      FUZZ_CHECK(!d.allowed && d.reason == acl::Decision::Reason::kMalformedInput,
                 "malformed input not refused as such");
      continue;
    }
    FUZZ_CHECK(d.allowed == (d.reason == acl::Decision::Reason::kAllowed), "allowed vs reason");
    if (d.reason == acl::Decision::Reason::kNoMatchingRule) {
      FUZZ_CHECK(d.rule_index == -1, "no rule but an index");
      continue;
    }
    FUZZ_CHECK(d.rule_index >= 0 && static_cast<size_t>(d.rule_index) < rules.size(),
               "rule index out of range");
    const acl::ResolvedRule& r = rules[static_cast<size_t>(d.rule_index)];
    const bool applies = subscribe ? FilterCoversFilter(r.filter, x) : FilterMatchesTopic(r.filter, x);
    FUZZ_CHECK(applies, "the deciding rule does not apply");
    if (d.reason == acl::Decision::Reason::kDenyRule) {
      FUZZ_CHECK(r.access == acl::Access::kDeny, "denied by a rule that is not DENY");
    } else {
      FUZZ_CHECK(r.access != acl::Access::kDeny, "allowed by a DENY rule");
      // Deny wins: no DENY rule applies.
      for (const acl::ResolvedRule& other : rules) {
        if (other.access != acl::Access::kDeny) continue;
        FUZZ_CHECK(!(subscribe ? FilterCoversFilter(other.filter, x)
                               : FilterMatchesTopic(other.filter, x)),
                   "allowed although a DENY rule applies");
      }
    }
  }
  std::vector<acl::ResolvedRule> sorted = rules;
  std::sort(sorted.begin(), sorted.end(), acl::RuleOrder);
  for (size_t i = 1; i < sorted.size(); ++i) {
    FUZZ_CHECK(!acl::RuleOrder(sorted[i], sorted[i - 1]), "RuleOrder is not an order");
  }
}

}  // namespace
}  // namespace fleetca::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace fleetca;
  const std::vector<absl::string_view> f = fuzz::Fields(fuzz::AsView(data, size), 6);
  const absl::string_view a = f[0];
  const absl::string_view b = f.size() > 1 ? f[1] : absl::string_view();
  fuzz::CheckValidation(a);
  fuzz::CheckValidation(b);
  fuzz::CheckPair(a, b);
  fuzz::CheckPair(b, a);
  std::string substituted;
  if (f.size() > 2) {
    substituted = fuzz::CheckPattern(f[2], f.size() > 3 ? f[3] : "", f.size() > 4 ? f[4] : "",
                                     f.size() > 5 ? f[5] : "");
  }
  std::vector<acl::ResolvedRule> rules;
  const auto access = [](size_t n) { return static_cast<acl::Access>(1 + n % 5); };
  if (acl::IsValidTopicFilter(a)) rules.push_back({std::string(a), access(size)});
  if (!substituted.empty()) rules.push_back({substituted, access(size / 5)});
  rules.push_back({"#", access(size / 25)});
  fuzz::CheckEvaluate(rules, b);
  return 0;
}
