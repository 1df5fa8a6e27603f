#include "server/policy/policy.h"

#include <algorithm>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "acl/pattern.h"
#include "common/page_token.h"
#include "common/status_macros.h"
#include "server/registry/registry.h"
#include "server/registry/validation.h"

namespace fleetca::policy {
namespace {

using storage::AclAssignmentRow;
using storage::AclProfileRow;
using storage::AclSubject;

constexpr char kProfilesToken[] = "acl-profiles";
constexpr char kAssignmentsToken[] = "acl-assignments";

absl::Status ValidateSubject(absl::string_view field, const AclAssignmentRow& a) {
  const std::string id_field = absl::StrCat(field, ".subject_id");
  switch (a.subject_type) {
    case AclSubject::kAllDevices:
      if (!a.subject_id.empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat(id_field, ": must be empty for ACL_SUBJECT_TYPE_ALL_DEVICES"));
      }
      return absl::OkStatus();
    case AclSubject::kDevice:
      return registry::ValidateCommId(id_field, a.subject_id);
    case AclSubject::kGroup:
      return registry::ValidateGroupName(id_field, a.subject_id);
    case AclSubject::kIdentity:
      return ValidateProfileName(id_field, a.subject_id);
  }
  return absl::InvalidArgumentError(absl::StrCat(field, ".subject_type: unknown value"));
}

// Assignment keys in page tokens: "<subject type>\n<subject id>\n<profile>" (none of them
// can hold a newline: validated above).
std::string PageTokenKey(const AclAssignmentRow& a) {
  return absl::StrCat(storage::AclSubjectName(a.subject_type), "\n", a.subject_id, "\n",
                      a.profile_name);
}

std::string AssignmentFilters(const storage::AclAssignmentFilter& f) {
  return absl::StrCat(f.subject_type ? storage::AclSubjectName(*f.subject_type) : "", "\n",
                      f.subject_id, "\n", f.profile_name);
}

}  // namespace

acl::Access ToAccess(storage::AclRuleAccess access) {
  switch (access) {
    case storage::AclRuleAccess::kRead:
      return acl::Access::kRead;
    case storage::AclRuleAccess::kWrite:
      return acl::Access::kWrite;
    case storage::AclRuleAccess::kReadWrite:
      return acl::Access::kReadWrite;
    case storage::AclRuleAccess::kSubscribe:
      return acl::Access::kSubscribe;
    case storage::AclRuleAccess::kDeny:
      return acl::Access::kDeny;
  }
  return acl::Access::kDeny;
}

absl::Status ValidateProfileName(absl::string_view field, absl::string_view name) {
  // Profiles, identities and groups share one naming rule (migration 0001:
  // ^[a-z0-9][a-z0-9._-]{0,62}$); the registry's check for group names is it.
  return registry::ValidateGroupName(field, name);
}

absl::Status ValidateRules(absl::string_view field, const std::vector<storage::AclRuleRow>& rules) {
  if (rules.size() > kMaxRules) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": at most ", kMaxRules, " rules, got ", rules.size()));
  }
  for (size_t i = 0; i < rules.size(); ++i) {
    auto parsed = acl::TopicPattern::Parse(rules[i].pattern);
    if (!parsed.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, "[", i, "].topic_pattern: ", parsed.status().message()));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<AclProfileRow> Policy::CreateProfile(const AclProfileRow& profile,
                                                    const RequestContext& ctx) {
  RETURN_IF_ERROR(ValidateProfileName("profile.name", profile.name));
  RETURN_IF_ERROR(
      registry::ValidateFreeText("profile.description", profile.description, kMaxDescriptionBytes));
  RETURN_IF_ERROR(ValidateRules("profile.rules", profile.rules));
  return store_.CreateProfile(profile, ctx);
}

absl::StatusOr<AclProfileRow> Policy::GetProfile(const std::string& name) {
  RETURN_IF_ERROR(ValidateProfileName("name", name));
  return store_.GetProfile(name);
}

absl::StatusOr<ListProfilesPage> Policy::ListProfiles(int page_size, const std::string& page_token) {
  ASSIGN_OR_RETURN(const int size, PageSize(page_size));
  ASSIGN_OR_RETURN(const std::string after, DecodePageToken(kProfilesToken, "", page_token));
  if (!after.empty()) RETURN_IF_ERROR(ValidateProfileName("page_token", after));
  ASSIGN_OR_RETURN(std::vector<AclProfileRow> profiles, store_.ListProfiles(after, size + 1));
  ListProfilesPage page;
  if (profiles.size() > static_cast<size_t>(size)) {
    profiles.resize(size);
    page.next_page_token = EncodePageToken(kProfilesToken, "", profiles.back().name);
  }
  page.profiles = std::move(profiles);
  return page;
}

