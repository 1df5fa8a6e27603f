#include "server/api/rpc_observer.h"

#include <openssl/rand.h>

#include <cstdio>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "common/logging.h"
#include "server/api/call_context.h"

namespace fleetca::api {
namespace {

using grpc::experimental::InterceptionHookPoints;
using grpc::experimental::ServerRpcInfo;

constexpr char kRequestIdHeader[] = "x-request-id";

std::string NewRequestId() {
  unsigned char bytes[12];
  if (RAND_bytes(bytes, sizeof bytes) != 1) return "";
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(bytes), sizeof bytes));
}

// What one ended call records: counted, timed (unary calls), and logged.
struct CallRecord {
  std::string service, method;
  // Timed into the latency histogram: unary calls that reached a handler (a stream's
  // duration is not a latency; a refused call never reached one).
  bool timed = true;
  double seconds = 0;
  std::string request_id;
  std::string actor, role, serial, peer;
};

void RecordCall(RpcObserverFactory::Sinks& sinks, const CallRecord& call,
                const grpc::Status& status) {
  const std::string code(
      absl::StatusCodeToString(static_cast<absl::StatusCode>(status.error_code())));
  sinks.handled->With({call.service, call.method, code}).Increment();
  if (call.timed) sinks.latency->With({call.service, call.method, code}).Observe(call.seconds);
  if (sinks.mode == AccessLog::kOff || (sinks.mode == AccessLog::kErrors && status.ok())) return;
  std::vector<LogField> fields = {
      {"method", absl::StrCat("/", call.service, "/", call.method)},
      {"code", code},
      {"ms", absl::StrFormat("%.3f", call.seconds * 1000)},
      {"request_id", call.request_id},
  };
  if (!call.actor.empty()) fields.emplace_back("caller", call.actor);
  if (!call.role.empty()) fields.emplace_back("role", call.role);
  if (!call.serial.empty()) fields.emplace_back("serial", call.serial);
  if (!call.peer.empty()) fields.emplace_back("peer", call.peer);
  if (!status.ok()) fields.emplace_back("error", status.error_message());
  const bool quiet = absl::StartsWith(call.service, "grpc.health.") ||
                     absl::StartsWith(call.service, "grpc.reflection.");
  Log(quiet ? LogLevel::kDebug : status.ok() ? LogLevel::kInfo : LogLevel::kWarning, "rpc",
      fields);
}

// "/fleetca.v1.IssuanceService/SignDeviceCsr" -> service and method.
void SplitMethod(absl::string_view full, std::string* service, std::string* method) {
  const size_t slash = full.rfind('/');
  if (slash != absl::string_view::npos && slash > 0) {
    *service = std::string(full.substr(1, slash - 1));
    *method = std::string(full.substr(slash + 1));
  } else {
    *method = std::string(full);
  }
}

class RpcObserver : public grpc::experimental::Interceptor {
 public:
  RpcObserver(ServerRpcInfo* info, RpcObserverFactory::Sinks& sinks)
      : info_(info), sinks_(sinks), start_(absl::Now()) {
    SplitMethod(info->method() != nullptr ? info->method() : "", &call_.service, &call_.method);
    call_.timed = info->type() == ServerRpcInfo::Type::UNARY;
    sinks_.in_flight.fetch_add(1, std::memory_order_relaxed);
  }

