#include "sync_client/connection.h"

#include <arpa/inet.h>

#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "google/protobuf/duration.pb.h"

namespace fleetca::sync_client {

bool IsValidBrokerId(absl::string_view id) {
  if (id.empty() || id.size() > 63 || !absl::ascii_isalnum(static_cast<unsigned char>(id[0]))) {
    return false;
  }
  for (char c : id) {
    if (!(absl::ascii_islower(static_cast<unsigned char>(c)) ||
          absl::ascii_isdigit(static_cast<unsigned char>(c)) || c == '.' || c == '-')) {
      return false;
    }
  }
  return true;
}

bool IsLoopbackTarget(const std::string& target) {
  if (absl::StartsWith(target, "unix:")) return true;
  std::string host = target;
  if (absl::StartsWith(host, "[")) {
    const size_t close = host.find(']');
    if (close == std::string::npos) return false;
    host = host.substr(1, close - 1);
  } else if (const size_t colon = host.rfind(':'); colon != std::string::npos) {
    host = host.substr(0, colon);
  }
  if (host == "localhost") return true;
  unsigned char buf[16];
  if (inet_pton(AF_INET, host.c_str(), buf) == 1) return buf[0] == 127;
  if (inet_pton(AF_INET6, host.c_str(), buf) == 1)
    return host == "::1" || host == "0:0:0:0:0:0:0:1";
  return false;
}

absl::Status CheckConnection(const ConnectionConfig& c, absl::string_view prefix) {
  auto invalid = [prefix](absl::string_view name, absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat(prefix, name, ": ", why));
  };
  if (c.server.empty()) return invalid("server", "required (host:port of fleetca's gRPC API)");
  if (c.broker_id.empty()) return invalid("broker_id", "required (the broker's id in fleetca)");
  if (!IsValidBrokerId(c.broker_id)) {
    return invalid("broker_id",
                   "1 to 63 characters of [a-z0-9.-], starting with a letter or digit");
  }
  if (c.insecure_plaintext) {
    if (!IsLoopbackTarget(c.server)) {
      return invalid("server", absl::StrCat(prefix,
                                            "insecure_plaintext connects without TLS, so only to "
                                            "a loopback address (127.0.0.1, [::1], localhost) "
                                            "or a unix: socket"));
    }
    return absl::OkStatus();
  }
  if (c.tls_ca.empty()) {
    return invalid("tls_ca", "required (PEM CA of fleetca's server certificate)");
  }
  if (c.tls_cert.empty()) {
    return invalid("tls_cert", "required (the broker identity's certificate, PEM)");
  }
  if (c.tls_key.empty()) {
    return invalid("tls_key", absl::StrCat("required (the private key of ", prefix, "tls_cert)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> ChannelCredentialsFor(
    const ConnectionConfig& c) {
  if (c.insecure_plaintext) return grpc::InsecureChannelCredentials();
  grpc::SslCredentialsOptions options;
  auto ca = ReadFileToString(c.tls_ca);
  if (!ca.ok()) return ca.status();
  auto cert = ReadFileToString(c.tls_cert);
  if (!cert.ok()) return cert.status();
  auto key = ReadSecretFile(c.tls_key);
  if (!key.ok()) return key.status();
  options.pem_root_certs = *std::move(ca);
  options.pem_cert_chain = *std::move(cert);
  options.pem_private_key = *std::move(key);
  return grpc::SslCredentials(options);
}

std::shared_ptr<grpc::Channel> NewChannel(const ConnectionConfig& config,
                                          std::shared_ptr<grpc::ChannelCredentials> credentials) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(-1);
  // gRPC's own reconnection backoff grows to 120 s by default: a server down for a minute
  // would keep the stream away for two more. Followers retry on their own schedule.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 500);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 5000);
  if (!config.tls_server_name.empty()) args.SetSslTargetNameOverride(config.tls_server_name);
  return grpc::CreateCustomChannel(config.server, std::move(credentials), args);
}

v1::WatchRequest WatchRequestFor(const std::string& broker_id, int64_t since_revision,
                                 absl::Duration heartbeat_interval,
                                 const std::vector<v1::SyncObjectType>& object_types) {
  v1::WatchRequest request;
  request.set_broker_id(broker_id);
  request.set_since_revision(since_revision);
  const int64_t ms = absl::ToInt64Milliseconds(heartbeat_interval);
  request.mutable_heartbeat_interval()->set_seconds(ms / 1000);
  request.mutable_heartbeat_interval()->set_nanos(static_cast<int32_t>((ms % 1000) * 1000000));
  for (v1::SyncObjectType type : object_types) request.add_object_types(type);
  return request;
}

bool SlowRetry(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kPermissionDenied:
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kUnauthenticated:
    case absl::StatusCode::kUnimplemented:
    case absl::StatusCode::kFailedPrecondition:
      return true;
    default:
      return false;
  }
}

}  // namespace fleetca::sync_client
