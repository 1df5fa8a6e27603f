#include "cli/cli.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/duration.pb.h>
#include <google/protobuf/message.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "cli/output.h"
#include "common/file_util.h"

namespace fleetca::cli {

namespace pb = google::protobuf;

CliError UsageError(const std::string& message) { return CliError(kExitUsage, message); }

namespace {

// PemBlocks: the "-----BEGIN <label>-----" ... "-----END <label>-----" blocks of a file whose
// label contains `label_part`, each with its final newline.
std::string PemBlocks(const std::string& text, const std::string& label_part, bool skip_first) {
  std::string out;
  size_t pos = 0;
  bool first = true;
  while (true) {
    const size_t begin = text.find("-----BEGIN ", pos);
    if (begin == std::string::npos) break;
    const size_t label_end = text.find("-----", begin + 11);
    if (label_end == std::string::npos) break;
    const std::string label = text.substr(begin + 11, label_end - begin - 11);
    const std::string end_marker = "-----END " + label + "-----";
    const size_t end = text.find(end_marker, label_end);
    if (end == std::string::npos) break;
    pos = end + end_marker.size();
    if (label.find(label_part) == std::string::npos) continue;
    if (first && skip_first) {
      first = false;
      continue;
    }
    first = false;
    out += text.substr(begin, pos - begin);
    out += '\n';
  }
  return out;
}

std::string ReadOrThrow(const std::string& path, const char* flag, bool secret) {
  auto content = secret ? ReadSecretFile(path) : ReadFileToString(path);
  if (!content.ok()) {
    throw CliError(kExitError, absl::StrCat(flag, ": ", content.status().message()));
  }
  return *std::move(content);
}

std::string GeneratedRequestId() {
  std::random_device rd;
  std::mt19937_64 gen(
      (static_cast<uint64_t>(rd()) << 32) ^ rd() ^
      static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()));
  return absl::StrFormat("cli-%016x", gen());
}

}  // namespace

std::shared_ptr<grpc::Channel> Cli::Channel() {
  if (channel_) return channel_;
  const Settings& s = settings;
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  if (s.insecure_plaintext) {
    credentials = grpc::InsecureChannelCredentials();
  } else {
    std::string cert_file = s.cert.empty() ? s.credential : s.cert;
    std::string key_file = s.key.empty() ? s.credential : s.key;
    if (cert_file.empty() != key_file.empty()) {
      throw UsageError("--cert and --key go together (or give --credential FILE)");
    }
    grpc::SslCredentialsOptions options;
    if (!cert_file.empty()) {
      const std::string cert_text = ReadOrThrow(cert_file, "--cert", false);
      const std::string key_text = ReadOrThrow(key_file, s.key.empty() ? "--credential" : "--key",
                                               /*secret=*/true);
      options.pem_cert_chain = PemBlocks(cert_text, "CERTIFICATE", false);
      options.pem_private_key = PemBlocks(key_text, "PRIVATE KEY", false);
      if (options.pem_cert_chain.empty()) {
        throw UsageError(absl::StrCat(cert_file, ": no PEM certificate in it"));
      }
      if (options.pem_private_key.empty()) {
        throw UsageError(absl::StrCat(key_file, ": no PEM private key in it"));
      }
    }
    if (!s.cacert.empty()) {
      options.pem_root_certs = ReadOrThrow(s.cacert, "--cacert", false);
    } else if (!cert_file.empty()) {
      // The CA certificates after the client's own: fleetca's chain, up to its root, which
      // also signed the server's certificate (unless the server was given one of its own).
      options.pem_root_certs = PemBlocks(ReadOrThrow(cert_file, "--cert", false), "CERTIFICATE",
                                         /*skip_first=*/true);
    }
    if (options.pem_root_certs.empty()) {
      throw UsageError(
          "no CA to verify the server with: give --cacert FILE (FLEETCA_CACERT), a credential "
          "holding its chain, or --insecure-plaintext for a development server without TLS");
    }
    credentials = grpc::SslCredentials(options);
  }
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(-1);
  if (!s.tls_server_name.empty()) args.SetSslTargetNameOverride(s.tls_server_name);
  channel_ = grpc::CreateCustomChannel(s.address, credentials, args);
  return channel_;
}

const std::string& Cli::RequestId() {
  if (request_id_.empty()) {
    request_id_ = settings.request_id.empty() ? GeneratedRequestId() : settings.request_id;
  }
  return request_id_;
}

int64_t Cli::TimeoutMillis() const {
  const pb::Duration d = ParseDuration(settings.timeout, "--timeout");
  return d.seconds() * 1000 + d.nanos() / 1000000;
}

std::unique_ptr<grpc::ClientContext> Cli::NewContext(bool deadline) {
  auto context = std::make_unique<grpc::ClientContext>();
  context->AddMetadata("x-request-id", RequestId());
  const int64_t ms = TimeoutMillis();
  if (deadline && ms > 0) {
    context->set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(ms));
  }
  return context;
}

