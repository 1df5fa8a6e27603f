#pragma once

// Registry: the device registry's use cases over a DeviceStore. It validates every input
// (INVALID_ARGUMENT naming the field), turns etags and page tokens into store arguments, and
// leaves atomic checks (exists, version, decommissioned) to the store.

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "storage/device_store.h"

namespace fleetca::registry {

struct ListDevicesQuery {
  storage::DeviceFilter filter;
  int page_size = 0;       // 0: default; negative: INVALID_ARGUMENT
  std::string page_token;  // from a previous ListDevicesPage
};

struct ListDevicesPage {
  std::vector<storage::Device> devices;
  std::string next_page_token;  // empty on the last page
};

// Outcome of one batch item: OK, INVALID_ARGUMENT or ALREADY_EXISTS.
struct BatchItemResult {
  absl::Status status;
};

class Registry {
 public:
  explicit Registry(storage::DeviceStore& store) : store_(store) {}

  // Register validates and stores one device (status defaults to active).
  absl::StatusOr<storage::Device> Register(storage::Device device,
                                           const RequestContext& ctx);

  // RegisterBatch registers up to 10,000 devices in one transaction; one result per item.
  // Bad items and comm-IDs repeated within the batch (after their first occurrence) fail on
  // their own; the rest are registered. INVALID_ARGUMENT for an empty or oversized batch;
  // the store's error when the transaction fails (then nothing is registered).
  absl::StatusOr<std::vector<BatchItemResult>> RegisterBatch(std::vector<storage::Device> devices,
                                                             const RequestContext& ctx);

  absl::StatusOr<storage::Device> Get(const std::string& comm_id);

  // List returns one page. A page token only works with the filters it was issued for.
  absl::StatusOr<ListDevicesPage> List(const ListDevicesQuery& query);

  // Update replaces the fields named in `fields` (display_name, attributes, groups) with
  // those of `device`. etag: empty or a value read before (stale: ABORTED).
  absl::StatusOr<storage::Device> Update(const storage::Device& device,
                                         const std::vector<std::string>& fields,
                                         const std::string& etag,
                                         const RequestContext& ctx);

  absl::StatusOr<storage::Device> SetStatus(const std::string& comm_id,
                                            std::optional<storage::DeviceStatus> status,
                                            const std::string& reason, const std::string& etag,
                                            const RequestContext& ctx);

  absl::Status Delete(const std::string& comm_id, const std::string& etag,
                      const RequestContext& ctx);

 private:
  storage::DeviceStore& store_;
};

// Etag returns the etag of a stored device version.
std::string Etag(int64_t version);

// ParseEtag turns an etag back into a version; "" means none. INVALID_ARGUMENT (naming
// `field`) when malformed.
absl::StatusOr<std::optional<int64_t>> ParseEtag(absl::string_view field, absl::string_view etag);

}  // namespace fleetca::registry
