#pragma once

// PolicyIndex: the broker policy in memory, for the authorization queries brokers make
// per connection and per topic (BrokerAuthService): every device's status, groups and
// attributes, every identity's status, the ACL profiles and their assignments. Loaded
// once, then kept current from the change log (Refresh, on a thread of the caller's, woken
// by NOTIFY fleetca_changes): a decision never waits for the database, and reflects every
// change committed up to the revision it reports.
//
// Consistency: Load reads the change log's head first, then every table (each row at its
// state then or later); Refresh re-reads the current state of every key changed after that
// head. Re-reading is idempotent, so the index converges on the database whatever
// interleaving happened during the load.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "acl/policy.h"
#include "server/policy/policy.h"
#include "storage/acl_store.h"
#include "storage/change_log.h"
#include "storage/device_store.h"
#include "storage/identity_store.h"

namespace fleetca::policy {

// Why CheckTopic refused (TopicDenyReason).
enum class TopicVerdict { kAllowed, kNoMatchingRule, kDenyRule, kPrincipalUnknown, kPrincipalInactive };

struct TopicAnswer {
  TopicVerdict verdict = TopicVerdict::kNoMatchingRule;
  std::optional<EffectiveRule> matched;  // the rule that decided, if one did
  int64_t revision = 0;                  // the change-log revision the answer reflects
};

class PolicyIndex {
 public:
  PolicyIndex(storage::DeviceStore& devices, storage::IdentityStore& identities,
              storage::AclStore& acls, storage::ChangeLogReader& log)
      : devices_store_(devices), identities_store_(identities), acl_store_(acls), log_(log) {}

  // Load reads everything (replacing what is held). Then the index answers.
  absl::Status Load();
  // Refresh applies the changes committed since the last Load or Refresh; returns how many
  // changes it read. FAILED_PRECONDITION before Load.
  absl::StatusOr<int> Refresh();

  bool loaded() const;
  int64_t revision() const;

  // CheckTopic decides op on topic (a filter for kSubscribe) for a device (comm-ID) or an
  // identity (name), per AclService's evaluation. UNAVAILABLE until loaded. The topic must
  // be valid (the caller says INVALID_ARGUMENT otherwise; here it is denied).
  absl::StatusOr<TopicAnswer> CheckTopic(PrincipalType type, const std::string& id,
                                         acl::Operation op, absl::string_view topic) const;

  // Resolve: the principal's effective rules as the index holds them (ResolveAcl's answer
  // from memory). NOT_FOUND for an unknown principal; UNAVAILABLE until loaded.
  absl::StatusOr<Resolution> Resolve(PrincipalType type, const std::string& id) const;

  // Sizes, for logs and metrics.
  struct Counts {
    size_t devices = 0, identities = 0, profiles = 0, assignments = 0;
  };
  Counts counts() const;

 private:
  struct DeviceEntry {
    bool active = false;
    std::vector<std::string> groups;
    std::map<std::string, std::string> attributes;
  };
  // A profile with its patterns parsed once (not on every decision).
  struct HeldProfile {
    storage::AclProfileRow row;
    std::vector<std::optional<acl::TopicPattern>> parsed;
  };
  static HeldProfile Hold(storage::AclProfileRow row);
  // Assignments by subject ("<subject type name>\n<subject id>"), each with its profiles.
  using AssignmentMap =
      absl::flat_hash_map<std::string, std::vector<storage::AclAssignmentRow>>;

  static std::string SubjectKey(storage::AclSubject type, absl::string_view id);
  // Re-reads one changed key into the maps (mu_ held for writing).
  absl::Status Reload(const storage::ChangeRow& change) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status ReloadAssignment(const std::string& key) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // ResolveLocked: false when the principal is unknown.
  bool ResolveLocked(PrincipalType type, const std::string& id, Resolution* out) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);

  storage::DeviceStore& devices_store_;
  storage::IdentityStore& identities_store_;
  storage::AclStore& acl_store_;
  storage::ChangeLogReader& log_;

  mutable absl::Mutex mu_;
  bool loaded_ ABSL_GUARDED_BY(mu_) = false;
  int64_t revision_ ABSL_GUARDED_BY(mu_) = 0;
  absl::flat_hash_map<std::string, DeviceEntry> devices_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, bool> identities_ ABSL_GUARDED_BY(mu_);  // name -> active
  absl::flat_hash_map<std::string, HeldProfile> profiles_ ABSL_GUARDED_BY(mu_);
  AssignmentMap assignments_ ABSL_GUARDED_BY(mu_);
};

}  // namespace fleetca::policy
