#pragma once

// CompiledRules: a connected client's effective rules as its ACL checks read them, in one
// allocation (the rule views, then the filters' text): a check follows one pointer from the
// client's entry, instead of a vector and a string per rule. Move-only.

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/strings/string_view.h"
#include "acl/policy.h"

namespace fleetca::plugin {

class CompiledRules {
 public:
  CompiledRules() = default;
  explicit CompiledRules(const std::vector<acl::ResolvedRule>& rules);

  // Evaluate decides as acl::Evaluate over the rules it was made from.
  acl::Decision Evaluate(acl::Operation op, absl::string_view topic_or_filter) const {
    return acl::Evaluate(absl::MakeConstSpan(views(), count_), op, topic_or_filter);
  }

  size_t size() const { return count_; }

 private:
  const acl::RuleView* views() const {
    return reinterpret_cast<const acl::RuleView*>(block_.get());
  }

  std::unique_ptr<unsigned char[]> block_;
  size_t count_ = 0;
};

}  // namespace fleetca::plugin
