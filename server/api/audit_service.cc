#include "server/api/audit_service.h"

#include <google/protobuf/descriptor.h>

#include <map>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/json.h"
#include "common/page_token.h"
#include "common/status_macros.h"
#include "fleetca/v1/acl.pb.h"
#include "fleetca/v1/broker_auth.pb.h"
#include "fleetca/v1/broker_sync.pb.h"
#include "fleetca/v1/certificate_authority.pb.h"
#include "fleetca/v1/device_registry.pb.h"
#include "fleetca/v1/identity.pb.h"
#include "fleetca/v1/issuance.pb.h"
#include "fleetca/v1/revocation.pb.h"
#include "server/api/call_context.h"
#include "server/api/proto_convert.h"
#include "server/api/status.h"
#include "server/registry/validation.h"

namespace fleetca::api {
namespace {

constexpr char kPageTokenKind[] = "audit events";
// Longest text filter accepted (actor name, method, resource id, request id).
constexpr size_t kMaxFilterBytes = 1024;

// The range of google.protobuf.Timestamp: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z.
constexpr int64_t kMinTimestampSeconds = -62135596800;
constexpr int64_t kMaxTimestampSeconds = 253402300799;

// FullMethods maps every fleetca.v1 RPC name to its full gRPC method, from the generated
// descriptors, so the table follows the protos. Names that two services share are left out
// (an audit action alone could not tell which one was called).
const std::map<std::string, std::string>& FullMethods() {
  static const auto* const table = [] {
    // One message of each fleetca/v1 file: naming them links that file's generated code
    // into every binary using this service (a static library member nobody refers to is
    // left out, and its file with it from the generated pool). A new file goes here.
    const google::protobuf::FileDescriptor* const files[] = {
        v1::CreateAclProfileRequest::descriptor()->file(),
        v1::ListAuditEventsRequest::descriptor()->file(),
        v1::AuthorizeConnectRequest::descriptor()->file(),
        v1::RegisterBrokerRequest::descriptor()->file(),
        v1::InitializeHierarchyRequest::descriptor()->file(),
        v1::RegisterDeviceRequest::descriptor()->file(),
        v1::IssueIdentityRequest::descriptor()->file(),
        v1::SignDeviceCsrRequest::descriptor()->file(),
        v1::RevokeCertificateRequest::descriptor()->file(),
    };
    auto* methods = new std::map<std::string, std::string>;
    std::set<std::string> shared;
    for (const google::protobuf::FileDescriptor* file : files) {
      for (int i = 0; i < file->service_count(); ++i) {
        const google::protobuf::ServiceDescriptor* service = file->service(i);
        for (int j = 0; j < service->method_count(); ++j) {
          const std::string& name = service->method(j)->name();
          if (!methods->emplace(name, absl::StrCat("/", service->full_name(), "/", name)).second) {
            shared.insert(name);
          }
        }
      }
    }
    for (const std::string& name : shared) methods->erase(name);
    return methods;
  }();
  return *table;
}

// The change_log entity types an AuditResourceType stands for. A revocation is about a
// certificate (resource_id "<issuer_id>/<serial>"), and the API has no type of its own for it.
std::vector<std::string> ResourceNames(v1::AuditResourceType type) {
  switch (type) {
    case v1::AUDIT_RESOURCE_TYPE_DEVICE:
      return {"device"};
    case v1::AUDIT_RESOURCE_TYPE_ISSUER:
      return {"issuer"};
    case v1::AUDIT_RESOURCE_TYPE_EXTERNAL_CA:
      return {"external_ca"};
    case v1::AUDIT_RESOURCE_TYPE_CERTIFICATE:
      return {"certificate", "revocation"};
    case v1::AUDIT_RESOURCE_TYPE_CRL:
      return {"crl"};
    case v1::AUDIT_RESOURCE_TYPE_ACL_PROFILE:
      return {"acl_profile"};
    case v1::AUDIT_RESOURCE_TYPE_ACL_ASSIGNMENT:
      return {"acl_assignment"};
    case v1::AUDIT_RESOURCE_TYPE_BROKER:
      return {"broker"};
    case v1::AUDIT_RESOURCE_TYPE_IDENTITY:
      return {"identity"};
    default:
      return {};
  }
}

v1::AuditResourceType ResourceType(const std::string& name) {
  static const auto* const types = new std::map<std::string, v1::AuditResourceType>{
      {"device", v1::AUDIT_RESOURCE_TYPE_DEVICE},
      {"issuer", v1::AUDIT_RESOURCE_TYPE_ISSUER},
      {"external_ca", v1::AUDIT_RESOURCE_TYPE_EXTERNAL_CA},
      {"certificate", v1::AUDIT_RESOURCE_TYPE_CERTIFICATE},
      {"revocation", v1::AUDIT_RESOURCE_TYPE_CERTIFICATE},
      {"crl", v1::AUDIT_RESOURCE_TYPE_CRL},
      {"acl_profile", v1::AUDIT_RESOURCE_TYPE_ACL_PROFILE},
      {"acl_assignment", v1::AUDIT_RESOURCE_TYPE_ACL_ASSIGNMENT},
      {"broker", v1::AUDIT_RESOURCE_TYPE_BROKER},
      {"identity", v1::AUDIT_RESOURCE_TYPE_IDENTITY},
  };
  auto it = types->find(name);
  return it == types->end() ? v1::AUDIT_RESOURCE_TYPE_UNSPECIFIED : it->second;
}

// IdentityRoleFor reads details.actor.role: the identities table's spelling (mqtt_client),
// the certificate SAN's (mqtt-client), or "device". Anything else is UNSPECIFIED.
v1::IdentityRole IdentityRoleFor(const std::string& role) {
  const std::string r = absl::AsciiStrToLower(role);
  if (r == "admin") return v1::IDENTITY_ROLE_ADMIN;
  if (r == "provisioner") return v1::IDENTITY_ROLE_PROVISIONER;
  if (r == "broker") return v1::IDENTITY_ROLE_BROKER;
  if (r == "viewer") return v1::IDENTITY_ROLE_VIEWER;
  if (r == "mqtt_client" || r == "mqtt-client") return v1::IDENTITY_ROLE_MQTT_CLIENT;
  if (r == "device") return v1::IDENTITY_ROLE_DEVICE;
  return v1::IDENTITY_ROLE_UNSPECIFIED;
}

void ToProto(const storage::AuditEntry& e, v1::AuditEvent* out) {
  out->set_sequence(e.sequence);
  SetTimestamp(e.time, out->mutable_time());
  v1::AuditActor* actor = out->mutable_actor();
  actor->set_name(e.actor);
  actor->set_role(IdentityRoleFor(e.actor_role));
  actor->set_certificate_serial(e.actor_serial);
  actor->set_certificate_issuer_id(e.actor_issuer);
  actor->set_peer(e.actor_peer);
  out->set_method(FullMethodFor(e.action));
  out->set_resource_type(ResourceType(e.resource_type));
  out->set_resource_id(e.resource_id);
  out->set_request_id(e.request_id);
  out->set_code(e.code);
  out->set_message(e.message);
  out->mutable_details()->insert(e.details.begin(), e.details.end());
  out->set_previous_hash(e.previous_hash.empty() ? std::string(64, '0') : e.previous_hash);
  out->set_hash(e.hash);
}

absl::StatusOr<absl::Time> TimeFilter(absl::string_view field,
                                      const google::protobuf::Timestamp& ts) {
  if (ts.seconds() < kMinTimestampSeconds || ts.seconds() > kMaxTimestampSeconds ||
      ts.nanos() < 0 || ts.nanos() > 999999999) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": must be a valid time between years 1 and 9999"));
  }
  return FromTimestamp(ts);
}

