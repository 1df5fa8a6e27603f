#pragma once

// The fleetca command-line client: the settings every command shares (connection, output,
// request id), the channel, and how a failed call becomes a message and an exit code.
// Commands live in cmd_<noun>.cc; each registers its subcommands with CLI11 and runs after
// the whole command line, the environment and the config file have been resolved.

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>

#include "cli/exit_codes.h"

namespace CLI {
class App;
}  // namespace CLI

namespace google::protobuf {
class Message;
}  // namespace google::protobuf

namespace fleetca::cli {

enum class OutputFormat { kTable, kJson, kPem, kDer };

// Settings: the global options. Flags beat environment variables, which beat the config
// file (see LoadConfigFile).
struct Settings {
  std::string address = "localhost:50051";
  std::string cacert;
  std::string cert;
  std::string key;
  std::string credential;
  std::string tls_server_name;
  bool insecure_plaintext = false;
  std::string timeout = "30s";
  std::string request_id;
  std::string output = "table";
  std::string config;
};

// CliError: what a command throws to stop with a message on stderr and an exit code. The
// message is printed as "fleetca: <message>".
class CliError : public std::runtime_error {
 public:
  CliError(int exit_code, const std::string& message)
      : std::runtime_error(message), exit_code_(exit_code) {}
  int exit_code() const { return exit_code_; }

 private:
  int exit_code_;
};

// UsageError: a CliError with exit code 2 (a bad argument found before any call).
CliError UsageError(const std::string& message);

class Cli {
 public:
  Settings settings;

  // The action of the selected command: set while parsing, run once settings are final.
  std::function<void()> action;

  // Channel: created on first use from the settings (TLS with the client certificate unless
  // --insecure-plaintext). Throws CliError when a credential file cannot be read.
  std::shared_ptr<grpc::Channel> Channel();

  // NewContext: a ClientContext with the x-request-id metadata and, when `deadline`, the
  // --timeout deadline.
  std::unique_ptr<grpc::ClientContext> NewContext(bool deadline = true);

  // RequestId: --request-id, or one generated for this run ("cli-" and 16 hex digits).
  const std::string& RequestId();

  // Check: throws CliError("<CODE>: <message>", ExitCodeFor(code)) unless ok.
  static void Check(const grpc::Status& status);

  // Format: the -o setting, checked against what the command supports.
  OutputFormat Format() const;

  // Timeout: --timeout parsed (a duration such as 30s, 2m; 0 for none).
  int64_t TimeoutMillis() const;

  // Call: one unary RPC, checked. Throws CliError on failure.
  template <class Stub, class Req, class Resp>
  Resp Call(Stub* stub, grpc::Status (Stub::*method)(grpc::ClientContext*, const Req&, Resp*),
            const Req& request) {
    Resp response;
    auto context = NewContext();
    Check((stub->*method)(context.get(), request, &response));
    return response;
  }

  // List: follows next_page_token until `limit` items (0: all) were collected; the items of
  // every page are merged into one response (next_page_token left set when the limit cut
  // the list short, and a note printed on stderr).
  template <class Stub, class Req, class Resp>
  Resp List(Stub* stub, grpc::Status (Stub::*method)(grpc::ClientContext*, const Req&, Resp*),
            Req request, int64_t limit, const char* items_field) {
    Resp all;
    Paginate(
        &request, &all, limit, items_field,
        [&](const google::protobuf::Message& req, google::protobuf::Message* resp) {
          auto context = NewContext();
          return (stub->*method)(context.get(), static_cast<const Req&>(req),
                                 static_cast<Resp*>(resp));
        },
        [] { return std::unique_ptr<google::protobuf::Message>(new Resp); });
    return all;
  }

 private:
  using PageCall =
      std::function<grpc::Status(const google::protobuf::Message&, google::protobuf::Message*)>;
  using NewMessage = std::function<std::unique_ptr<google::protobuf::Message>()>;
  void Paginate(google::protobuf::Message* request, google::protobuf::Message* all, int64_t limit,
                const char* items_field, const PageCall& call, const NewMessage& new_page);

  std::shared_ptr<grpc::Channel> channel_;
  std::string request_id_;
};

// LoadConfigFile applies the config file's settings (TOML, read by CLI11's parser: keys
// address, cacert, cert, key, credential, tls-server-name, insecure-plaintext, timeout,
// output, request-id) to the options of `app` that were given neither as flags nor by
// environment variables. `explicit_path`: the file was named (--config or FLEETCA_CONFIG), so
// it must exist; otherwise ~/.config/fleetca/config.toml is read if it exists.
void LoadConfigFile(CLI::App& app, Settings& settings, bool explicit_path);

// Registration of each noun's commands (cmd_<noun>.cc).
void AddCaCommands(CLI::App& app, Cli& cli);
void AddDeviceCommands(CLI::App& app, Cli& cli);
void AddCertCommands(CLI::App& app, Cli& cli);
void AddCrlCommands(CLI::App& app, Cli& cli);
void AddAclCommands(CLI::App& app, Cli& cli);
void AddBrokerCommands(CLI::App& app, Cli& cli);
void AddIdentityCommands(CLI::App& app, Cli& cli);
void AddAuditCommands(CLI::App& app, Cli& cli);

// Leaf: a subcommand of `parent` whose callback records `run` as the action.
CLI::App* Leaf(CLI::App* parent, Cli& cli, const std::string& name, const std::string& help,
               std::function<void()> run);

// Noun: a subcommand that needs one of its own subcommands.
CLI::App* Noun(CLI::App* parent, const std::string& name, const std::string& help);

// AddLimit: --limit N on a list command (default 500; 0 = all).
void AddLimit(CLI::App* cmd, int64_t* limit);

// ParsePkcs12Encryption: a --pkcs12-encryption value as a v1.Pkcs12Encryption number:
// "aes-256" (also "aes256", or any spelling ParseEnum takes) or "legacy"; "" gives
// UNSPECIFIED (the server's default, AES-256). Throws a usage CliError naming `flag`.
int ParsePkcs12Encryption(const std::string& text, const std::string& flag);

// BuildApp: the whole command tree with the global options (used by main and the tests).
std::unique_ptr<CLI::App> BuildApp(Cli& cli);

// Run: parses argv, resolves the settings, runs the command; returns the exit code (errors
// printed on stderr).
int Run(int argc, char** argv);

}  // namespace fleetca::cli
