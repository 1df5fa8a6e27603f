#pragma once

// DeviceStore: the narrow storage interface of the device registry, on plain structs.
// Inputs are validated by the caller (server/registry); the store enforces what only the
// database can (uniqueness, existence, versions, the decommissioned state) atomically.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "storage/journal.h"

namespace fleetca::storage {

enum class DeviceStatus { kActive, kSuspended, kDecommissioned };

// DeviceStatusName returns the database spelling: "active", "suspended", "decommissioned".
const char* DeviceStatusName(DeviceStatus status);
// DeviceStatusFromName parses it (INTERNAL for an unknown spelling: read from the database).
absl::StatusOr<DeviceStatus> DeviceStatusFromName(const std::string& name);

struct Device {
  std::string comm_id;
  DeviceStatus status = DeviceStatus::kActive;
  std::string status_reason;
  std::string display_name;
  std::map<std::string, std::string> attributes;
  std::vector<std::string> groups;  // sorted, unique
  int64_t version = 0;              // starts at 1, +1 per change
  absl::Time create_time;
  absl::Time update_time;
};

// Filters of List; empty members match everything.
struct DeviceFilter {
  std::optional<DeviceStatus> status;
  std::string comm_id_prefix;
  std::string group;
  std::map<std::string, std::string> attributes;  // all must match exactly
};

// The fields an update replaces (absent: unchanged).
struct DeviceUpdate {
  std::optional<std::string> display_name;
  std::optional<std::map<std::string, std::string>> attributes;
  std::optional<std::vector<std::string>> groups;
};

class DeviceStore {
 public:
  virtual ~DeviceStore() = default;

  // Create registers one device. ALREADY_EXISTS when the comm-ID is taken.
  virtual absl::StatusOr<Device> Create(const Device& device, const RequestContext& ctx) = 0;

  // CreateBatch registers devices (distinct comm-IDs) in one transaction. Returns one
  // status per input: OK, or ALREADY_EXISTS for a comm-ID registered before. The call fails
  // as a whole (nothing registered) only for database errors.
  virtual absl::StatusOr<std::vector<absl::Status>> CreateBatch(const std::vector<Device>& devices,
                                                                const RequestContext& ctx) = 0;

  // Get returns one device. NOT_FOUND when unknown.
  virtual absl::StatusOr<Device> Get(const std::string& comm_id) = 0;

  // List returns up to `limit` devices with comm_id > after (byte order), ordered by comm_id.
  virtual absl::StatusOr<std::vector<Device>> List(const DeviceFilter& filter,
                                                   const std::string& after, int limit) = 0;

  // Update replaces the fields set in `update`. NOT_FOUND when unknown; ABORTED when
  // expected_version is set and differs from the stored version.
  virtual absl::StatusOr<Device> Update(const std::string& comm_id, const DeviceUpdate& update,
                                        std::optional<int64_t> expected_version,
                                        const RequestContext& ctx) = 0;

  // SetStatus changes the status (a no-op when unchanged). NOT_FOUND, ABORTED as Update;
  // FAILED_PRECONDITION when the device is decommissioned and status is not.
  virtual absl::StatusOr<Device> SetStatus(const std::string& comm_id, DeviceStatus status,
                                           const std::string& reason,
                                           std::optional<int64_t> expected_version,
                                           const RequestContext& ctx) = 0;

  // Delete removes a device. NOT_FOUND, ABORTED as Update; FAILED_PRECONDITION when
  // certificates reference it.
  virtual absl::Status Delete(const std::string& comm_id, std::optional<int64_t> expected_version,
                              const RequestContext& ctx) = 0;
};

}  // namespace fleetca::storage