struct ListQuery {
  storage::AuditFilter filter;
  int page_size = 0;
  int64_t after = 0;
  std::string filters;  // canonical rendering, for the page token
};

absl::StatusOr<ListQuery> ToQuery(const v1::ListAuditEventsRequest& request) {
  ListQuery q;
  ASSIGN_OR_RETURN(q.page_size, PageSize(request.page_size()));
  storage::AuditFilter& f = q.filter;
  if (request.has_start_time()) {
    ASSIGN_OR_RETURN(f.start_time, TimeFilter("start_time", request.start_time()));
  }
  if (request.has_end_time()) {
    ASSIGN_OR_RETURN(f.end_time, TimeFilter("end_time", request.end_time()));
  }
  RETURN_IF_ERROR(
      registry::ValidateFreeText("actor_name", request.actor_name(), kMaxFilterBytes));
  RETURN_IF_ERROR(registry::ValidateFreeText("method", request.method(), kMaxFilterBytes));
  RETURN_IF_ERROR(
      registry::ValidateFreeText("resource_id", request.resource_id(), kMaxFilterBytes));
  RETURN_IF_ERROR(
      registry::ValidateFreeText("request_id", request.request_id(), kMaxFilterBytes));
  f.actor = request.actor_name();
  f.actions = AuditActionsFor(request.method());
  if (request.resource_type() != v1::AUDIT_RESOURCE_TYPE_UNSPECIFIED) {
    f.resource_types = ResourceNames(request.resource_type());
    if (f.resource_types.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "resource_type: unknown value ", static_cast<int>(request.resource_type())));
    }
  }
  f.resource_id = request.resource_id();
  f.request_id = request.request_id();
  f.failures_only = request.failures_only();

  auto micros = [](const std::optional<absl::Time>& t) {
    return t ? absl::StrCat(absl::ToUnixMicros(*t)) : std::string();
  };
  q.filters = JsonArray({micros(f.start_time), micros(f.end_time), f.actor,
                         JsonArray(f.actions), JsonArray(f.resource_types), f.resource_id,
                         f.request_id, f.failures_only ? "failures" : "",
                         request.newest_first() ? "newest_first" : ""});
  ASSIGN_OR_RETURN(const std::string after,
                   DecodePageToken(kPageTokenKind, q.filters, request.page_token()));
  if (!after.empty() && (!absl::SimpleAtoi(after, &q.after) || q.after <= 0)) {
    return absl::InvalidArgumentError(
        "page_token: not a token returned by this list of audit events; send the "
        "next_page_token of the previous page, or nothing for the first page");
  }
  return q;
}

}  // namespace

