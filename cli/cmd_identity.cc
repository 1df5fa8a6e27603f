// fleetca identity ...: IdentityService. A private key made by the server is written only to
// --out (mode 0600), or to stdout with --print-key.

#include <CLI/CLI.hpp>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "cli/cli.h"
#include "cli/output.h"
#include "fleetca/v1/identity.grpc.pb.h"

namespace fleetca::cli {

namespace {

using Identities = v1::IdentityService;

const std::vector<Column> kIdentityColumns = {
    {"NAME", "name"},
    {"ROLE", "role"},
    {"STATUS", "status"},
    {"CERTS", "active_certificate_count"},
    {"NOT-AFTER", "latest_certificate.not_after"},
    {"SERIAL", "latest_certificate.serial"},
    {"DISPLAY-NAME", "display_name"},
};

struct KeyArgs {
  std::string csr, key_algorithm, validity, out;
  bool print_key = false;
};

void AddKeyArgs(CLI::App* c, KeyArgs* o) {
  c->add_option("--csr", o->csr, "your own CSR (PEM file; no key leaves the server then)");
  c->add_option("--key-algorithm", o->key_algorithm,
                "key the server generates (default ecdsa-p256): " +
                    EnumChoices(v1::KeyAlgorithm_descriptor()));
  c->add_option("--validity", o->validity, "lifetime (default: the server's)");
  c->add_option("--out", o->out,
                "write the credential: key (when the server made it), certificate and chain, "
                "mode 0600");
  c->add_flag("--print-key", o->print_key, "print the generated private key on stdout too");
}

// FillKeySource: the request's key (the caller's CSR, or the algorithm of the key the server
// generates) and validity, for IssueIdentity and RenewIdentity alike.
template <class Request>
void FillKeySource(const KeyArgs& o, Request* req) {
  if (!o.csr.empty()) {
    req->set_csr_pem(ReadInputFile(o.csr));
  } else {
    req->set_generate_key_algorithm(
        o.key_algorithm.empty()
            ? v1::KEY_ALGORITHM_ECDSA_P256
            : static_cast<v1::KeyAlgorithm>(
                  ParseEnum(v1::KeyAlgorithm_descriptor(), o.key_algorithm, "--key-algorithm")));
  }
  if (!o.validity.empty()) *req->mutable_validity() = ParseDuration(o.validity, "--validity");
}

void CheckKeyArgs(const KeyArgs& o) {
  if (o.csr.empty() && o.out.empty() && !o.print_key) {
    throw UsageError(
        "the server generates the private key: give --out FILE to write it (mode 0600), "
        "--csr FILE to keep your own key, or --print-key to print it");
  }
  if (!o.csr.empty() && !o.key_algorithm.empty()) {
    throw UsageError("--csr and --key-algorithm exclude each other");
  }
}

// Writes the credential file and shows the result without the key (unless --print-key).
template <class Resp>
void Finish(Cli& cli, const KeyArgs& o, Resp resp, const v1::Certificate& cert) {
  const std::string key = resp.private_key_pem();
  if (!o.out.empty()) {
    WriteOutputFile(o.out, key + cert.certificate_pem() + cert.chain_pem(), 0600);
    std::cerr << "fleetca: wrote " << o.out << " (mode 0600"
              << (key.empty() ? "" : ", holds the private key") << ")\n";
  }
  if (!o.print_key) resp.clear_private_key_pem();
  if (cli.Format() == OutputFormat::kPem) {
    std::cout << (o.print_key ? key : "") << cert.certificate_pem() << cert.chain_pem();
    return;
  }
  Show(cli, resp);
  if (o.print_key && cli.Format() == OutputFormat::kTable) std::cout << key;
}

}  // namespace

void AddIdentityCommands(CLI::App& app, Cli& cli) {
  CLI::App* noun = Noun(&app, "identity", "API and MQTT identities (IdentityService)");

  {  // issue
    struct Opts : KeyArgs {
      std::string name, role, display_name;
    };
    auto o = std::make_shared<Opts>();
    CLI::App* c = Leaf(
        noun, cli, "issue", "create an identity and its certificate (IssueIdentity)", [&cli, o] {
          CheckKeyArgs(*o);
          auto stub = Identities::NewStub(cli.Channel());
          v1::IssueIdentityRequest req;
          req.set_name(o->name);
          req.set_role(static_cast<v1::IdentityRole>(
              ParseEnum(v1::IdentityRole_descriptor(), o->role, "--role")));
          req.set_display_name(o->display_name);
          FillKeySource(*o, &req);
          auto resp = cli.Call(stub.get(), &Identities::Stub::IssueIdentity, req);
          const v1::Certificate cert = resp.certificate();
          Finish(cli, *o, std::move(resp), cert);
        });
    c->add_option("name", o->name, "identity name (its certificate's CN)")->required();
    c->add_option("--role", o->role, EnumChoices(v1::IdentityRole_descriptor()))->required();
    c->add_option("--display-name", o->display_name, "label");
    AddKeyArgs(c, o.get());
  }
  {  // renew
    struct Opts : KeyArgs {
      std::string name;
      bool revoke_previous = false;
    };
    auto o = std::make_shared<Opts>();
    CLI::App* c =
        Leaf(noun, cli, "renew", "a new certificate for an identity (RenewIdentity)", [&cli, o] {
          CheckKeyArgs(*o);
          auto stub = Identities::NewStub(cli.Channel());
          v1::RenewIdentityRequest req;
          req.set_name(o->name);
          FillKeySource(*o, &req);
          req.set_revoke_previous(o->revoke_previous);
          auto resp = cli.Call(stub.get(), &Identities::Stub::RenewIdentity, req);
          const v1::Certificate cert = resp.certificate();
          Finish(cli, *o, std::move(resp), cert);
        });
    c->add_option("name", o->name, "identity name")->required();
    AddKeyArgs(c, o.get());
    c->add_flag("--revoke-previous", o->revoke_previous, "revoke its other live certificates");
  }
  {  // get
    auto name = std::make_shared<std::string>();
    CLI::App* c =
        Leaf(noun, cli, "get", "show an identity (GetIdentity; -o pem: its latest certificate)",
             [&cli, name] {
               auto stub = Identities::NewStub(cli.Channel());
               v1::GetIdentityRequest req;
               req.set_name(*name);
               auto resp = cli.Call(stub.get(), &Identities::Stub::GetIdentity, req);
               Show(cli, resp.identity(), resp.identity().latest_certificate().certificate_pem());
             });
    c->add_option("name", *name, "identity name")->required();
  }
  {  // list
    struct Opts {
      std::string role, status;
      int64_t limit = 500;
    };
    auto o = std::make_shared<Opts>();
    CLI::App* c = Leaf(noun, cli, "list", "list identities (ListIdentities)", [&cli, o] {
      auto stub = Identities::NewStub(cli.Channel());
      v1::ListIdentitiesRequest req;
      if (!o->role.empty()) {
        req.set_role(static_cast<v1::IdentityRole>(
            ParseEnum(v1::IdentityRole_descriptor(), o->role, "--role")));
      }
      if (!o->status.empty()) {
        req.set_status(static_cast<v1::IdentityStatus>(
            ParseEnum(v1::IdentityStatus_descriptor(), o->status, "--status")));
      }
      auto all =
          cli.List(stub.get(), &Identities::Stub::ListIdentities, req, o->limit, "identities");
      ShowList(cli, all, "identities", kIdentityColumns, "latest_certificate.certificate_pem");
    });
    c->add_option("--role", o->role, EnumChoices(v1::IdentityRole_descriptor()));
    c->add_option("--status", o->status, EnumChoices(v1::IdentityStatus_descriptor()));
    AddLimit(c, &o->limit);
  }
  {  // revoke
    struct Opts {
      std::string name, reason, comment;
    };
    auto o = std::make_shared<Opts>();
    CLI::App* c = Leaf(noun, cli, "revoke",
                       "revoke an identity and every certificate of it, for good (RevokeIdentity)",
                       [&cli, o] {
                         auto stub = Identities::NewStub(cli.Channel());
                         v1::RevokeIdentityRequest req;
                         req.set_name(o->name);
                         if (!o->reason.empty()) {
                           req.set_reason(static_cast<v1::RevocationReason>(
                               ParseEnum(v1::RevocationReason_descriptor(), o->reason, "--reason",
                                         /*allow_unspecified=*/true)));
                         }
                         req.set_comment(o->comment);
                         Show(cli, cli.Call(stub.get(), &Identities::Stub::RevokeIdentity, req));
                       });
    c->add_option("name", o->name, "identity name")->required();
    c->add_option("--reason", o->reason, EnumChoices(v1::RevocationReason_descriptor()));
    c->add_option("--comment", o->comment, "free text");
  }
}

}  // namespace fleetca::cli
