#pragma once

// gRPC AuditService: lists audit events and verifies their hash chain, over
// storage::AuditStore. Maps the audit_log row conventions (RPC method names, reserved
// details keys) to the API's AuditEvent.

#include <string>
#include <vector>

#include "fleetca/v1/audit.grpc.pb.h"
#include "storage/audit_store.h"

namespace fleetca::api {

class AuditService final : public fleetca::v1::AuditService::Service {
 public:
  // store is borrowed and must outlive the service.
  explicit AuditService(storage::AuditStore& store) : store_(store) {}

  grpc::Status ListAuditEvents(grpc::ServerContext* context,
                               const v1::ListAuditEventsRequest* request,
                               v1::ListAuditEventsResponse* response) override;
  grpc::Status VerifyAuditChain(grpc::ServerContext* context,
                                const v1::VerifyAuditChainRequest* request,
                                v1::VerifyAuditChainResponse* response) override;

 private:
  storage::AuditStore& store_;
};

// FullMethodFor returns the full gRPC method ("/fleetca.v1.DeviceRegistryService/
// RegisterDevice") of an audit_log action that is the name of a fleetca.v1 RPC, or the
// action as it is (a server subcommand such as "fleetca-server init", or a name two
// services share).
std::string FullMethodFor(const std::string& action);

// AuditActionsFor returns the audit_log.action values a ListAuditEvents method filter
// matches: the filter may be a full gRPC method or a bare RPC name.
std::vector<std::string> AuditActionsFor(const std::string& method);

}  // namespace fleetca::api
