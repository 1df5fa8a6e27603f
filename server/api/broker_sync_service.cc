#include "server/api/broker_sync_service.h"

#include "server/api/call_context.h"
#include "server/api/proto_convert.h"
#include "server/api/status.h"
#include "server/registry/registry.h"

namespace fleetca::api {
namespace {

storage::Broker FromProto(const v1::Broker& b) {
  storage::Broker out;
  out.name = b.broker_id();
  out.display_name = b.display_name();
  out.allowed_dns_names.assign(b.allowed_dns_names().begin(), b.allowed_dns_names().end());
  out.allowed_ip_addresses.assign(b.allowed_ip_addresses().begin(), b.allowed_ip_addresses().end());
  return out;
}

void ToProto(const storage::Broker& b, v1::Broker* out) {
  out->set_broker_id(b.name);
  out->set_display_name(b.display_name);
  for (const auto& d : b.allowed_dns_names) out->add_allowed_dns_names(d);
  for (const auto& ip : b.allowed_ip_addresses) out->add_allowed_ip_addresses(ip);
  out->set_etag(registry::Etag(b.version));
  SetTimestamp(b.create_time, out->mutable_create_time());
  SetTimestamp(b.update_time, out->mutable_update_time());
}

}  // namespace

grpc::Status BrokerSyncService::RegisterBroker(grpc::ServerContext* context,
                                               const v1::RegisterBrokerRequest* request,
                                               v1::RegisterBrokerResponse* response) {
  if (!request->has_broker()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "broker: is required");
  }
  auto b = registry_.Register(FromProto(request->broker()), RequestContextFor(*context));
  if (!b.ok()) return ToGrpcStatus(b.status());
  ToProto(*b, response->mutable_broker());
  return grpc::Status::OK;
}

grpc::Status BrokerSyncService::GetBroker(grpc::ServerContext* context,
                                          const v1::GetBrokerRequest* request,
                                          v1::GetBrokerResponse* response) {
  // A broker identity (named as its broker id) reads its own broker only.
  if (absl::Status st = RequireSelfOrRole(RequestContextFor(*context), {"admin", "viewer"},
                                          request->broker_id(), "read a broker");
      !st.ok()) {
    return ToGrpcStatus(st);
  }
  auto b = registry_.Get(request->broker_id());
  if (!b.ok()) return ToGrpcStatus(b.status());
  ToProto(*b, response->mutable_broker());
  return grpc::Status::OK;
}

grpc::Status BrokerSyncService::ListBrokers(grpc::ServerContext*,
                                            const v1::ListBrokersRequest* request,
                                            v1::ListBrokersResponse* response) {
  auto page = registry_.List(request->page_size(), request->page_token());
  if (!page.ok()) return ToGrpcStatus(page.status());
  for (const auto& b : page->brokers) ToProto(b, response->add_brokers());
  response->set_next_page_token(page->next_page_token);
  return grpc::Status::OK;
}

grpc::Status BrokerSyncService::UpdateBroker(grpc::ServerContext* context,
                                             const v1::UpdateBrokerRequest* request,
                                             v1::UpdateBrokerResponse* response) {
  if (!request->has_broker()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "broker: is required");
  }
  std::vector<std::string> fields(request->update_mask().paths().begin(),
                                  request->update_mask().paths().end());
  const std::string& etag = request->etag().empty() ? request->broker().etag() : request->etag();
  auto b = registry_.Update(FromProto(request->broker()), fields, etag, RequestContextFor(*context));
  if (!b.ok()) return ToGrpcStatus(b.status());
  ToProto(*b, response->mutable_broker());
  return grpc::Status::OK;
}

grpc::Status BrokerSyncService::DeleteBroker(grpc::ServerContext* context,
                                             const v1::DeleteBrokerRequest* request,
                                             v1::DeleteBrokerResponse*) {
  return ToGrpcStatus(
      registry_.Delete(request->broker_id(), request->etag(), RequestContextFor(*context)));
}

}  // namespace fleetca::api
