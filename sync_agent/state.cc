#include "sync_agent/state.h"

#include "absl/strings/str_cat.h"

namespace fleetca::sync_agent {
namespace {

std::tuple<int, std::string, std::string> AssignmentKey(const v1::AclAssignment& a) {
  return {static_cast<int>(a.subject_type()), a.subject_id(), a.profile_name()};
}

// Upsert sets map[key] = object, or erases key when deleted.
template <typename Map, typename Key, typename Object>
void Upsert(Map& map, Key key, const Object& object, bool deleted) {
  if (deleted) {
    map.erase(key);
  } else {
    map.insert_or_assign(std::move(key), object);
  }
}

}  // namespace

size_t PolicyState::ObjectCount() const {
  return issuers.size() + crls.size() + devices.size() + identities.size() + certificates.size() +
         acl_profiles.size() + acl_assignments.size();
}

bool PolicyState::Apply(const v1::SyncChange& change) { return ApplyChange(change, this); }

bool ApplyChange(const v1::SyncChange& change, PolicyState* state) {
  const bool deleted = change.deleted();
  switch (change.object_case()) {
    case v1::SyncChange::kIssuer:
      Upsert(state->issuers, change.issuer().issuer_id(), change.issuer(), deleted);
      return true;
    case v1::SyncChange::kCrl:
      Upsert(state->crls, change.crl().issuer_id(), change.crl(), deleted);
      return true;
    case v1::SyncChange::kDevice:
      Upsert(state->devices, change.device().comm_id(), change.device(), deleted);
      return true;
    case v1::SyncChange::kIdentity:
      Upsert(state->identities, change.identity().name(), change.identity(), deleted);
      return true;
    case v1::SyncChange::kCertificate:
      Upsert(state->certificates,
             std::make_pair(change.certificate().issuer_id(), change.certificate().serial()),
             change.certificate(), deleted);
      return true;
    case v1::SyncChange::kAclProfile:
      Upsert(state->acl_profiles, change.acl_profile().name(), change.acl_profile(), deleted);
      return true;
    case v1::SyncChange::kAclAssignment:
      Upsert(state->acl_assignments, AssignmentKey(change.acl_assignment()),
             change.acl_assignment(), deleted);
      return true;
    case v1::SyncChange::OBJECT_NOT_SET:
      return false;
  }
  return false;
}

}  // namespace fleetca::sync_agent
