#include "sync_agent/config.h"

#include <arpa/inet.h>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "sync_agent/file_replace.h"

namespace fleetca::sync_agent {
namespace {

absl::Status Invalid(absl::string_view flag, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat("--", flag, ": ", why));
}

bool ValidBrokerId(const std::string& id) {
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

}  // namespace

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

absl::Status CheckConfig(const AgentConfig& c) {
  if (c.server.empty()) return Invalid("server", "required (host:port of fleetca's gRPC API)");
  if (c.broker_id.empty()) return Invalid("broker_id", "required (the broker's id in fleetca)");
  if (!ValidBrokerId(c.broker_id)) {
    return Invalid("broker_id",
                   "1 to 63 characters of [a-z0-9.-], starting with a letter or digit");
  }
  if (c.paths.cafile.empty()) return Invalid("cafile", "required (mosquitto's cafile)");
  if (c.paths.crlfile.empty()) return Invalid("crlfile", "required (mosquitto's crlfile)");
  if (c.paths.acl_file.empty()) return Invalid("acl_file", "required (mosquitto's acl_file)");
  if (c.paths.cafile == c.paths.crlfile || c.paths.cafile == c.paths.acl_file ||
      c.paths.crlfile == c.paths.acl_file) {
    return Invalid("cafile", "--cafile, --crlfile and --acl_file must be three different files");
  }
  if (!c.mosquitto_pid_file.empty() && c.signal_pid != 0) {
    return Invalid("signal_pid", "give --mosquitto_pid_file or --signal_pid, not both");
  }
  if (c.signal_pid != 0 && c.signal_pid <= 1) {
    return Invalid("signal_pid", "must be the broker's process id (above 1)");
  }
  if (c.heartbeat_interval < absl::Seconds(1) || c.heartbeat_interval > absl::Seconds(60)) {
    return Invalid("heartbeat_interval", "must be between 1s and 60s");
  }
  if (c.min_write_interval < absl::ZeroDuration()) {
    return Invalid("min_write_interval", "must not be negative");
  }
  if (c.insecure_plaintext) {
    if (!IsLoopbackTarget(c.server)) {
      return Invalid("server",
                     "--insecure_plaintext connects without TLS, so only to a loopback address "
                     "(127.0.0.1, [::1], localhost) or a unix: socket");
    }
    return absl::OkStatus();
  }
  if (c.tls_ca.empty())
    return Invalid("tls_ca", "required (PEM CA of fleetca's server certificate)");
  if (c.tls_cert.empty()) {
    return Invalid("tls_cert", "required (the broker identity's certificate, PEM)");
  }
  if (c.tls_key.empty()) return Invalid("tls_key", "required (the private key of --tls_cert)");
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> ChannelCredentialsFor(
    const AgentConfig& c) {
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

}  // namespace fleetca::sync_agent
