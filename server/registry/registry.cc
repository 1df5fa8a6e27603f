#include "server/registry/registry.h"

#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/page_token.h"
#include "common/status_macros.h"
#include "server/registry/validation.h"

namespace fleetca::registry {
namespace {

using storage::Device;

constexpr char kPageTokenKind[] = "devices";

// Filters: the canonical form that page tokens are bound to.
std::string Filters(const storage::DeviceFilter& f) {
  std::string canon = absl::StrCat(f.status ? storage::DeviceStatusName(*f.status) : "", "\n",
                                   f.comm_id_prefix, "\n", f.group, "\n");
  for (const auto& [k, v] : f.attributes) absl::StrAppend(&canon, k, "=", v, "\n");
  return canon;
}

absl::Status ValidateFilter(const storage::DeviceFilter& f) {
  RETURN_IF_ERROR(ValidateCommIdPrefix("comm_id_prefix", f.comm_id_prefix));
  if (!f.group.empty()) RETURN_IF_ERROR(ValidateGroupName("group", f.group));
  return ValidateAttributes("attribute_filter", f.attributes);
}

}  // namespace

std::string Etag(int64_t version) { return absl::StrCat(version); }

absl::StatusOr<std::optional<int64_t>> ParseEtag(absl::string_view field,
                                                 absl::string_view etag) {
  if (etag.empty()) return std::optional<int64_t>();
  int64_t version = 0;
  if (etag.size() > 20 || !absl::SimpleAtoi(etag, &version) || version < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, ": not an etag returned by fleetca, got ", Quote(etag)));
  }
  return std::optional<int64_t>(version);
}

absl::StatusOr<Device> Registry::Register(Device device, const RequestContext& ctx) {
  RETURN_IF_ERROR(ValidateNewDevice("device", &device));
  return store_.Create(device, ctx);
}

absl::StatusOr<std::vector<BatchItemResult>> Registry::RegisterBatch(
    std::vector<Device> devices, const RequestContext& ctx) {
  if (devices.empty()) {
    return absl::InvalidArgumentError("devices: at least one device is required");
  }
  if (devices.size() > kMaxBatchSize) {
    return absl::InvalidArgumentError(absl::StrCat("devices: at most ", kMaxBatchSize,
                                                   " devices per batch, got ", devices.size()));
  }
  std::vector<BatchItemResult> results(devices.size());
  std::vector<Device> good;
  std::vector<size_t> good_index;
  good.reserve(devices.size());
  good_index.reserve(devices.size());
  std::set<std::string> seen;
  for (size_t i = 0; i < devices.size(); ++i) {
    absl::Status st = ValidateNewDevice(absl::StrCat("devices[", i, "]"), &devices[i]);
    if (st.ok() && !seen.insert(devices[i].comm_id).second) {
      st = absl::AlreadyExistsError(absl::StrCat("devices[", i, "].comm_id: ",
                                                 Quote(devices[i].comm_id),
                                                 " appears earlier in this batch"));
    }
    if (!st.ok()) {
      results[i].status = std::move(st);
      continue;
    }
    good_index.push_back(i);
    good.push_back(std::move(devices[i]));
  }
  if (!good.empty()) {
    ASSIGN_OR_RETURN(std::vector<absl::Status> stored, store_.CreateBatch(good, ctx));
    for (size_t k = 0; k < good.size(); ++k) results[good_index[k]].status = std::move(stored[k]);
  }
  return results;
}

absl::StatusOr<Device> Registry::Get(const std::string& comm_id) {
  RETURN_IF_ERROR(ValidateCommId("comm_id", comm_id));
  return store_.Get(comm_id);
}

absl::StatusOr<ListDevicesPage> Registry::List(const ListDevicesQuery& query) {
  ASSIGN_OR_RETURN(const int page_size, PageSize(query.page_size));
  RETURN_IF_ERROR(ValidateFilter(query.filter));
  ASSIGN_OR_RETURN(std::string after,
                   DecodePageToken(kPageTokenKind, Filters(query.filter), query.page_token));
  if (!after.empty()) RETURN_IF_ERROR(ValidateCommId("page_token", after));
  // One extra row tells whether another page exists, without a COUNT.
  ASSIGN_OR_RETURN(std::vector<Device> devices,
                   store_.List(query.filter, after, page_size + 1));
  ListDevicesPage page;
  if (devices.size() > static_cast<size_t>(page_size)) {
    devices.resize(page_size);
    page.next_page_token =
        EncodePageToken(kPageTokenKind, Filters(query.filter), devices.back().comm_id);
  }
  page.devices = std::move(devices);
  return page;
}

absl::StatusOr<Device> Registry::Update(const Device& device,
                                        const std::vector<std::string>& fields,
                                        const std::string& etag,
                                        const RequestContext& ctx) {
  RETURN_IF_ERROR(ValidateCommId("device.comm_id", device.comm_id));
  if (fields.empty()) {
    return absl::InvalidArgumentError(
        "update_mask: name at least one of display_name, attributes, groups");
  }
  storage::DeviceUpdate update;
  for (const auto& f : fields) {
    if (f == "display_name") {
      RETURN_IF_ERROR(
          ValidateFreeText("device.display_name", device.display_name, kMaxDisplayNameBytes));
      update.display_name = device.display_name;
    } else if (f == "attributes") {
      RETURN_IF_ERROR(ValidateAttributes("device.attributes", device.attributes));
      update.attributes = device.attributes;
    } else if (f == "groups") {
      std::vector<std::string> groups = device.groups;
      RETURN_IF_ERROR(NormalizeGroups("device.groups", &groups));
      update.groups = std::move(groups);
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          "update_mask: ", Quote(f),
          " cannot be updated (updatable: display_name, attributes, groups; status has "
          "SetDeviceStatus)"));
    }
  }
  ASSIGN_OR_RETURN(std::optional<int64_t> version, ParseEtag("etag", etag));
  return store_.Update(device.comm_id, update, version, ctx);
}

absl::StatusOr<Device> Registry::SetStatus(const std::string& comm_id,
                                           std::optional<storage::DeviceStatus> status,
                                           const std::string& reason, const std::string& etag,
                                           const RequestContext& ctx) {
  RETURN_IF_ERROR(ValidateCommId("comm_id", comm_id));
  if (!status.has_value()) {
    return absl::InvalidArgumentError(
        "status: required, one of DEVICE_STATUS_ACTIVE, DEVICE_STATUS_SUSPENDED, "
        "DEVICE_STATUS_DECOMMISSIONED");
  }
  RETURN_IF_ERROR(ValidateFreeText("reason", reason, kMaxReasonBytes));
  ASSIGN_OR_RETURN(std::optional<int64_t> version, ParseEtag("etag", etag));
  return store_.SetStatus(comm_id, *status, reason, version, ctx);
}

absl::Status Registry::Delete(const std::string& comm_id, const std::string& etag,
                              const RequestContext& ctx) {
  RETURN_IF_ERROR(ValidateCommId("comm_id", comm_id));
  ASSIGN_OR_RETURN(std::optional<int64_t> version, ParseEtag("etag", etag));
  return store_.Delete(comm_id, version, ctx);
}

}  // namespace fleetca::registry
