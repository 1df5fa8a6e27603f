#include "server/app/config.h"

#include <cstdlib>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_split.h"
#include "common/file_util.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

ABSL_FLAG(std::string, database_url, "",
          "PostgreSQL connection URL (env FLEETCA_DATABASE_URL), e.g. "
          "postgresql://fleetca@127.0.0.1:5432/fleetca");
ABSL_FLAG(std::string, listen, "",
          "gRPC listen address (env FLEETCA_LISTEN; default 127.0.0.1:50051). TLS with client "
          "certificates; with --insecure_plaintext, a loopback address only.");
ABSL_FLAG(std::string, log_level, "", "debug, info, warning or error (env FLEETCA_LOG_LEVEL)");
ABSL_FLAG(std::string, access_log, "",
          "one log line per gRPC call: all (default), errors (failed calls only) or off "
          "(env FLEETCA_ACCESS_LOG)");
ABSL_FLAG(int, db_max_connections, 0,
          "most PostgreSQL connections (env FLEETCA_DB_MAX_CONNECTIONS; default 16)");
ABSL_FLAG(absl::Duration, db_acquire_timeout, absl::Seconds(5),
          "how long a call waits for a free database connection before UNAVAILABLE");
ABSL_FLAG(absl::Duration, db_connect_timeout, absl::Seconds(5),
          "timeout to open a database connection");
ABSL_FLAG(absl::Duration, shutdown_grace, absl::Seconds(10),
          "on SIGTERM, how long in-flight calls may take before they are cancelled");
ABSL_FLAG(std::string, kek_file, "",
          "file holding the current key-encryption key (env FLEETCA_KEK_FILE, or the key itself "
          "in FLEETCA_KEK); make one with `fleetca-server gen-kek --kek_id=...`");
ABSL_FLAG(std::vector<std::string>, previous_kek_files, {},
          "comma-separated files of older KEKs, to unwrap keys not yet re-wrapped "
          "(env FLEETCA_PREVIOUS_KEK_FILES)");
ABSL_FLAG(std::string, public_base_url, "",
          "base of the CRL and CA-certificate URLs put in issued certificates (env "
          "FLEETCA_PUBLIC_BASE_URL; default http://127.0.0.1:8080)");
ABSL_FLAG(std::string, http_listen, "",
          "HOST:PORT of the plain-HTTP port serving /crl/<issuer>.crl and /ca/<issuer>.crt, "
          "the URLs in issued certificates (env FLEETCA_HTTP_LISTEN; default 127.0.0.1:8080, "
          "port 0 for any free port, \"off\" for none)");
ABSL_FLAG(std::string, organization, "",
          "subject O of issued device and broker certificates (env FLEETCA_ORGANIZATION)");
ABSL_FLAG(std::string, ca_name, "fleetca",
          "init: the CA's name, prefix of its certificates' Common Names");
ABSL_FLAG(std::string, ca_key_algorithm, "ecdsa-p256",
          "init: ecdsa-p256, ecdsa-p384, rsa-2048, rsa-3072, rsa-4096 or ed25519");
ABSL_FLAG(bool, offline_root, false,
          "init: keep the root elsewhere: create the intermediates pending, with CSRs");
ABSL_FLAG(std::string, kek_id, "", "gen-kek: the id of the new KEK, e.g. kek-2026-11");
ABSL_FLAG(bool, insecure_plaintext, false,
          "DEVELOPMENT ONLY: serve gRPC without TLS and without client authentication (every "
          "caller acts as admin); refused unless --listen is a loopback address (env "
          "FLEETCA_INSECURE_PLAINTEXT=true)");
ABSL_FLAG(std::string, tls_cert_file, "",
          "serve this TLS server certificate (PEM, chain after it) instead of issuing one "
          "(env FLEETCA_TLS_CERT_FILE); re-read when it changes");
ABSL_FLAG(std::string, tls_key_file, "", "the private key of --tls_cert_file (env FLEETCA_TLS_KEY_FILE)");
ABSL_FLAG(std::string, tls_dir, "",
          "where the self-issued server certificate and key are kept, created (mode 0700) if "
          "missing (env FLEETCA_TLS_DIR; default: a private temporary directory, removed at "
          "exit)");
ABSL_FLAG(std::vector<std::string>, tls_server_names, {},
          "DNS names and IP addresses of the self-issued server certificate (env "
          "FLEETCA_TLS_SERVER_NAMES; default localhost,127.0.0.1,::1 and the host name)");
ABSL_FLAG(absl::Duration, crl_validity, absl::Hours(24),
          "how long each CRL is valid (nextUpdate - thisUpdate); CRLs are re-issued at half "
          "of it even when nothing changed, and within about a second of a revocation");
