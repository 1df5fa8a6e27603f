#include "server/api/device_registry_service.h"

#include <optional>

#include "absl/strings/str_cat.h"
#include "server/api/call_context.h"
#include "server/api/proto_convert.h"
#include "server/api/status.h"

namespace fleetca::api {
namespace {

using storage::DeviceStatus;

// FromProtoStatus: UNSPECIFIED (and unknown numbers) -> nullopt.
std::optional<DeviceStatus> FromProtoStatus(v1::DeviceStatus s) {
  switch (s) {
    case v1::DEVICE_STATUS_ACTIVE:
      return DeviceStatus::kActive;
    case v1::DEVICE_STATUS_SUSPENDED:
      return DeviceStatus::kSuspended;
    case v1::DEVICE_STATUS_DECOMMISSIONED:
      return DeviceStatus::kDecommissioned;
    default:
      return std::nullopt;
  }
}

// FromProto converts a device to register or update. An out-of-range status number is
// INVALID_ARGUMENT; UNSPECIFIED means active.
absl::StatusOr<storage::Device> FromProto(const v1::Device& in, absl::string_view field) {
  storage::Device d;
  d.comm_id = in.comm_id();
  if (in.status() != v1::DEVICE_STATUS_UNSPECIFIED) {
    std::optional<DeviceStatus> s = FromProtoStatus(in.status());
    if (!s) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ".status: unknown value ", static_cast<int>(in.status())));
    }
    d.status = *s;
  }
  d.status_reason = in.status_reason();
  d.display_name = in.display_name();
  d.attributes.insert(in.attributes().begin(), in.attributes().end());
  d.groups.assign(in.groups().begin(), in.groups().end());
  return d;
}

}  // namespace

v1::DeviceStatus ToProtoStatus(DeviceStatus s) {
  switch (s) {
    case DeviceStatus::kActive:
      return v1::DEVICE_STATUS_ACTIVE;
    case DeviceStatus::kSuspended:
      return v1::DEVICE_STATUS_SUSPENDED;
    case DeviceStatus::kDecommissioned:
      return v1::DEVICE_STATUS_DECOMMISSIONED;
  }
  return v1::DEVICE_STATUS_UNSPECIFIED;
}

void ToProto(const storage::Device& d, v1::Device* out) {
  out->set_comm_id(d.comm_id);
  out->set_status(ToProtoStatus(d.status));
  out->set_status_reason(d.status_reason);
  out->set_display_name(d.display_name);
  out->mutable_attributes()->insert(d.attributes.begin(), d.attributes.end());
  for (const auto& g : d.groups) out->add_groups(g);
  out->set_etag(registry::Etag(d.version));
  SetTimestamp(d.create_time, out->mutable_create_time());
  SetTimestamp(d.update_time, out->mutable_update_time());
}


grpc::Status DeviceRegistryService::RegisterDevice(grpc::ServerContext* context,
                                                   const v1::RegisterDeviceRequest* request,
                                                   v1::RegisterDeviceResponse* response) {
  if (!request->has_device()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "device: is required");
  }
  auto device = FromProto(request->device(), "device");
  if (!device.ok()) return ToGrpcStatus(device.status());
  auto stored = registry_.Register(*std::move(device), RequestContextFor(*context));
  if (!stored.ok()) return ToGrpcStatus(stored.status());
  ToProto(*stored, response->mutable_device());
  return grpc::Status::OK;
}