void Cli::Check(const grpc::Status& status) {
  if (status.ok()) return;
  const int code = static_cast<int>(status.error_code());
  std::string message = status.error_message();
  if (code == grpc::StatusCode::UNIMPLEMENTED && message.empty()) {
    message = "the server does not implement this call";
  }
  throw CliError(ExitCodeFor(code), StatusCodeName(code) + ": " + message);
}

OutputFormat Cli::Format() const {
  if (settings.output == "table") return OutputFormat::kTable;
  if (settings.output == "json") return OutputFormat::kJson;
  if (settings.output == "pem") return OutputFormat::kPem;
  if (settings.output == "der") return OutputFormat::kDer;
  throw UsageError("-o: '" + settings.output + "' is not one of table|json|pem|der");
}

void Cli::Paginate(pb::Message* request, pb::Message* all, int64_t limit, const char* items_field,
                   const PageCall& call, const NewMessage& new_page) {
  const pb::Reflection* rr = request->GetReflection();
  const pb::FieldDescriptor* size_f = request->GetDescriptor()->FindFieldByName("page_size");
  const pb::FieldDescriptor* token_f = request->GetDescriptor()->FindFieldByName("page_token");
  const pb::FieldDescriptor* items_f = all->GetDescriptor()->FindFieldByName(items_field);
  const pb::FieldDescriptor* next_f = all->GetDescriptor()->FindFieldByName("next_page_token");
  const pb::Reflection* ar = all->GetReflection();
  while (true) {
    const int64_t have = ar->FieldSize(*all, items_f);
    const int64_t want = limit > 0 ? std::min<int64_t>(limit - have, 1000) : 1000;
    rr->SetInt32(request, size_f, static_cast<int32_t>(want));
    std::unique_ptr<pb::Message> page = new_page();
    Check(call(*request, page.get()));
    const std::string next = page->GetReflection()->GetString(*page, next_f);
    all->MergeFrom(*page);
    if (next.empty()) {
      ar->SetString(all, next_f, "");
      return;
    }
    if (limit > 0 && ar->FieldSize(*all, items_f) >= limit) {
      ar->SetString(all, next_f, next);
      std::cerr << "fleetca: showing the first " << limit
                << " (--limit); there are more: --limit 0 lists them all\n";
      return;
    }
    rr->SetString(request, token_f, next);
  }
}

CLI::App* Leaf(CLI::App* parent, Cli& cli, const std::string& name, const std::string& help,
               std::function<void()> run) {
  CLI::App* sub = parent->add_subcommand(name, help);
  sub->fallthrough();
  sub->callback([&cli, run = std::move(run)] { cli.action = run; });
  return sub;
}

CLI::App* Noun(CLI::App* parent, const std::string& name, const std::string& help) {
  CLI::App* sub = parent->add_subcommand(name, help);
  sub->fallthrough();
  sub->require_subcommand(1);
  return sub;
}

void AddLimit(CLI::App* cmd, int64_t* limit) {
  cmd->add_option("--limit", *limit, "at most this many items, following pages (0: all)")
      ->capture_default_str();
}

namespace {

struct ConfigKey {
  const char* name;  // the long flag without "--", as in the config file
  std::string Settings::*text;
  bool Settings::*flag;
};

const ConfigKey kConfigKeys[] = {
    {"address", &Settings::address, nullptr},
    {"cacert", &Settings::cacert, nullptr},
    {"cert", &Settings::cert, nullptr},
    {"key", &Settings::key, nullptr},
    {"credential", &Settings::credential, nullptr},
    {"tls-server-name", &Settings::tls_server_name, nullptr},
    {"insecure-plaintext", nullptr, &Settings::insecure_plaintext},
    {"timeout", &Settings::timeout, nullptr},
    {"output", &Settings::output, nullptr},
    {"request-id", &Settings::request_id, nullptr},
};

std::string ExpandHome(const std::string& path) {
  if (path.size() >= 2 && path[0] == '~' && path[1] == '/') {
    const char* home = std::getenv("HOME");
    if (home != nullptr) return std::string(home) + path.substr(1);
  }
  return path;
}

}  // namespace

