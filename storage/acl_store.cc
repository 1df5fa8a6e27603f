#include "storage/acl_store.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace fleetca::storage {

const char* AclRuleAccessName(AclRuleAccess access) {
  switch (access) {
    case AclRuleAccess::kRead:
      return "read";
    case AclRuleAccess::kWrite:
      return "write";
    case AclRuleAccess::kReadWrite:
      return "readwrite";
    case AclRuleAccess::kSubscribe:
      return "subscribe";
    case AclRuleAccess::kDeny:
      return "deny";
  }
  return "read";
}

std::optional<AclRuleAccess> AclRuleAccessFromName(const std::string& name) {
  if (name == "read") return AclRuleAccess::kRead;
  if (name == "write") return AclRuleAccess::kWrite;
  if (name == "readwrite") return AclRuleAccess::kReadWrite;
  if (name == "subscribe") return AclRuleAccess::kSubscribe;
  if (name == "deny") return AclRuleAccess::kDeny;
  return std::nullopt;
}

const char* AclSubjectName(AclSubject subject) {
  switch (subject) {
    case AclSubject::kDevice:
      return "device";
    case AclSubject::kGroup:
      return "group";
    case AclSubject::kIdentity:
      return "identity";
    case AclSubject::kAllDevices:
      return "all_devices";
  }
  return "device";
}

std::optional<AclSubject> AclSubjectFromName(const std::string& name) {
  if (name == "device") return AclSubject::kDevice;
  if (name == "group") return AclSubject::kGroup;
  if (name == "identity") return AclSubject::kIdentity;
  if (name == "all_devices") return AclSubject::kAllDevices;
  return std::nullopt;
}

std::string AssignmentKey(const AclAssignmentRow& a) {
  return absl::StrCat(AclSubjectName(a.subject_type), "/", a.subject_id, "/", a.profile_name);
}

std::optional<AclAssignmentRow> ParseAssignmentKey(const std::string& key) {
  const std::vector<std::string> parts = absl::StrSplit(key, '/');
  if (parts.size() != 3) return std::nullopt;
  std::optional<AclSubject> type = AclSubjectFromName(parts[0]);
  if (!type) return std::nullopt;
  AclAssignmentRow a;
  a.subject_type = *type;
  a.subject_id = parts[1];
  a.profile_name = parts[2];
  return a;
}

}  // namespace fleetca::storage