ABSL_FLAG(bool, crl_deltas, true,
          "publish delta CRLs (RFC 5280 5.2.4) at /crl/delta/<issuer>.crl within about a second "
          "of a revocation, and complete CRLs as often as they cost at most 1% of the time "
          "(at once when small, every few minutes at a million entries); false: a complete "
          "CRL within about a second of every revocation (env FLEETCA_CRL_DELTAS)");
ABSL_FLAG(absl::Duration, crl_complete_min_interval, absl::ZeroDuration(),
          "with --crl_deltas: the least time between two complete CRLs of an issuer while "
          "revocations change (default 0: as often as their cost allows; CRLs are re-issued "
          "at half their validity regardless)");
ABSL_FLAG(absl::Duration, tls_server_validity, absl::Hours(24 * 30),
          "lifetime of the self-issued server certificate (renewed at two thirds of it)");
ABSL_FLAG(double, issuance_rate_limit, 50,
          "certificates per second one identity may have signed (token bucket; 0: no limit)");
ABSL_FLAG(double, issuance_burst, 200, "burst of --issuance_rate_limit");
ABSL_FLAG(int, max_request_bytes, 32 << 20, "largest request message accepted");
ABSL_FLAG(std::string, admin_name, "admin", "init: name of the first admin identity");
ABSL_FLAG(std::string, admin_credential_file, "fleetca-admin.pem",
          "init: where to write the first admin's key, certificate and chain (mode 0600; "
          "the server CA bundle goes to ca.pem beside it)");
ABSL_FLAG(int64_t, from_sequence, 0, "verify-audit: first event (0: the first)");
ABSL_FLAG(int64_t, to_sequence, 0, "verify-audit: last event (0: the newest)");
ABSL_FLAG(std::string, anchor, "",
          "verify-audit: SEQ:HASH of an event recorded earlier (detects a rewritten tail)");

namespace fleetca::app {
namespace {

// Pick returns the flag's value, else the environment variable's, else "".
std::string Pick(const std::string& flag_value, const char* env) {
  if (!flag_value.empty()) return flag_value;
  const char* v = std::getenv(env);
  return v != nullptr ? std::string(v) : std::string();
}

}  // namespace

absl::Status CheckPlaintextListen(const std::string& listen) {
  if (absl::StartsWith(listen, "unix:")) return absl::OkStatus();
  std::string host;
  if (absl::StartsWith(listen, "[")) {
    const size_t end = listen.find(']');
    if (end == std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat("--listen: malformed address \"", listen, "\""));
    }
    host = listen.substr(1, end - 1);
  } else {
    const size_t colon = listen.rfind(':');
    if (colon == std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("--listen: expected HOST:PORT, got \"", listen, "\""));
    }
    host = listen.substr(0, colon);
  }
  if (host == "localhost" || host == "::1" || absl::StartsWith(host, "127.")) {
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "--listen: \"", listen,
      "\" is not a loopback address; --insecure_plaintext serves without TLS or client "
      "authentication, so only on 127.0.0.1, [::1], localhost or a unix: socket"));
}