void LoadConfigFile(CLI::App& app, Settings& settings, bool explicit_path) {
  std::string path = settings.config;
  if (path.empty()) {
    const char* home = std::getenv("HOME");
    if (home == nullptr) return;
    path = std::string(home) + "/.config/fleetca/config.toml";
    std::ifstream probe(path);
    if (!probe) return;
  }
  path = ExpandHome(path);
  std::ifstream in(path);
  if (!in) {
    if (explicit_path) throw UsageError("--config: cannot read " + path);
    return;
  }
  std::vector<CLI::ConfigItem> items;
  try {
    items = CLI::ConfigTOML().from_config(in);
  } catch (const CLI::ParseError& e) {
    throw UsageError(path + ": " + e.what());
  }
  for (const CLI::ConfigItem& item : items) {
    const std::string name = item.fullname();
    if (item.parents.empty() && (name == "++" || name == "--")) continue;  // section markers
    const ConfigKey* key = nullptr;
    for (const ConfigKey& k : kConfigKeys) {
      std::string alt = k.name;
      std::replace(alt.begin(), alt.end(), '-', '_');
      if (name == k.name || name == alt) key = &k;
    }
    if (key == nullptr) {
      throw UsageError(absl::StrCat(path, ": unknown setting '", name,
                                    "' (known: address, cacert, cert, key, credential, "
                                    "tls-server-name, insecure-plaintext, timeout, output, "
                                    "request-id)"));
    }
    const CLI::Option* opt = app.get_option_no_throw(std::string("--") + key->name);
    if (opt != nullptr && opt->count() > 0) continue;  // a flag or the environment said it
    const std::string value = item.inputs.empty() ? "" : item.inputs.front();
    if (key->text != nullptr) {
      std::string v = value;
      if (key->text != &Settings::output && key->text != &Settings::address &&
          key->text != &Settings::timeout && key->text != &Settings::request_id &&
          key->text != &Settings::tls_server_name) {
        v = ExpandHome(v);
      }
      settings.*(key->text) = v;
    } else {
      settings.*(key->flag) = value == "true" || value == "1" || value == "yes" || value == "on";
    }
  }
}

std::unique_ptr<CLI::App> BuildApp(Cli& cli) {
  auto app = std::make_unique<CLI::App>(
      "fleetca: the command-line client of the fleetca certificate authority and device "
      "registry (docs/cli.md)",
      "fleetca");
  app->require_subcommand(1);
  app->fallthrough();
  app->footer(
      "Exit codes: 0 ok, 1 error, 2 usage or INVALID_ARGUMENT, 3 NOT_FOUND, 4 conflict "
      "(ALREADY_EXISTS, ABORTED, FAILED_PRECONDITION), 5 PERMISSION_DENIED/UNAUTHENTICATED, "
      "6 UNAVAILABLE/DEADLINE_EXCEEDED/RESOURCE_EXHAUSTED (retry later), 7 some import rows "
      "failed, 8 UNIMPLEMENTED.");
  Settings& s = cli.settings;
  app->add_option("--address", s.address, "host:port of the fleetca gRPC API")
      ->envname("FLEETCA_ADDRESS")
      ->capture_default_str();
  app->add_option("--cacert", s.cacert, "PEM CA bundle that verifies the server")
      ->envname("FLEETCA_CACERT");
  app->add_option("--cert", s.cert, "client certificate (PEM, chain after it)")
      ->envname("FLEETCA_CERT");
  app->add_option("--key", s.key, "private key of --cert (PEM, mode 0600)")->envname("FLEETCA_KEY");
  app->add_option("--credential", s.credential,
                  "one PEM file with key, certificate and chain (what fleetca-server init "
                  "writes)")
      ->envname("FLEETCA_CREDENTIAL");
  app->add_option("--tls-server-name", s.tls_server_name,
                  "name expected in the server's certificate (default: the host of --address)")
      ->envname("FLEETCA_TLS_SERVER_NAME");
  app->add_flag("--insecure-plaintext", s.insecure_plaintext,
                "no TLS (a development server started with --insecure_plaintext)")
      ->envname("FLEETCA_INSECURE_PLAINTEXT");
  app->add_option("--timeout", s.timeout, "deadline of each call (30s, 2m; 0: none)")
      ->envname("FLEETCA_TIMEOUT")
      ->capture_default_str();
  app->add_option("--request-id", s.request_id,
                  "x-request-id sent with every call (and the idempotency key of the signing "
                  "calls); generated when not given");
  app->add_option("-o,--output", s.output, "output format: table|json|pem|der")
      ->envname("FLEETCA_OUTPUT")
      ->capture_default_str();
  app->add_option("--config", s.config,
                  "config file (TOML; default ~/.config/fleetca/config.toml when it exists)")
      ->envname("FLEETCA_CONFIG");

  AddCaCommands(*app, cli);
  AddDeviceCommands(*app, cli);
  AddCertCommands(*app, cli);
  AddCrlCommands(*app, cli);
  AddAclCommands(*app, cli);
  AddBrokerCommands(*app, cli);
  AddIdentityCommands(*app, cli);
  AddAuditCommands(*app, cli);
  return app;
}

int Run(int argc, char** argv) {
  Cli cli;
  std::unique_ptr<CLI::App> app = BuildApp(cli);
  try {
    app->parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app->exit(e);
    return code == 0 ? kExitOk : kExitUsage;
  }
  try {
    LoadConfigFile(*app, cli.settings, !cli.settings.config.empty());
    (void)cli.Format();
    (void)cli.TimeoutMillis();
    if (!cli.action) throw UsageError("no command (see fleetca --help)");
    cli.action();
    return kExitOk;
  } catch (const CliError& e) {
    std::cout.flush();
    std::cerr << "fleetca: " << e.what() << "\n";
    return e.exit_code();
  } catch (const std::exception& e) {
    std::cout.flush();
    std::cerr << "fleetca: " << e.what() << "\n";
    return kExitError;
  }
}

}  // namespace fleetca::cli