absl::StatusOr<AclProfileRow> Policy::UpdateProfile(const AclProfileRow& profile,
                                                    const std::vector<std::string>& fields,
                                                    const std::string& etag,
                                                    const RequestContext& ctx) {
  RETURN_IF_ERROR(ValidateProfileName("profile.name", profile.name));
  if (fields.empty()) {
    return absl::InvalidArgumentError("update_mask: name at least one of description, rules");
  }
  storage::AclProfileUpdate update;
  for (const std::string& f : fields) {
    if (f == "description") {
      RETURN_IF_ERROR(registry::ValidateFreeText("profile.description", profile.description,
                                                 kMaxDescriptionBytes));
      update.description = profile.description;
    } else if (f == "rules") {
      RETURN_IF_ERROR(ValidateRules("profile.rules", profile.rules));
      update.rules = profile.rules;
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          "update_mask: ", registry::Quote(f), " cannot be updated (description, rules)"));
    }
  }
  ASSIGN_OR_RETURN(const std::optional<int64_t> version, registry::ParseEtag("etag", etag));
  return store_.UpdateProfile(profile.name, update, version, ctx);
}

absl::Status Policy::DeleteProfile(const std::string& name, const std::string& etag,
                                   const RequestContext& ctx) {
  RETURN_IF_ERROR(ValidateProfileName("name", name));
  ASSIGN_OR_RETURN(const std::optional<int64_t> version, registry::ParseEtag("etag", etag));
  return store_.DeleteProfile(name, version, ctx);
}

absl::StatusOr<std::pair<AclAssignmentRow, bool>> Policy::Assign(const AclAssignmentRow& a,
                                                                 const RequestContext& ctx) {
  RETURN_IF_ERROR(ValidateSubject("assignment", a));
  RETURN_IF_ERROR(ValidateProfileName("assignment.profile_name", a.profile_name));
  return store_.Assign(a, ctx);
}

absl::Status Policy::Unassign(const AclAssignmentRow& a, const RequestContext& ctx) {
  RETURN_IF_ERROR(ValidateSubject("assignment", a));
  RETURN_IF_ERROR(ValidateProfileName("assignment.profile_name", a.profile_name));
  return store_.Unassign(a, ctx);
}

absl::StatusOr<ListAssignmentsPage> Policy::ListAssignments(
    const storage::AclAssignmentFilter& filter, int page_size, const std::string& page_token) {
  ASSIGN_OR_RETURN(const int size, PageSize(page_size));
  if (!filter.profile_name.empty()) {
    RETURN_IF_ERROR(ValidateProfileName("profile_name", filter.profile_name));
  }
  if (filter.subject_id.size() > 64) {
    return absl::InvalidArgumentError("subject_id: at most 64 characters");
  }
  const std::string filters = AssignmentFilters(filter);
  ASSIGN_OR_RETURN(const std::string after_key,
                   DecodePageToken(kAssignmentsToken, filters, page_token));
  std::optional<AclAssignmentRow> after;
  if (!after_key.empty()) {
    const std::vector<std::string> parts = absl::StrSplit(after_key, '\n');
    auto type = parts.size() == 3 ? storage::AclSubjectFromName(parts[0]) : std::nullopt;
    if (!type) return absl::InvalidArgumentError("page_token: malformed");
    after = AclAssignmentRow{*type, parts[1], parts[2], absl::Time()};
  }
  ASSIGN_OR_RETURN(std::vector<AclAssignmentRow> rows,
                   store_.ListAssignments(filter, after, size + 1));
  ListAssignmentsPage page;
  if (rows.size() > static_cast<size_t>(size)) {
    rows.resize(size);
    page.next_page_token = EncodePageToken(kAssignmentsToken, filters, PageTokenKey(rows.back()));
  }
  page.assignments = std::move(rows);
  return page;
}

