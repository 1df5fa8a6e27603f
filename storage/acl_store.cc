#include "storage/acl_store.h"

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

}  // namespace fleetca::storage
