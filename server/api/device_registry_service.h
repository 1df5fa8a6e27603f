#pragma once

// gRPC DeviceRegistryService: converts protos to domain structs and back, and calls
// registry::Registry. No logic of its own beyond conversion.

#include "fleetca/v1/device_registry.grpc.pb.h"
#include "server/registry/registry.h"

namespace fleetca::api {

v1::DeviceStatus ToProtoStatus(storage::DeviceStatus s);
void ToProto(const storage::Device& d, v1::Device* out);

class DeviceRegistryService final : public fleetca::v1::DeviceRegistryService::Service {
 public:
  // registry is borrowed and must outlive the service.
  explicit DeviceRegistryService(registry::Registry& registry) : registry_(registry) {}

  grpc::Status RegisterDevice(grpc::ServerContext* context,
                              const v1::RegisterDeviceRequest* request,
                              v1::RegisterDeviceResponse* response) override;
  grpc::Status BatchRegisterDevices(grpc::ServerContext* context,
                                    const v1::BatchRegisterDevicesRequest* request,
                                    v1::BatchRegisterDevicesResponse* response) override;
  grpc::Status GetDevice(grpc::ServerContext* context, const v1::GetDeviceRequest* request,
                         v1::GetDeviceResponse* response) override;
  grpc::Status ListDevices(grpc::ServerContext* context, const v1::ListDevicesRequest* request,
                           v1::ListDevicesResponse* response) override;
  grpc::Status UpdateDevice(grpc::ServerContext* context, const v1::UpdateDeviceRequest* request,
                            v1::UpdateDeviceResponse* response) override;
  grpc::Status SetDeviceStatus(grpc::ServerContext* context,
                               const v1::SetDeviceStatusRequest* request,
                               v1::SetDeviceStatusResponse* response) override;
  grpc::Status DeleteDevice(grpc::ServerContext* context, const v1::DeleteDeviceRequest* request,
                            v1::DeleteDeviceResponse* response) override;

 private:
  registry::Registry& registry_;
};

}  // namespace fleetca::api