grpc::Status DeviceRegistryService::BatchRegisterDevices(
    grpc::ServerContext* context, const v1::BatchRegisterDevicesRequest* request,
    v1::BatchRegisterDevicesResponse* response) {
  std::vector<storage::Device> devices;
  devices.reserve(request->devices_size());
  std::vector<absl::Status> conversion(request->devices_size());
  // Items that fail conversion are replaced by a placeholder that validation rejects
  // the same way, so indexes stay aligned; their conversion error wins below.
  for (int i = 0; i < request->devices_size(); ++i) {
    auto d = FromProto(request->devices(i), absl::StrCat("devices[", i, "]"));
    if (!d.ok()) {
      conversion[i] = d.status();
      devices.emplace_back();
    } else {
      devices.push_back(*std::move(d));
    }
  }
  auto results = registry_.RegisterBatch(std::move(devices), RequestContextFor(*context));
  if (!results.ok()) return ToGrpcStatus(results.status());
  int registered = 0;
  for (int i = 0; i < request->devices_size(); ++i) {
    const absl::Status& st = conversion[i].ok() ? (*results)[i].status : conversion[i];
    v1::BatchRegisterDeviceResult* r = response->add_results();
    r->set_index(i);
    r->set_comm_id(request->devices(i).comm_id());
    r->set_code(static_cast<int32_t>(st.code()));
    r->set_message(std::string(st.message()));
    if (st.ok()) ++registered;
  }
  response->set_registered_count(registered);
  response->set_failed_count(request->devices_size() - registered);
  return grpc::Status::OK;
}

grpc::Status DeviceRegistryService::GetDevice(grpc::ServerContext*,
                                              const v1::GetDeviceRequest* request,
                                              v1::GetDeviceResponse* response) {
  auto device = registry_.Get(request->comm_id());
  if (!device.ok()) return ToGrpcStatus(device.status());
  ToProto(*device, response->mutable_device());
  return grpc::Status::OK;
}

grpc::Status DeviceRegistryService::ListDevices(grpc::ServerContext*,
                                                const v1::ListDevicesRequest* request,
                                                v1::ListDevicesResponse* response) {
  registry::ListDevicesQuery query;
  query.page_size = request->page_size();
  query.page_token = request->page_token();
  if (request->status() != v1::DEVICE_STATUS_UNSPECIFIED) {
    query.filter.status = FromProtoStatus(request->status());
    if (!query.filter.status) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          absl::StrCat("status: unknown value ", static_cast<int>(request->status())));
    }
  }
  query.filter.comm_id_prefix = request->comm_id_prefix();
  query.filter.group = request->group();
  query.filter.attributes.insert(request->attribute_filter().begin(),
                                 request->attribute_filter().end());
  auto page = registry_.List(query);
  if (!page.ok()) return ToGrpcStatus(page.status());
  for (const auto& d : page->devices) ToProto(d, response->add_devices());
  response->set_next_page_token(page->next_page_token);
  return grpc::Status::OK;
}

grpc::Status DeviceRegistryService::UpdateDevice(grpc::ServerContext* context,
                                                 const v1::UpdateDeviceRequest* request,
                                                 v1::UpdateDeviceResponse* response) {
  if (!request->has_device()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "device: is required");
  }
  auto device = FromProto(request->device(), "device");
  if (!device.ok()) return ToGrpcStatus(device.status());
  std::vector<std::string> fields(request->update_mask().paths().begin(),
                                  request->update_mask().paths().end());
  // Accept the etag in the request or, as AIP-154 allows, on the device itself.
  const std::string& etag = request->etag().empty() ? request->device().etag() : request->etag();
  auto stored = registry_.Update(*device, fields, etag, RequestContextFor(*context));
  if (!stored.ok()) return ToGrpcStatus(stored.status());
  ToProto(*stored, response->mutable_device());
  return grpc::Status::OK;
}

grpc::Status DeviceRegistryService::SetDeviceStatus(grpc::ServerContext* context,
                                                    const v1::SetDeviceStatusRequest* request,
                                                    v1::SetDeviceStatusResponse* response) {
  auto stored = registry_.SetStatus(request->comm_id(), FromProtoStatus(request->status()),
                                    request->reason(), request->etag(), RequestContextFor(*context));
  if (!stored.ok()) return ToGrpcStatus(stored.status());
  ToProto(*stored, response->mutable_device());
  return grpc::Status::OK;
}

grpc::Status DeviceRegistryService::DeleteDevice(grpc::ServerContext* context,
                                                 const v1::DeleteDeviceRequest* request,
                                                 v1::DeleteDeviceResponse*) {
  return ToGrpcStatus(
      registry_.Delete(request->comm_id(), request->etag(), RequestContextFor(*context)));
}

}  // namespace fleetca::api
