#include "server/api/broker_sync_service.h"

#include "absl/strings/str_cat.h"
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

void ToProto(const storage::Broker& b, int64_t head, v1::Broker* out) {
  out->set_broker_id(b.name);
  out->set_display_name(b.display_name);
  for (const auto& d : b.allowed_dns_names) out->add_allowed_dns_names(d);
  for (const auto& ip : b.allowed_ip_addresses) out->add_allowed_ip_addresses(ip);
  out->set_etag(registry::Etag(b.version));
  SetTimestamp(b.create_time, out->mutable_create_time());
  SetTimestamp(b.update_time, out->mutable_update_time());
  v1::BrokerSyncState* sync = out->mutable_sync();
  sync->set_watching(b.sync.streams > 0);
  sync->set_stream_count(b.sync.streams);
  sync->set_sent_revision(b.sync.sent_revision);
  sync->set_head_revision(head);
  if (b.sync.last_seen) SetTimestamp(*b.sync.last_seen, sync->mutable_last_seen_time());
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
  ToProto(*b, feed_.head(), response->mutable_broker());
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
  ToProto(*b, feed_.head(), response->mutable_broker());
  return grpc::Status::OK;
}

grpc::Status BrokerSyncService::ListBrokers(grpc::ServerContext*,
                                            const v1::ListBrokersRequest* request,
                                            v1::ListBrokersResponse* response) {
  auto page = registry_.List(request->page_size(), request->page_token());
  if (!page.ok()) return ToGrpcStatus(page.status());
  for (const auto& b : page->brokers) ToProto(b, feed_.head(), response->add_brokers());
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
  ToProto(*b, feed_.head(), response->mutable_broker());
  return grpc::Status::OK;
}

grpc::Status BrokerSyncService::DeleteBroker(grpc::ServerContext* context,
                                             const v1::DeleteBrokerRequest* request,
                                             v1::DeleteBrokerResponse*) {
  return ToGrpcStatus(
      registry_.Delete(request->broker_id(), request->etag(), RequestContextFor(*context)));
}

grpc::Status BrokerSyncService::Watch(grpc::ServerContext* context,
                                     const v1::WatchRequest* request,
                                     grpc::ServerWriter<v1::WatchResponse>* writer) {
  const RequestContext ctx = RequestContextFor(*context);
  if (request->broker_id().empty()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "broker_id: is required");
  }
  // A broker identity (named as its broker id) watches as its own broker only.
  if (absl::Status st = RequireSelfOrRole(ctx, {"admin"}, request->broker_id(),
                                          "watch as another broker");
      !st.ok()) {
    return ToGrpcStatus(st);
  }
  WatchOptions options;
  options.broker_id = request->broker_id();
  options.tracker = &tracker_;
  if (request->since_revision() < 0) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "since_revision: must not be negative");
  }
  options.since_revision = request->since_revision();
  if (request->has_heartbeat_interval()) {
    auto d = FromDuration("heartbeat_interval", request->heartbeat_interval());
    if (!d.ok()) return ToGrpcStatus(d.status());
    if (*d < absl::Seconds(1) || *d > absl::Seconds(60)) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "heartbeat_interval: must be between 1s and 60s");
    }
    options.heartbeat_interval = *d;
  }
  for (int i = 0; i < request->object_types_size(); ++i) {
    const int t = request->object_types(i);
    if (t < static_cast<int>(storage::SyncKind::kIssuer) ||
        t > static_cast<int>(storage::SyncKind::kAclAssignment)) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          absl::StrCat("object_types[", i, "]: unknown object type ", t));
    }
    options.kinds.insert(static_cast<storage::SyncKind>(t));
  }
  if (auto b = registry_.Get(request->broker_id()); !b.ok()) return ToGrpcStatus(b.status());

  class Sink final : public WatchSink {
   public:
    Sink(grpc::ServerContext* context, grpc::ServerWriter<v1::WatchResponse>* writer)
        : context_(context), writer_(writer) {}
    bool Write(const v1::WatchResponse& message) override { return writer_->Write(message); }
    bool Cancelled() override { return context_->IsCancelled(); }

   private:
    grpc::ServerContext* context_;
    grpc::ServerWriter<v1::WatchResponse>* writer_;
  } sink(context, writer);
  // Headers now: a broker knows its stream is accepted before the first message.
  writer->SendInitialMetadata();
  return ToGrpcStatus(RunWatch(feed_, options, sink));
}

}  // namespace fleetca::api