absl::StatusOr<Config> LoadConfig(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "fleetca-server [serve|migrate|init|verify-audit|gen-kek|roles] [flags]\n"
      "  serve    apply pending migrations, load the CA keys, serve gRPC (default)\n"
      "  migrate  apply pending migrations and exit\n"
      "  init     apply migrations, create what is missing of the CA hierarchy and the first\n"
      "           admin identity (its credential written to --admin_credential_file), and exit\n"
      "  verify-audit  check the audit log's hash chain; exit 0 intact, 3 broken\n"
      "  gen-kek  print a new key-encryption key (store it as a secret, mode 0600)\n"
      "  roles    print the authorization table: one JSON line per RPC with its roles");
  std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  Config c;
  if (args.size() > 2) {
    return absl::InvalidArgumentError(
        "expected at most one command: serve, migrate, init, verify-audit, gen-kek or roles");
  }
  if (args.size() == 2) c.command = args[1];
  if (c.command != "serve" && c.command != "migrate" && c.command != "init" &&
      c.command != "gen-kek" && c.command != "verify-audit" && c.command != "roles") {
    return absl::InvalidArgumentError(absl::StrCat("unknown command \"", c.command,
                                                   "\": expected serve, migrate, init, "
                                                   "verify-audit, gen-kek or roles"));
  }
  if (c.command == "roles") return c;
  if (c.command == "gen-kek") {
    c.kek_id = absl::GetFlag(FLAGS_kek_id);
    if (c.kek_id.empty()) return absl::InvalidArgumentError("gen-kek: --kek_id is required");
    return c;
  }
  c.database_url = Pick(absl::GetFlag(FLAGS_database_url), "FLEETCA_DATABASE_URL");
  if (c.database_url.empty()) {
    return absl::InvalidArgumentError(
        "--database_url (or FLEETCA_DATABASE_URL) is required, e.g. "
        "postgresql://fleetca@127.0.0.1:5432/fleetca");
  }
  if (std::string l = Pick(absl::GetFlag(FLAGS_listen), "FLEETCA_LISTEN"); !l.empty()) {
    c.listen = l;
  }
  if (std::string l = Pick(absl::GetFlag(FLAGS_log_level), "FLEETCA_LOG_LEVEL"); !l.empty()) {
    if (!ParseLogLevel(l, &c.log_level)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--log_level: expected debug, info, warning or error, got \"", l, "\""));
    }
  }
  if (std::string a = Pick(absl::GetFlag(FLAGS_access_log), "FLEETCA_ACCESS_LOG"); !a.empty()) {
    if (!api::ParseAccessLog(a, &c.access_log)) {
      return absl::InvalidArgumentError(
          absl::StrCat("--access_log: expected all, errors or off, got \"", a, "\""));
    }
  }

  int max_conn = absl::GetFlag(FLAGS_db_max_connections);
  if (max_conn == 0) {
    if (const char* v = std::getenv("FLEETCA_DB_MAX_CONNECTIONS"); v != nullptr && *v != '\0') {
      if (!absl::SimpleAtoi(v, &max_conn)) {
        return absl::InvalidArgumentError("FLEETCA_DB_MAX_CONNECTIONS: not a number");
      }
    }
  }
  if (max_conn != 0) c.db_max_connections = max_conn;
  if (c.db_max_connections < 1 || c.db_max_connections > 1000) {
    return absl::InvalidArgumentError("--db_max_connections: must be between 1 and 1000");
  }
  c.db_acquire_timeout = absl::GetFlag(FLAGS_db_acquire_timeout);
  c.db_connect_timeout = absl::GetFlag(FLAGS_db_connect_timeout);
  c.shutdown_grace = absl::GetFlag(FLAGS_shutdown_grace);
  if (c.db_acquire_timeout <= absl::ZeroDuration() || c.db_connect_timeout <= absl::ZeroDuration() ||
      c.shutdown_grace < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("timeouts must be positive");
  }
  c.insecure_plaintext = absl::GetFlag(FLAGS_insecure_plaintext) ||
                         Pick("", "FLEETCA_INSECURE_PLAINTEXT") == "true";
  if (c.command == "serve" && c.insecure_plaintext) {
    if (absl::Status st = CheckPlaintextListen(c.listen); !st.ok()) return st;
  }
  c.tls_cert_file = Pick(absl::GetFlag(FLAGS_tls_cert_file), "FLEETCA_TLS_CERT_FILE");
  c.tls_key_file = Pick(absl::GetFlag(FLAGS_tls_key_file), "FLEETCA_TLS_KEY_FILE");
  if (c.tls_cert_file.empty() != c.tls_key_file.empty()) {
    return absl::InvalidArgumentError("--tls_cert_file and --tls_key_file go together");
  }
  c.tls_dir = Pick(absl::GetFlag(FLAGS_tls_dir), "FLEETCA_TLS_DIR");
  c.tls_server_names = absl::GetFlag(FLAGS_tls_server_names);
  if (c.tls_server_names.empty()) {
    if (const char* v = std::getenv("FLEETCA_TLS_SERVER_NAMES"); v != nullptr && *v != '\0') {
      c.tls_server_names = absl::StrSplit(v, ',', absl::SkipEmpty());
    }
  }
  c.crl_deltas = absl::GetFlag(FLAGS_crl_deltas);
  if (const std::string env = Pick("", "FLEETCA_CRL_DELTAS"); !env.empty()) {
    if (env != "true" && env != "false") {
      return absl::InvalidArgumentError("FLEETCA_CRL_DELTAS: true or false");
    }
    c.crl_deltas = c.crl_deltas && env == "true";  // the flag's false wins
  }
  c.crl_complete_min_interval = absl::GetFlag(FLAGS_crl_complete_min_interval);
  if (c.crl_complete_min_interval < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("--crl_complete_min_interval: must not be negative");
  }
  c.crl_validity = absl::GetFlag(FLAGS_crl_validity);
  if (c.crl_validity < absl::Minutes(10) || c.crl_validity > absl::Hours(24 * 31)) {
    return absl::InvalidArgumentError("--crl_validity: between 10m and 744h");
  }
  c.tls_server_validity = absl::GetFlag(FLAGS_tls_server_validity);
  if (c.tls_server_validity < absl::Hours(1)) {
    return absl::InvalidArgumentError("--tls_server_validity: at least 1h");
  }
  c.issuance_rate_limit = absl::GetFlag(FLAGS_issuance_rate_limit);
  c.issuance_burst = absl::GetFlag(FLAGS_issuance_burst);
  if (c.issuance_rate_limit < 0 || c.issuance_burst < 1) {
    return absl::InvalidArgumentError(
        "--issuance_rate_limit must be >= 0 and --issuance_burst >= 1");
  }
  c.max_request_bytes = absl::GetFlag(FLAGS_max_request_bytes);
  if (c.max_request_bytes < 4096) {
    return absl::InvalidArgumentError("--max_request_bytes: at least 4096");
  }
  c.admin_name = absl::GetFlag(FLAGS_admin_name);
  c.admin_credential_file = absl::GetFlag(FLAGS_admin_credential_file);
  c.verify_from = absl::GetFlag(FLAGS_from_sequence);
  c.verify_to = absl::GetFlag(FLAGS_to_sequence);
  c.verify_anchor = absl::GetFlag(FLAGS_anchor);
  if (std::string u = Pick(absl::GetFlag(FLAGS_public_base_url), "FLEETCA_PUBLIC_BASE_URL");
      !u.empty()) {
    while (!u.empty() && u.back() == '/') u.pop_back();
    c.public_base_url = u;
  }
  if (!absl::StartsWith(c.public_base_url, "http://") &&
      !absl::StartsWith(c.public_base_url, "https://")) {
    return absl::InvalidArgumentError("--public_base_url: must start with http:// or https://");
  }
  if (std::string h = Pick(absl::GetFlag(FLAGS_http_listen), "FLEETCA_HTTP_LISTEN"); !h.empty()) {
    c.http_listen = h;
  }
  if (c.http_listen != "off") {
    const size_t colon = c.http_listen.rfind(':');
    int port = -1;
    if (colon == std::string::npos || colon == 0 ||
        !absl::SimpleAtoi(c.http_listen.substr(colon + 1), &port) || port < 0 || port > 65535) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--http_listen: \"", c.http_listen, "\" is not HOST:PORT (or \"off\")"));
    }
    c.http_host = c.http_listen.substr(0, colon);
    if (c.http_host.size() > 2 && c.http_host.front() == '[' && c.http_host.back() == ']') {
      c.http_host = c.http_host.substr(1, c.http_host.size() - 2);
    }
    c.http_port = port;
  }
  c.organization = Pick(absl::GetFlag(FLAGS_organization), "FLEETCA_ORGANIZATION");
  c.ca_name = absl::GetFlag(FLAGS_ca_name);
  c.ca_key_algorithm = absl::GetFlag(FLAGS_ca_key_algorithm);
  c.offline_root = absl::GetFlag(FLAGS_offline_root);
  if (c.command == "serve" || c.command == "init") {
    // The current KEK: a file (flag or FLEETCA_KEK_FILE), else the value in FLEETCA_KEK.
    const std::string kek_file = Pick(absl::GetFlag(FLAGS_kek_file), "FLEETCA_KEK_FILE");
    if (!kek_file.empty()) {
      auto text = ReadSecretFile(kek_file);
      if (!text.ok()) return absl::InvalidArgumentError(absl::StrCat("--kek_file: ", text.status().message()));
      c.keks.push_back(*text);
    } else if (const char* v = std::getenv("FLEETCA_KEK"); v != nullptr && *v != '\0') {
      c.keks.push_back(v);
    } else {
      return absl::InvalidArgumentError(
          "no key-encryption key: set --kek_file or FLEETCA_KEK_FILE (a file), or FLEETCA_KEK "
          "(the key). CA private keys are stored only encrypted under it. Make one with: "
          "fleetca-server gen-kek --kek_id=kek-1 > kek && chmod 600 kek");
    }
    std::vector<std::string> previous = absl::GetFlag(FLAGS_previous_kek_files);
    if (previous.empty()) {
      if (const char* v = std::getenv("FLEETCA_PREVIOUS_KEK_FILES"); v != nullptr && *v != '\0') {
        previous = absl::StrSplit(v, ',', absl::SkipEmpty());
      }
    }
    for (const std::string& f : previous) {
      auto text = ReadSecretFile(f);
      if (!text.ok()) {
        return absl::InvalidArgumentError(absl::StrCat("--previous_kek_files: ", text.status().message()));
      }
      c.keks.push_back(*text);
    }
  }
  return c;
}

}  // namespace fleetca::app