std::string FullMethodFor(const std::string& action) {
  auto it = FullMethods().find(action);
  return it == FullMethods().end() ? action : it->second;
}

std::vector<std::string> AuditActionsFor(const std::string& method) {
  if (method.empty()) return {};
  // Rows carry the bare RPC name today; the full form is matched as well, so rows written
  // with it (or with a subcommand name) are found by the same filter.
  if (method[0] == '/') {
    const std::string name = method.substr(method.rfind('/') + 1);
    if (FullMethodFor(name) == method) return {name, method};
    return {method};
  }
  const std::string full = FullMethodFor(method);
  if (full != method) return {method, full};
  return {method};
}

grpc::Status AuditService::ListAuditEvents(grpc::ServerContext*,
                                           const v1::ListAuditEventsRequest* request,
                                           v1::ListAuditEventsResponse* response) {
  absl::StatusOr<ListQuery> query = ToQuery(*request);
  if (!query.ok()) return ToGrpcStatus(query.status());
  // One extra row tells whether another page exists, without a COUNT.
  auto entries =
      store_.List(query->filter, query->after, request->newest_first(), query->page_size + 1);
  if (!entries.ok()) return ToGrpcStatus(entries.status());
  if (entries->size() > static_cast<size_t>(query->page_size)) {
    entries->resize(query->page_size);
    response->set_next_page_token(EncodePageToken(kPageTokenKind, query->filters,
                                                  absl::StrCat(entries->back().sequence)));
  }
  for (const auto& e : *entries) ToProto(e, response->add_events());
  return grpc::Status::OK;
}

grpc::Status AuditService::VerifyAuditChain(grpc::ServerContext* context,
                                            const v1::VerifyAuditChainRequest* request,
                                            v1::VerifyAuditChainResponse* response) {
  storage::AuditVerifyRequest verify;
  verify.from_sequence = request->from_sequence();
  verify.to_sequence = request->to_sequence();
  verify.anchor_sequence = request->anchor_sequence();
  verify.anchor_hash = request->anchor_hash();
  const RequestContext ctx = RequestContextFor(*context);
  auto result = store_.Verify(verify, &ctx);
  if (!result.ok()) return ToGrpcStatus(result.status());
  response->set_intact(result->intact);
  response->set_events_checked(result->events_checked);
  response->set_first_break_sequence(result->first_break_sequence);
  response->set_break_reason(result->break_reason);
  response->set_last_sequence(result->last_sequence);
  response->set_last_hash(result->last_hash);
  return grpc::Status::OK;
}

}  // namespace fleetca::api
