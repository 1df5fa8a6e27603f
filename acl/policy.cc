#include "acl/policy.h"

#include <cstddef>

#include "acl/topic.h"

namespace fleetca::acl {
namespace {

// Grants reports whether a non-DENY rule with this access allows the operation (AclAccess).
bool Grants(Access access, Operation op) {
  switch (op) {
    case Operation::kPublish:
      return access == Access::kWrite || access == Access::kReadWrite;
    case Operation::kReceive:
      return access == Access::kRead || access == Access::kReadWrite;
    case Operation::kSubscribe:
      return access == Access::kRead || access == Access::kReadWrite ||
             access == Access::kSubscribe;
  }
  return false;
}

// EvaluateRules: Evaluate over any sequence of rules with .filter and .access.
template <typename Rules>
Decision EvaluateRules(const Rules& rules, Operation op, absl::string_view topic_or_filter) {
  // The matchers assume valid input; a broker passing anything else is refused here, so a
  // malformed topic can never slip past a DENY rule by failing to match it.
  bool valid;
  switch (op) {
    case Operation::kPublish:
    case Operation::kReceive:
      valid = IsValidTopicName(topic_or_filter);
      break;
    case Operation::kSubscribe:
      valid = IsValidTopicFilter(topic_or_filter);
      break;
    default:
      valid = false;  // an Operation value outside the enum
      break;
  }
  if (!valid) return {false, -1, Decision::Reason::kMalformedInput};

  // One pass: the first DENY that matches decides at once (deny wins, whatever its place);
  // the first granting match is remembered, and later granting rules need no matching.
  int granted_by = -1;
  for (size_t i = 0; i < rules.size(); ++i) {
    const auto& rule = rules[i];
    const bool deny = rule.access == Access::kDeny;
    if (!deny && (granted_by >= 0 || !Grants(rule.access, op))) continue;
    const bool matches = op == Operation::kSubscribe
                             ? FilterCoversFilter(rule.filter, topic_or_filter)
                             : FilterMatchesTopic(rule.filter, topic_or_filter);
    if (!matches) continue;
    if (deny) return {false, static_cast<int>(i), Decision::Reason::kDenyRule};
    granted_by = static_cast<int>(i);
  }
  if (granted_by >= 0) return {true, granted_by, Decision::Reason::kAllowed};
  return {false, -1, Decision::Reason::kNoMatchingRule};
}

}  // namespace

bool RuleOrder(const ResolvedRule& x, const ResolvedRule& y) {
  const bool dx = x.access == Access::kDeny;
  const bool dy = y.access == Access::kDeny;
  if (dx != dy) return dx;
  if (x.filter != y.filter) return x.filter < y.filter;
  return x.access < y.access;
}

absl::string_view ReasonText(Decision::Reason reason) {
  switch (reason) {
    case Decision::Reason::kAllowed:
      return "allowed by a rule";
    case Decision::Reason::kDenyRule:
      return "denied by a DENY rule";
    case Decision::Reason::kNoMatchingRule:
      return "no rule grants the operation";
    case Decision::Reason::kMalformedInput:
      return "malformed topic or filter";
  }
  return "unknown reason";
}

Decision Evaluate(const std::vector<ResolvedRule>& rules, Operation op,
                  absl::string_view topic_or_filter) {
  return EvaluateRules(rules, op, topic_or_filter);
}

Decision Evaluate(absl::Span<const RuleView> rules, Operation op,
                  absl::string_view topic_or_filter) {
  return EvaluateRules(rules, op, topic_or_filter);
}

}  // namespace fleetca::acl
