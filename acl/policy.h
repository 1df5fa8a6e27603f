#pragma once

// Evaluation of a principal's resolved ACL rules (step 4 and "Matching" of the AclService
// comment in proto/fleetca/v1/acl.proto): deny wins, then any granting rule, else deny.

#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace fleetca::acl {

// Access mirrors AclAccess, with the same numbers (1 to 5), so a proto value converts by
// static_cast once it is known to be in range.
enum class Access {
  kRead = 1,       // SUBSCRIBE to covered filters and RECEIVE on matching topics
  kWrite = 2,      // PUBLISH on matching topics
  kReadWrite = 3,  // kRead and kWrite
  kSubscribe = 4,  // SUBSCRIBE only: messages still need a kRead or kReadWrite rule
  kDeny = 5,       // denies all three operations; wins over every other rule
};

// Operation mirrors TopicOperation (broker_auth.proto), with the same numbers.
enum class Operation {
  kPublish = 1,    // the client publishes on a topic name
  kSubscribe = 2,  // the client subscribes to a topic filter
  kReceive = 3,    // a message on a topic name is about to be delivered to the client
};

// ResolvedRule is a rule after substitution (TopicPattern::Substitute): filter must be a
// valid topic filter.
struct ResolvedRule {
  std::string filter;
  Access access;
};

// RuleOrder is the order resolved rules are kept in: DENY first, then by filter, then by
// access (a strict weak ordering for std::sort and std::binary_search).
bool RuleOrder(const ResolvedRule& x, const ResolvedRule& y);

// Decision is the outcome of Evaluate.
struct Decision {
  // Reason mirrors TopicDenyReason where they overlap.
  enum class Reason {
    kAllowed,         // a rule grants the operation and no DENY rule matches
    kDenyRule,        // a DENY rule matches (TOPIC_DENY_REASON_DENY_RULE)
    kNoMatchingRule,  // no rule grants the operation (TOPIC_DENY_REASON_NO_MATCHING_RULE)
    kMalformedInput,  // the topic or filter is not valid MQTT (callers validate first)
  };
  bool allowed = false;
  // rule_index is the index in `rules` of the rule that decided: the first matching DENY
  // rule, or else the first granting rule; -1 for kNoMatchingRule and kMalformedInput.
  int rule_index = -1;
  Reason reason = Reason::kNoMatchingRule;
};

// ReasonText is a short constant description of a reason, for logs ("denied by a DENY
// rule").
absl::string_view ReasonText(Decision::Reason reason);

// Evaluate decides an operation against a principal's rules (order does not matter):
// - kPublish of topic T: denied if a DENY rule's filter matches T; else allowed if a
//   kWrite or kReadWrite rule matches T; else denied.
// - kReceive of topic T: denied if a DENY rule matches T; else allowed if a kRead or
//   kReadWrite rule matches T (kSubscribe alone is not enough); else denied.
// - kSubscribe to filter F: denied if a DENY rule's filter covers F; else allowed if a
//   kRead, kReadWrite or kSubscribe rule covers F; else denied. A DENY rule that only
//   overlaps F does not block the SUBSCRIBE: kReceive filters the messages later.
// A topic (or, for kSubscribe, a filter) that is not valid is denied with kMalformedInput.
// Rule filters are trusted to be valid, as Substitute makes them; a rule with an unknown
// access grants nothing. Never allocates.
Decision Evaluate(const std::vector<ResolvedRule>& rules, Operation op,
                  absl::string_view topic_or_filter);

// RuleView is a ResolvedRule whose filter lives elsewhere (the plugin keeps a client's
// rules in one allocation); Evaluate over views decides exactly as above.
struct RuleView {
  absl::string_view filter;
  Access access;
};
Decision Evaluate(absl::Span<const RuleView> rules, Operation op,
                  absl::string_view topic_or_filter);

}  // namespace fleetca::acl
