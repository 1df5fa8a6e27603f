#pragma once

// Policy: the ACL use cases over an AclStore (AclService, proto/fleetca/v1/acl.proto):
// profiles and their assignments, validated (INVALID_ARGUMENT naming the field, every rule
// pattern parsed as an MQTT topic filter by acl::TopicPattern), and the resolution of a
// device's or an identity's effective rules (ResolveAcl). The in-memory index brokers'
// authorization queries read is built from the same resolution.

#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "acl/pattern.h"
#include "acl/policy.h"
#include "storage/acl_store.h"
#include "storage/device_store.h"
#include "storage/identity_store.h"

namespace fleetca::policy {

inline constexpr size_t kMaxRules = 64;
inline constexpr size_t kMaxDescriptionBytes = 256;

struct ListProfilesPage {
  std::vector<storage::AclProfileRow> profiles;
  std::string next_page_token;
};

struct ListAssignmentsPage {
  std::vector<storage::AclAssignmentRow> assignments;
  std::string next_page_token;
};

enum class PrincipalType { kDevice, kIdentity };

// A rule in effect for one principal, after substitution, and where it comes from.
struct EffectiveRule {
  acl::ResolvedRule rule;  // the substituted filter and the access
  std::string pattern;
  std::string profile_name;
  storage::AclSubject subject_type = storage::AclSubject::kAllDevices;
  std::string subject_id;
};

struct SkippedRule {
  std::string pattern;
  storage::AclRuleAccess access = storage::AclRuleAccess::kRead;
  std::string profile_name;
  std::string reason;  // why the substitution failed, e.g. "attribute site is not set"
};

struct Resolution {
  PrincipalType type = PrincipalType::kDevice;
  std::string id;
  bool active = false;                     // false: denied everything
  std::vector<std::string> profile_names;  // sorted, unique
  std::vector<EffectiveRule> rules;        // DENY first, then by filter
  std::vector<SkippedRule> skipped;
};

// ToAccess: the evaluation's view of a stored access.
acl::Access ToAccess(storage::AclRuleAccess access);

class Policy {
 public:
  Policy(storage::AclStore& store, storage::DeviceStore& devices,
         storage::IdentityStore& identities)
      : store_(store), devices_(devices), identities_(identities) {}

  // CreateProfile validates (field "profile") and stores a new profile.
  absl::StatusOr<storage::AclProfileRow> CreateProfile(const storage::AclProfileRow& profile,
                                                       const RequestContext& ctx);
  absl::StatusOr<storage::AclProfileRow> GetProfile(const std::string& name);
  absl::StatusOr<ListProfilesPage> ListProfiles(int page_size, const std::string& page_token);
  // UpdateProfile replaces the fields named in `fields` ("description", "rules") with those
  // of `profile`. etag: empty or a value read before (stale: ABORTED).
  absl::StatusOr<storage::AclProfileRow> UpdateProfile(const storage::AclProfileRow& profile,
                                                       const std::vector<std::string>& fields,
                                                       const std::string& etag,
                                                       const RequestContext& ctx);
  absl::Status DeleteProfile(const std::string& name, const std::string& etag,
                             const RequestContext& ctx);

  // Assign validates (field "assignment") and stores an assignment; the bool says whether
  // it existed already.
  absl::StatusOr<std::pair<storage::AclAssignmentRow, bool>> Assign(
      const storage::AclAssignmentRow& assignment, const RequestContext& ctx);
  absl::Status Unassign(const storage::AclAssignmentRow& assignment, const RequestContext& ctx);
  absl::StatusOr<ListAssignmentsPage> ListAssignments(const storage::AclAssignmentFilter& filter,
                                                      int page_size,
                                                      const std::string& page_token);

  // Resolve returns the effective rules of a device (comm-ID) or identity (name).
  // NOT_FOUND for an unknown one; INVALID_ARGUMENT (principal.id) for a malformed id.
  absl::StatusOr<Resolution> Resolve(PrincipalType type, const std::string& id);

 private:
  storage::AclStore& store_;
  storage::DeviceStore& devices_;
  storage::IdentityStore& identities_;
};

// A profile in effect for a principal: the assignment that brings it in, and its rules.
struct AssignedProfile {
  const storage::AclAssignmentRow* assignment = nullptr;  // borrowed
  const std::vector<storage::AclRuleRow>* rules = nullptr;  // borrowed
  // The rules' patterns parsed, in the same order (borrowed; the index parses each once);
  // null: parsed here. A pattern that failed to parse is a nullopt.
  const std::vector<std::optional<acl::TopicPattern>>* parsed = nullptr;
};

// Subjects: the subjects whose assignments apply to a principal, in the order profiles are
// collected (AclService's evaluation, step 2): all devices, each of the device's groups,
// the device itself; or the identity's name (groups ignored).
std::vector<std::pair<storage::AclSubject, std::string>> Subjects(
    PrincipalType type, const std::string& id, const std::vector<std::string>& groups);

// ParsePatterns parses each rule's pattern (nullopt for one that does not parse: it is
// skipped with the reason when resolved).
std::vector<std::optional<acl::TopicPattern>> ParsePatterns(
    const std::vector<storage::AclRuleRow>& rules);

// ResolveRules substitutes the rules of `profiles` (in the order given, each profile
// once: the first assignment that brings it in) for a principal whose MQTT client id and
// username are `id` (a device: CN = comm-ID = client id; an identity: its name), with the
// device attributes `attributes` (null for an identity). The one algorithm behind
// ResolveAcl and the brokers' in-memory index. Fills profile_names, rules (DENY first,
// then by filter) and skipped; type, id and active are the caller's.
void ResolveRules(const std::string& id, const std::map<std::string, std::string>* attributes,
                  const std::vector<AssignedProfile>& profiles, Resolution* out);

// ValidateProfileName: 1 to 63 characters of [a-z0-9._-] starting with a letter or digit.
absl::Status ValidateProfileName(absl::string_view field, absl::string_view name);

// ValidateRules: at most 64 rules, each pattern a valid acl::TopicPattern
// ("<field>[i].topic_pattern: ...").
absl::Status ValidateRules(absl::string_view field, const std::vector<storage::AclRuleRow>& rules);

}  // namespace fleetca::policy