absl::StatusOr<Resolution> Policy::Resolve(PrincipalType type, const std::string& id) {
  Resolution out;
  out.type = type;
  out.id = id;
  // Who the principal is.
  std::optional<storage::Device> device;
  if (type == PrincipalType::kDevice) {
    RETURN_IF_ERROR(registry::ValidateCommId("principal.id", id));
    ASSIGN_OR_RETURN(device, devices_.Get(id));
    out.active = device->status == storage::DeviceStatus::kActive;
  } else {
    RETURN_IF_ERROR(ValidateProfileName("principal.id", id));
    ASSIGN_OR_RETURN(const storage::IdentityRecord identity, identities_.Get(id));
    out.active = identity.status == "active";
  }

  // The assignments of each subject, in that order.
  std::vector<AclAssignmentRow> assignments;
  for (const auto& [subject_type, subject_id] :
       Subjects(type, id, device ? device->groups : std::vector<std::string>())) {
    storage::AclAssignmentFilter filter;
    filter.subject_type = subject_type;
    filter.subject_id = subject_id;
    std::optional<AclAssignmentRow> after;
    for (;;) {
      ASSIGN_OR_RETURN(std::vector<AclAssignmentRow> rows,
                       store_.ListAssignments(filter, after, kMaxPageSize));
      assignments.insert(assignments.end(), rows.begin(), rows.end());
      if (rows.size() < static_cast<size_t>(kMaxPageSize)) break;
      after = rows.back();
    }
  }
  // Their profiles, each read once.
  std::map<std::string, AclProfileRow> profiles;
  std::vector<AssignedProfile> assigned;
  for (const AclAssignmentRow& a : assignments) {
    auto it = profiles.find(a.profile_name);
    if (it == profiles.end()) {
      auto profile = store_.GetProfile(a.profile_name);
      if (profile.status().code() == absl::StatusCode::kNotFound) continue;  // deleted since
      if (!profile.ok()) return profile.status();
      it = profiles.emplace(a.profile_name, *std::move(profile)).first;
    }
    assigned.push_back({&a, &it->second.rules});
  }
  ResolveRules(id, device ? &device->attributes : nullptr, assigned, &out);
  return out;
}

std::vector<std::pair<AclSubject, std::string>> Subjects(PrincipalType type, const std::string& id,
                                                         const std::vector<std::string>& groups) {
  std::vector<std::pair<AclSubject, std::string>> out;
  if (type == PrincipalType::kIdentity) {
    out.emplace_back(AclSubject::kIdentity, id);
    return out;
  }
  out.emplace_back(AclSubject::kAllDevices, "");
  for (const std::string& g : groups) out.emplace_back(AclSubject::kGroup, g);
  out.emplace_back(AclSubject::kDevice, id);
  return out;
}

std::vector<std::optional<acl::TopicPattern>> ParsePatterns(
    const std::vector<storage::AclRuleRow>& rules) {
  std::vector<std::optional<acl::TopicPattern>> out;
  out.reserve(rules.size());
  for (const storage::AclRuleRow& rule : rules) {
    auto pattern = acl::TopicPattern::Parse(rule.pattern);
    out.push_back(pattern.ok() ? std::optional<acl::TopicPattern>(*std::move(pattern))
                               : std::nullopt);
  }
  return out;
}

void ResolveRules(const std::string& id, const std::map<std::string, std::string>* attributes,
                  const std::vector<AssignedProfile>& profiles, Resolution* out) {
  std::optional<acl::MapAttributeSource> source;
  if (attributes != nullptr) source.emplace(*attributes);
  acl::Substitutions values;
  values.client_id = id;
  values.username = id;
  values.attributes = source ? &*source : nullptr;
  std::set<std::string> seen;
  for (const AssignedProfile& p : profiles) {
    const AclAssignmentRow& a = *p.assignment;
    if (p.rules == nullptr || !seen.insert(a.profile_name).second) continue;
    for (size_t i = 0; i < p.rules->size(); ++i) {
      const storage::AclRuleRow& rule = (*p.rules)[i];
      absl::StatusOr<std::string> filter;
      if (p.parsed != nullptr && i < p.parsed->size()) {
        const std::optional<acl::TopicPattern>& pattern = (*p.parsed)[i];
        filter = pattern ? pattern->Substitute(values)
                         : absl::InvalidArgumentError("the pattern does not parse");
      } else {
        auto pattern = acl::TopicPattern::Parse(rule.pattern);
        filter = pattern.ok() ? pattern->Substitute(values) : pattern.status();
      }
      if (!filter.ok()) {
        out->skipped.push_back(
            {rule.pattern, rule.access, a.profile_name, std::string(filter.status().message())});
        continue;
      }
      EffectiveRule r;
      r.rule = acl::ResolvedRule{*std::move(filter), ToAccess(rule.access)};
      r.pattern = rule.pattern;
      r.profile_name = a.profile_name;
      r.subject_type = a.subject_type;
      r.subject_id = a.subject_id;
      out->rules.push_back(std::move(r));
    }
  }
  out->profile_names.assign(seen.begin(), seen.end());
  std::stable_sort(out->rules.begin(), out->rules.end(),
                   [](const EffectiveRule& x, const EffectiveRule& y) {
                     const bool dx = x.rule.access == acl::Access::kDeny;
                     const bool dy = y.rule.access == acl::Access::kDeny;
                     if (dx != dy) return dx;
                     return x.rule.filter < y.rule.filter;
                   });
}

}  // namespace fleetca::policy