  ~RpcObserver() override {
    // A call that ended without sending a status (the caller went away first).
    if (!recorded_) Record(grpc::Status(grpc::StatusCode::CANCELLED, "the caller cancelled the call"));
    sinks_.in_flight.fetch_sub(1, std::memory_order_relaxed);
  }

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_INITIAL_METADATA)) {
      TakeRequestId(methods->GetRecvInitialMetadata());
    }
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_INITIAL_METADATA)) {
      if (!call_.request_id.empty()) {
        methods->GetSendInitialMetadata()->emplace(kRequestIdHeader, call_.request_id);
      }
    }
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_MESSAGE)) {
      // Null: the request's bytes did not parse as its message (malformed wire format, a
      // string field that is not UTF-8, nesting beyond protobuf's limit).
      if (methods->GetRecvMessage() == nullptr) undecodable_ = true;
    }
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS)) {
      grpc::Status status = methods->GetSendStatus();
      // gRPC answers a request it cannot parse with INTERNAL and no message: it is the
      // caller's mistake, and it deserves to be told which.
      if (undecodable_ && status.error_code() == grpc::StatusCode::INTERNAL) {
        status = grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                              "request: not a valid protobuf message for " + call_.method +
                                  " (malformed wire format, a string field that is not UTF-8, "
                                  "or nesting too deep)");
        methods->ModifySendStatus(status);
      }
      Record(status);
    }
    methods->Proceed();
  }

 private:
  // The caller's id when valid; otherwise a new one, added to the call's metadata so that
  // RequestContextFor (and so the audit log) sees it. The string_ref points into this
  // interceptor, which lives until the call is done.
  void TakeRequestId(std::multimap<grpc::string_ref, grpc::string_ref>* metadata) {
    if (metadata == nullptr) return;
    auto it = metadata->find(kRequestIdHeader);
    if (it != metadata->end()) {
      const absl::string_view v(it->second.data(), it->second.size());
      if (ValidRequestId(v)) {
        call_.request_id = std::string(v);
        return;
      }
      metadata->erase(it);
    }
    call_.request_id = NewRequestId();
    if (!call_.request_id.empty()) metadata->emplace(kRequestIdHeader, call_.request_id);
  }

  void Record(const grpc::Status& status) {
    if (recorded_) return;
    recorded_ = true;
    call_.seconds = absl::ToDoubleSeconds(absl::Now() - start_);
    if (grpc::ServerContextBase* context = info_->server_context(); context != nullptr) {
      const RequestContext caller = RequestContextFor(*context);
      call_.actor = caller.actor;
      call_.role = caller.role;
      call_.serial = caller.actor_serial;
      call_.peer = caller.peer;
    }
    RecordCall(sinks_, call_, status);
  }

  ServerRpcInfo* info_;
  RpcObserverFactory::Sinks& sinks_;
  const absl::Time start_;
  CallRecord call_;  // call_.request_id is what the call's metadata points into
  bool undecodable_ = false;
  bool recorded_ = false;
};

}  // namespace

bool ParseAccessLog(const std::string& text, AccessLog* mode) {
  if (text == "all") {
    *mode = AccessLog::kAll;
  } else if (text == "errors") {
    *mode = AccessLog::kErrors;
  } else if (text == "off") {
    *mode = AccessLog::kOff;
  } else {
    return false;
  }
  return true;
}

RpcObserverFactory::RpcObserverFactory(metrics::Registry& registry, AccessLog mode) {
  const std::vector<std::string> labels = {"grpc_service", "grpc_method", "grpc_code"};
  sinks_.handled = &registry.AddCounter(
      "fleetca_grpc_server_handled_total",
      "gRPC calls completed, by service, method and status code.", labels);
  sinks_.latency = &registry.AddHistogram(
      "fleetca_grpc_server_handling_seconds",
      "Time from a unary call's arrival to its status, by service, method and status code.",
      labels, metrics::LatencyBuckets());
  sinks_.mode = mode;
  registry.AddCallback("fleetca_grpc_server_in_flight", "gRPC calls (and streams) in progress.",
                       metrics::Type::kGauge, {}, [this] {
                         return std::vector<metrics::Sample>{
                             {{}, static_cast<double>(sinks_.in_flight.load())}};
                       });
}

void RpcObserverFactory::Refused(const auth::Refusal& refusal) {
  CallRecord call;
  SplitMethod(refusal.method, &call.service, &call.method);
  call.timed = false;
  if (ValidRequestId(refusal.request_id)) call.request_id = refusal.request_id;
  call.actor = refusal.actor;
  call.role = refusal.role;
  call.serial = refusal.serial;
  RecordCall(sinks_, call, grpc::Status(refusal.code, refusal.message));
}

grpc::experimental::Interceptor* RpcObserverFactory::CreateServerInterceptor(
    grpc::experimental::ServerRpcInfo* info) {
  return new RpcObserver(info, sinks_);
}

}  // namespace fleetca::api
