#include "plugin/compiled_rules.h"

#include <cstring>
#include <new>

namespace fleetca::plugin {

CompiledRules::CompiledRules(const std::vector<acl::ResolvedRule>& rules) : count_(rules.size()) {
  if (rules.empty()) return;
  size_t text = 0;
  for (const acl::ResolvedRule& rule : rules) text += rule.filter.size();
  const size_t head = sizeof(acl::RuleView) * rules.size();
  // new[] of unsigned char is aligned for any fundamental type, RuleView included.
  block_.reset(new unsigned char[head + text]);
  unsigned char* out = block_.get() + head;
  for (size_t i = 0; i < rules.size(); ++i) {
    const acl::ResolvedRule& rule = rules[i];
    if (!rule.filter.empty()) std::memcpy(out, rule.filter.data(), rule.filter.size());
    new (block_.get() + i * sizeof(acl::RuleView)) acl::RuleView{
        absl::string_view(reinterpret_cast<const char*>(out), rule.filter.size()), rule.access};
    out += rule.filter.size();
  }
}

}  // namespace fleetca::plugin
