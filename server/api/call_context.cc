#include "server/api/call_context.h"

#include <algorithm>

namespace fleetca::api {

RequestContext RequestContextFor(const grpc::ServerContext& context) {
  RequestContext ctx;
  ctx.actor = "unauthenticated:" + context.peer();
  // The ServerContext outlives the handler, and the handler outlives every use of ctx.
  ctx.cancelled = [&context] { return context.IsCancelled(); };
  const auto& metadata = context.client_metadata();
  auto it = metadata.find("x-request-id");
  if (it != metadata.end()) {
    const grpc::string_ref v = it->second;
    const bool printable = std::all_of(v.begin(), v.end(), [](char c) {
      return static_cast<unsigned char>(c) >= 0x21 && static_cast<unsigned char>(c) <= 0x7e;
    });
    if (v.size() <= 128 && printable) ctx.request_id.assign(v.data(), v.size());
  }
  return ctx;
}

}  // namespace fleetca::api
