#pragma once

// PostgreSQL implementation of AclStore (tables acl_profiles and acl_assignments,
// migrations/0001 and 0006).

#include <utility>

#include "storage/acl_store.h"
#include "storage/connection_pool.h"

namespace fleetca::storage {

class PgAclStore final : public AclStore {
 public:
  // pool is borrowed and must outlive the store.
  explicit PgAclStore(ConnectionPool& pool) : pool_(pool) {}

  absl::StatusOr<AclProfileRow> CreateProfile(const AclProfileRow& profile,
                                              const RequestContext& ctx) override;
  absl::StatusOr<AclProfileRow> GetProfile(const std::string& name) override;
  absl::StatusOr<std::vector<AclProfileRow>> ListProfiles(const std::string& after,
                                                          int limit) override;
  absl::StatusOr<AclProfileRow> UpdateProfile(const std::string& name,
                                              const AclProfileUpdate& update,
                                              std::optional<int64_t> expected_version,
                                              const RequestContext& ctx) override;
  absl::Status DeleteProfile(const std::string& name, std::optional<int64_t> expected_version,
                             const RequestContext& ctx) override;

  absl::StatusOr<std::pair<AclAssignmentRow, bool>> Assign(const AclAssignmentRow& assignment,
                                                           const RequestContext& ctx) override;
  absl::Status Unassign(const AclAssignmentRow& assignment, const RequestContext& ctx) override;
  absl::StatusOr<std::vector<AclAssignmentRow>> ListAssignments(
      const AclAssignmentFilter& filter, const std::optional<AclAssignmentRow>& after,
      int limit) override;

 private:
  ConnectionPool& pool_;
};

}  // namespace fleetca::storage
