#pragma once

// AclStore: ACL profiles (named sets of topic rules) and their assignments to subjects
// (AclService, proto/fleetca/v1/acl.proto), on plain structs. Inputs are validated by the
// caller (server/acl: rule patterns parsed as MQTT topic filters, names, sizes); the store
// enforces what only the database can, atomically: uniqueness, existence, versions, the
// built-in profiles, no deletion of an assigned profile. Every change commits with its
// audit entry and a change-log revision (entity "acl_profile": the profile name;
// "acl_assignment": "<subject_type>/<subject_id>/<profile>"), which brokers follow.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "storage/journal.h"

namespace fleetca::storage {

// AclRuleAccess: the database spelling of AclAccess ("read", "write", "readwrite",
// "subscribe", "deny").
enum class AclRuleAccess { kRead, kWrite, kReadWrite, kSubscribe, kDeny };
const char* AclRuleAccessName(AclRuleAccess access);
std::optional<AclRuleAccess> AclRuleAccessFromName(const std::string& name);

struct AclRuleRow {
  std::string pattern;  // a valid topic pattern (acl::TopicPattern::Parse)
  AclRuleAccess access = AclRuleAccess::kRead;
};

struct AclProfileRow {
  std::string name;
  std::string description;
  std::vector<AclRuleRow> rules;
  bool builtin = false;
  int64_t version = 0;  // starts at 1, +1 per change: the etag
  absl::Time create_time;
  absl::Time update_time;
};

// AclSubject: the database spelling of AclSubjectType ("device", "group", "identity",
// "all_devices").
enum class AclSubject { kDevice, kGroup, kIdentity, kAllDevices };
const char* AclSubjectName(AclSubject subject);
std::optional<AclSubject> AclSubjectFromName(const std::string& name);

struct AclAssignmentRow {
  AclSubject subject_type = AclSubject::kDevice;
  std::string subject_id;  // empty for kAllDevices
  std::string profile_name;
  absl::Time create_time;
};

// AssignmentKey: an assignment's change-log key, "<subject_type>/<subject_id>/<profile>"
// (no part can hold a '/'); ParseAssignmentKey reverses it (nullopt for a malformed key).
std::string AssignmentKey(const AclAssignmentRow& a);
std::optional<AclAssignmentRow> ParseAssignmentKey(const std::string& key);

// Filters of ListAssignments; empty members match everything.
struct AclAssignmentFilter {
  std::optional<AclSubject> subject_type;
  std::string subject_id;
  std::string profile_name;
};

// The fields UpdateProfile replaces (absent: unchanged).
struct AclProfileUpdate {
  std::optional<std::string> description;
  std::optional<std::vector<AclRuleRow>> rules;
};

class AclStore {
 public:
  virtual ~AclStore() = default;

  // CreateProfile adds a profile (builtin ignored: always false). ALREADY_EXISTS when the
  // name is taken.
  virtual absl::StatusOr<AclProfileRow> CreateProfile(const AclProfileRow& profile,
                                                      const RequestContext& ctx) = 0;
  // GetProfile returns one profile. NOT_FOUND when unknown.
  virtual absl::StatusOr<AclProfileRow> GetProfile(const std::string& name) = 0;
  // ListProfiles returns up to `limit` profiles with name > after (byte order), by name.
  virtual absl::StatusOr<std::vector<AclProfileRow>> ListProfiles(const std::string& after,
                                                                  int limit) = 0;
  // UpdateProfile replaces the fields set in `update`. NOT_FOUND when unknown; ABORTED when
  // expected_version is set and differs from the stored version.
  virtual absl::StatusOr<AclProfileRow> UpdateProfile(const std::string& name,
                                                      const AclProfileUpdate& update,
                                                      std::optional<int64_t> expected_version,
                                                      const RequestContext& ctx) = 0;
  // DeleteProfile removes a profile. NOT_FOUND, ABORTED as UpdateProfile;
  // FAILED_PRECONDITION for a built-in profile or one still assigned.
  virtual absl::Status DeleteProfile(const std::string& name,
                                     std::optional<int64_t> expected_version,
                                     const RequestContext& ctx) = 0;

  // Assign assigns a profile to a subject; returns the assignment and whether it existed
  // already (then nothing is written). NOT_FOUND for an unknown profile, device (kDevice)
  // or identity (kIdentity).
  virtual absl::StatusOr<std::pair<AclAssignmentRow, bool>> Assign(
      const AclAssignmentRow& assignment, const RequestContext& ctx) = 0;
  // Unassign removes an assignment. NOT_FOUND when it does not exist.
  virtual absl::Status Unassign(const AclAssignmentRow& assignment, const RequestContext& ctx) = 0;
  // ListAssignments returns up to `limit` assignments after the key `after` (subject_type
  // name, subject_id, profile_name; byte order; nullopt: from the start), in that order.
  virtual absl::StatusOr<std::vector<AclAssignmentRow>> ListAssignments(
      const AclAssignmentFilter& filter, const std::optional<AclAssignmentRow>& after,
      int limit) = 0;
};

}  // namespace fleetca::storage
