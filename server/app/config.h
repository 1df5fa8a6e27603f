#pragma once

// Server configuration: flags first, then FLEETCA_* environment variables, then defaults.

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/logging.h"
#include "server/api/rpc_observer.h"

namespace fleetca::app {

struct Config {
  std::string command = "serve";  // serve | migrate | init | gen-kek
  std::string database_url;       // --database_url / FLEETCA_DATABASE_URL (required)
  std::string listen = "127.0.0.1:50051";  // --listen / FLEETCA_LISTEN
  LogLevel log_level = LogLevel::kInfo;    // --log_level / FLEETCA_LOG_LEVEL
  api::AccessLog access_log = api::AccessLog::kAll;  // --access_log / FLEETCA_ACCESS_LOG
  int db_max_connections = 16;             // --db_max_connections / FLEETCA_DB_MAX_CONNECTIONS
  absl::Duration db_acquire_timeout = absl::Seconds(5);
  absl::Duration db_connect_timeout = absl::Seconds(5);
  absl::Duration shutdown_grace = absl::Seconds(10);  // --shutdown_grace

  // Key-encryption keys, one-line form (pki/kek.h): the current one first, then older ones
  // still needed to unwrap keys not yet re-wrapped. From FLEETCA_KEK or --kek_file, plus
  // --previous_kek_files. Required by serve and init.
  std::vector<std::string> keks;
  std::string public_base_url = "http://127.0.0.1:8080";  // --public_base_url
  std::string http_listen = "127.0.0.1:8080";  // --http_listen; "off": no HTTP port
  std::string http_host;                        // parsed from http_listen
  int http_port = 0;
  std::string organization;                                // --organization: subject O
  // init: the CA's name and algorithms.
  std::string ca_name = "fleetca";
  std::string ca_key_algorithm = "ecdsa-p256";
  bool offline_root = false;
  // gen-kek: the id of the new KEK.
  std::string kek_id;

  // TLS (serve). By default the server issues its own certificate from the brokers CA at
  // start (and again before it expires), kept in tls_dir; with tls_cert_file and
  // tls_key_file it serves those instead (re-read when they change). insecure_plaintext
  // (development only) serves without TLS and without client authentication, and only on
  // a loopback address.
  bool insecure_plaintext = false;
  std::string tls_cert_file;
  std::string tls_key_file;
  std::string tls_dir;
  std::vector<std::string> tls_server_names;  // DNS names and IP addresses
  absl::Duration tls_server_validity = absl::Hours(24 * 30);
  absl::Duration crl_validity = absl::Hours(24);
  bool crl_deltas = true;
  absl::Duration crl_complete_min_interval;
  // Per-identity issuance limit (certificates per second and burst); 0 disables.
  double issuance_rate_limit = 50;
  double issuance_burst = 200;
  int max_request_bytes = 32 << 20;
  // init: the first admin identity and where its credential (key + certificate + chain,
  // mode 0600) and the server CA bundle (ca.pem beside it) are written.
  std::string admin_name = "admin";
  std::string admin_credential_file = "fleetca-admin.pem";
  // verify-audit: the range and an optional anchor "SEQ:HEX".
  int64_t verify_from = 0;
  int64_t verify_to = 0;
  std::string verify_anchor;
};

// LoadConfig parses argv (the first non-flag argument is the command) and the environment.
// INVALID_ARGUMENT names the flag or variable and says why.
absl::StatusOr<Config> LoadConfig(int argc, char** argv);

// CheckPlaintextListen accepts only loopback addresses (127.0.0.0/8, ::1, localhost) and
// unix sockets: --insecure_plaintext must never serve a network.
absl::Status CheckPlaintextListen(const std::string& listen);

}  // namespace fleetca::app
