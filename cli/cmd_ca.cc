// fleetca ca ...: CertificateAuthorityService.

#include <CLI/CLI.hpp>
#include <iostream>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "cli/cli.h"
#include "cli/output.h"
#include "fleetca/v1/certificate_authority.grpc.pb.h"

namespace fleetca::cli {

namespace {

using Ca = v1::CertificateAuthorityService;

const std::vector<Column> kIssuerColumns = {
    {"ISSUER", "issuer_id"},  {"PURPOSE", "purpose"},     {"STATUS", "status"},
    {"KEY", "key_algorithm"}, {"NOT-AFTER", "not_after"}, {"PARENT", "parent_issuer_id"},
    {"SUBJECT", "subject"},
};

const std::vector<Column> kExternalColumns = {
    {"ID", "external_ca_id"},
    {"ENABLED", "enabled"},
    {"UNREGISTERED", "accept_unregistered_certificates"},
    {"NOT-AFTER", "not_after"},
    {"CRL", "crl_number"},
    {"SUBJECT", "subject"},
};

struct Subject {
  std::string cn, org, ou, country;
};

void AddSubject(CLI::App* c, Subject* s) {
  c->add_option("--cn", s->cn, "subject Common Name");
  c->add_option("--org", s->org, "subject Organization (O)");
  c->add_option("--ou", s->ou, "subject Organizational Unit (OU)");
  c->add_option("--country", s->country, "subject Country (C, 2 letters)");
}

bool SetSubject(const Subject& s, v1::DistinguishedName* dn) {
  dn->set_common_name(s.cn);
  dn->set_organization(s.org);
  dn->set_organizational_unit(s.ou);
  dn->set_country(s.country);
  return !(s.cn.empty() && s.org.empty() && s.ou.empty() && s.country.empty());
}

v1::KeyAlgorithm KeyAlgorithm(const std::string& text, const std::string& flag) {
  if (text.empty()) return v1::KEY_ALGORITHM_UNSPECIFIED;
  return static_cast<v1::KeyAlgorithm>(ParseEnum(v1::KeyAlgorithm_descriptor(), text, flag));
}

v1::IssuerPurpose Purpose(const std::string& text, const std::string& flag) {
  return static_cast<v1::IssuerPurpose>(ParseEnum(v1::IssuerPurpose_descriptor(), text, flag));
}

std::string IssuerPem(const v1::Issuer& issuer) {
  if (issuer.certificate_pem().empty()) return issuer.csr_pem();  // a pending issuer
  return issuer.certificate_pem() + issuer.chain_pem();
}

std::string ReadPassword(const std::string& password, const std::string& file) {
  if (file.empty()) return password;
  std::string p = ReadInputFile(file);
  while (!p.empty() && (p.back() == '\n' || p.back() == '\r')) p.pop_back();
  return p;
}

void AddExternalCommands(CLI::App* ca, Cli& cli) {
  CLI::App* noun = Noun(ca, "external", "external verify-only CAs (RegisterExternalCa, ...)");
  {  // register
    struct Opts {
      std::string id, display_name, certificate;
      bool accept_unregistered = false;
    };
    auto o = std::make_shared<Opts>();
    CLI::App* c =
        Leaf(noun, cli, "register", "register an external CA (RegisterExternalCa)", [&cli, o] {
          auto stub = Ca::NewStub(cli.Channel());
          v1::RegisterExternalCaRequest req;
          req.set_external_ca_id(o->id);
          req.set_display_name(o->display_name);
          req.set_certificate_pem(ReadInputFile(o->certificate));
          req.set_accept_unregistered_certificates(o->accept_unregistered);
          auto resp = cli.Call(stub.get(), &Ca::Stub::RegisterExternalCa, req);
          Show(cli, resp.external_ca(), resp.external_ca().certificate_pem());
        });
    c->add_option("id", o->id, "external CA id")->required();
    c->add_option("--certificate", o->certificate, "the CA certificate (PEM file)")->required();
    c->add_option("--display-name", o->display_name, "label");
    c->add_flag("--accept-unregistered", o->accept_unregistered,
                "accept its device certificates without registering each");
  }
  {  // get
    auto id = std::make_shared<std::string>();
    CLI::App* c = Leaf(noun, cli, "get", "show an external CA (GetExternalCa)", [&cli, id] {
      auto stub = Ca::NewStub(cli.Channel());
      v1::GetExternalCaRequest req;
      req.set_external_ca_id(*id);
      auto resp = cli.Call(stub.get(), &Ca::Stub::GetExternalCa, req);
      Show(cli, resp.external_ca(), resp.external_ca().certificate_pem());
    });
    c->add_option("id", *id, "external CA id")->required();
  }
  {  // list
    auto limit = std::make_shared<int64_t>(500);
    CLI::App* c = Leaf(noun, cli, "list", "list external CAs (ListExternalCas)", [&cli, limit] {
      auto stub = Ca::NewStub(cli.Channel());
      auto all = cli.List(stub.get(), &Ca::Stub::ListExternalCas, v1::ListExternalCasRequest(),
                          *limit, "external_cas");
      ShowList(cli, all, "external_cas", kExternalColumns, "certificate_pem");
    });
    AddLimit(c, limit.get());
  }
  {  // update
    struct Opts {
      std::string id, display_name, enabled, accept_unregistered, etag;
      bool display_name_set = false;
    };
    auto o = std::make_shared<Opts>();
    CLI::App* c = Leaf(noun, cli, "update", "change an external CA (UpdateExternalCa)", [&cli, o] {
      auto stub = Ca::NewStub(cli.Channel());
      v1::UpdateExternalCaRequest req;
      v1::ExternalCa* e = req.mutable_external_ca();
      e->set_external_ca_id(o->id);
      req.set_etag(o->etag);
      if (o->display_name_set) {
        e->set_display_name(o->display_name);
        req.mutable_update_mask()->add_paths("display_name");
      }
      if (!o->enabled.empty()) {
        e->set_enabled(o->enabled == "true");
        req.mutable_update_mask()->add_paths("enabled");
      }
      if (!o->accept_unregistered.empty()) {
        e->set_accept_unregistered_certificates(o->accept_unregistered == "true");
        req.mutable_update_mask()->add_paths("accept_unregistered_certificates");
      }
      if (req.update_mask().paths_size() == 0) {
        throw UsageError(
            "nothing to update: give --display-name, --enabled or --accept-unregistered");
      }
      auto resp = cli.Call(stub.get(), &Ca::Stub::UpdateExternalCa, req);
      Show(cli, resp.external_ca(), resp.external_ca().certificate_pem());
    });
    c->add_option("id", o->id, "external CA id")->required();
    c->add_option("--display-name", o->display_name, "label")->each([o](const std::string&) {
      o->display_name_set = true;
    });
    c->add_option("--enabled", o->enabled, "true|false")->check(CLI::IsMember({"true", "false"}));
    c->add_option("--accept-unregistered", o->accept_unregistered, "true|false")
        ->check(CLI::IsMember({"true", "false"}));
    c->add_option("--etag", o->etag, "only if unchanged since this etag");
  }
  {  // delete
    struct Opts {
      std::string id, etag;
    };
    auto o = std::make_shared<Opts>();
    CLI::App* c = Leaf(noun, cli, "delete", "remove an external CA (DeleteExternalCa)", [&cli, o] {
      auto stub = Ca::NewStub(cli.Channel());
      v1::DeleteExternalCaRequest req;
      req.set_external_ca_id(o->id);
      req.set_etag(o->etag);
      cli.Call(stub.get(), &Ca::Stub::DeleteExternalCa, req);
      std::cout << (cli.Format() == OutputFormat::kJson ? "{}\n"
                                                        : "deleted external CA " + o->id + "\n");
    });
    c->add_option("id", o->id, "external CA id")->required();
    c->add_option("--etag", o->etag, "only if unchanged since this etag");
  }
}

}  // namespace

int ParsePkcs12Encryption(const std::string& text, const std::string& flag) {
  if (text.empty()) return v1::PKCS12_ENCRYPTION_UNSPECIFIED;
  // "aes256" as people write it; ParseEnum takes aes-256, aes_256, AES_256 and the full name.
  if (absl::AsciiStrToLower(text) == "aes256") return v1::PKCS12_ENCRYPTION_AES_256;
  return ParseEnum(v1::Pkcs12Encryption_descriptor(), text, flag);
}

void AddCaCommands(CLI::App& app, Cli& cli) {
  CLI::App* noun =
      Noun(&app, "ca", "CA hierarchy, issuers and trust bundles (CertificateAuthorityService)");

  {  // init
    struct Opts : Subject {
      std::string root_key, intermediate_key, root_validity, intermediate_validity;
      std::vector<std::string> purposes;
      bool offline_root = false;
    };
    auto o = std::make_shared<Opts>();
    CLI::App* c =
        Leaf(noun, cli, "init",
             "create the root and the intermediates that are missing (InitializeHierarchy; "
             "idempotent)",
             [&cli, o] {
               auto stub = Ca::NewStub(cli.Channel());
               v1::InitializeHierarchyRequest req;
               if (!SetSubject(*o, req.mutable_subject())) req.clear_subject();
               req.set_root_key_algorithm(KeyAlgorithm(o->root_key, "--root-key-algorithm"));
               req.set_intermediate_key_algorithm(
                   KeyAlgorithm(o->intermediate_key, "--intermediate-key-algorithm"));
               if (!o->root_validity.empty()) {
                 *req.mutable_root_validity() = ParseDuration(o->root_validity, "--root-validity");
               }
               if (!o->intermediate_validity.empty()) {
                 *req.mutable_intermediate_validity() =
                     ParseDuration(o->intermediate_validity, "--intermediate-validity");
               }
               for (const auto& p : o->purposes) req.add_purposes(Purpose(p, "--purpose"));
               req.set_offline_root(o->offline_root);
               auto resp = cli.Call(stub.get(), &Ca::Stub::InitializeHierarchy, req);
               if (cli.Format() == OutputFormat::kTable) {
                 std::cout << RenderList(resp, "issuers", kIssuerColumns);
                 std::cout << "created: "
                           << (resp.created_issuer_ids().empty()
                                   ? std::string("nothing (the hierarchy existed)")
                                   : FieldText(resp, "created_issuer_ids"))
                           << "\n";
               } else {
                 ShowList(cli, resp, "issuers", kIssuerColumns, "certificate_pem");
               }
             });
    AddSubject(c, o.get());
    c->add_option("--root-key-algorithm", o->root_key, EnumChoices(v1::KeyAlgorithm_descriptor()));
    c->add_option("--intermediate-key-algorithm", o->intermediate_key,
                  EnumChoices(v1::KeyAlgorithm_descriptor()));
    c->add_option("--root-validity", o->root_validity, "root lifetime (20y)");
    c->add_option("--intermediate-validity", o->intermediate_validity,
                  "intermediate lifetime (10y)");
    c->add_option("--purpose", o->purposes,
                  "intermediate to create (repeat; default all): " +
                      EnumChoices(v1::IssuerPurpose_descriptor()));
    c->add_flag("--offline-root", o->offline_root,
                "make pending intermediates whose CSRs a root elsewhere signs");
  }

  {  // list
    struct Opts {
      std::string purpose, status;
      int64_t limit = 500;
    };
    auto o = std::make_shared<Opts>();
    CLI::App* c = Leaf(
        noun, cli, "list", "list issuers (ListIssuers; -o pem: their certificates)", [&cli, o] {
          auto stub = Ca::NewStub(cli.Channel());
          v1::ListIssuersRequest req;
          if (!o->purpose.empty()) req.set_purpose(Purpose(o->purpose, "--purpose"));
          if (!o->status.empty()) {
            req.set_status(static_cast<v1::IssuerStatus>(
                ParseEnum(v1::IssuerStatus_descriptor(), o->status, "--status")));
          }
          auto all = cli.List(stub.get(), &Ca::Stub::ListIssuers, req, o->limit, "issuers");
          ShowList(cli, all, "issuers", kIssuerColumns, "certificate_pem");
        });
    c->add_option("--purpose", o->purpose, EnumChoices(v1::IssuerPurpose_descriptor()));
    c->add_option("--status", o->status, EnumChoices(v1::IssuerStatus_descriptor()));
    AddLimit(c, &o->limit);
  }

  {  // get
    auto id = std::make_shared<std::string>();
    CLI::App* c = Leaf(noun, cli, "get",
                       "show an issuer (GetIssuer; -o pem: certificate and chain, or the CSR of a "
                       "pending one)",
                       [&cli, id] {
                         auto stub = Ca::NewStub(cli.Channel());
                         v1::GetIssuerRequest req;
                         req.set_issuer_id(*id);
                         auto resp = cli.Call(stub.get(), &Ca::Stub::GetIssuer, req);
                         Show(cli, resp.issuer(), IssuerPem(resp.issuer()));
                       });
    c->add_option("issuer", *id, "issuer id (root-1, devices-1, ...)")->required();
  }

  {  // bundle
    struct Opts {
      std::string scope, format, password, password_file, encryption, out;
    };
    auto o = std::make_shared<Opts>();
    CLI::App* c =
        Leaf(noun, cli, "bundle",
             "the trust bundle (GetTrustBundle): PEM on stdout, or --out FILE; -o json "
             "for its metadata",
             [&cli, o] {
               auto stub = Ca::NewStub(cli.Channel());
               v1::GetTrustBundleRequest req;
               if (!o->scope.empty()) {
                 req.set_scope(static_cast<v1::TrustBundleScope>(
                     ParseEnum(v1::TrustBundleScope_descriptor(), o->scope, "--scope")));
               }
               if (!o->format.empty()) {
                 req.set_format(static_cast<v1::TrustBundleFormat>(
                     ParseEnum(v1::TrustBundleFormat_descriptor(), o->format, "--format")));
               }
               req.set_keystore_password(ReadPassword(o->password, o->password_file));
               const bool keystore = req.format() == v1::TRUST_BUNDLE_FORMAT_PKCS12 ||
                                     req.format() == v1::TRUST_BUNDLE_FORMAT_JKS;
               if (!o->encryption.empty() && req.format() != v1::TRUST_BUNDLE_FORMAT_PKCS12) {
                 throw UsageError("--pkcs12-encryption goes with --format pkcs12");
               }
               req.set_pkcs12_encryption(static_cast<v1::Pkcs12Encryption>(
                   ParsePkcs12Encryption(o->encryption, "--pkcs12-encryption")));
               if (keystore && o->out.empty()) {
                 throw UsageError("--format " + o->format + " is binary: give --out FILE");
               }
               auto resp = cli.Call(stub.get(), &Ca::Stub::GetTrustBundle, req);
               if (!o->out.empty()) {
                 WriteOutputFile(o->out, keystore ? resp.keystore() : resp.bundle_pem(), 0644);
               }
               if (cli.Format() == OutputFormat::kJson) {
                 std::cout << ToJson(resp);
               } else if (o->out.empty()) {
                 std::cout << resp.bundle_pem();
               } else {
                 std::cerr << "fleetca: wrote " << o->out << " (issuers "
                           << FieldText(resp, "issuer_ids") << ")\n";
               }
             });
    c->add_option("--scope", o->scope,
                  EnumChoices(v1::TrustBundleScope_descriptor()) + " (default all)");
    c->add_option("--format", o->format,
                  EnumChoices(v1::TrustBundleFormat_descriptor()) + " (default pem)");
    c->add_option("--password", o->password, "keystore password (prefer --password-file)");
    c->add_option("--password-file", o->password_file, "file holding the keystore password");
    c->add_option("--pkcs12-encryption", o->encryption,
                  "with --format pkcs12: aes-256|legacy (default aes-256; legacy: 3DES/SHA-1 "
                  "for old Java runtimes)");
    c->add_option("--out", o->out, "write the bundle to this file");
  }

  {  // csr
    struct Opts : Subject {
      std::string purpose, key, out;
      bool replace_pending = false;
    };
    auto o = std::make_shared<Opts>();
    CLI::App* c =
        Leaf(noun, cli, "csr",
             "a pending intermediate and its CSR, for an offline root (CreateIntermediateCsr)",
             [&cli, o] {
               auto stub = Ca::NewStub(cli.Channel());
               v1::CreateIntermediateCsrRequest req;
               req.set_purpose(Purpose(o->purpose, "purpose"));
               req.set_key_algorithm(KeyAlgorithm(o->key, "--key-algorithm"));
               if (!SetSubject(*o, req.mutable_subject())) req.clear_subject();
               req.set_replace_pending(o->replace_pending);
               auto resp = cli.Call(stub.get(), &Ca::Stub::CreateIntermediateCsr, req);
               if (!o->out.empty()) WriteOutputFile(o->out, resp.issuer().csr_pem(), 0644);
               Show(cli, resp.issuer(), resp.issuer().csr_pem());
             });
    c->add_option("purpose", o->purpose, EnumChoices(v1::IssuerPurpose_descriptor()))->required();
    c->add_option("--key-algorithm", o->key, EnumChoices(v1::KeyAlgorithm_descriptor()));
    AddSubject(c, o.get());
    c->add_flag("--replace-pending", o->replace_pending, "replace a pending CSR of this purpose");
    c->add_option("--out", o->out, "write the CSR (PEM) to this file");
  }

  {  // import-cert
    struct Opts {
      std::string issuer, certificate, chain;
    };
    auto o = std::make_shared<Opts>();
    CLI::App* c = Leaf(noun, cli, "import-cert",
                       "activate a pending intermediate with its signed certificate "
                       "(ImportIntermediateCertificate)",
                       [&cli, o] {
                         auto stub = Ca::NewStub(cli.Channel());
                         v1::ImportIntermediateCertificateRequest req;
                         req.set_issuer_id(o->issuer);
                         req.set_certificate_pem(ReadInputFile(o->certificate));
                         if (!o->chain.empty()) req.set_chain_pem(ReadInputFile(o->chain));
                         auto resp =
                             cli.Call(stub.get(), &Ca::Stub::ImportIntermediateCertificate, req);
                         Show(cli, resp, IssuerPem(resp.issuer()));
                       });
    c->add_option("issuer", o->issuer, "the pending issuer id")->required();
    c->add_option("--certificate", o->certificate, "its certificate, signed by the root (PEM)")
        ->required();
    c->add_option("--chain", o->chain, "the chain up to the self-signed root (PEM)");
  }

  {  // import-issuer
    struct Opts {
      std::string purpose, certificate, chain, private_key, pkcs11_uri, password, password_file;
    };
    auto o = std::make_shared<Opts>();
    CLI::App* c = Leaf(noun, cli, "import-issuer",
                       "make an existing CA certificate and key the active issuer of a purpose "
                       "(ImportIssuer)",
                       [&cli, o] {
                         if (o->private_key.empty() == o->pkcs11_uri.empty()) {
                           throw UsageError("give --private-key FILE or --pkcs11-uri URI (one)");
                         }
                         auto stub = Ca::NewStub(cli.Channel());
                         v1::ImportIssuerRequest req;
                         req.set_purpose(Purpose(o->purpose, "purpose"));
                         req.set_certificate_pem(ReadInputFile(o->certificate));
                         if (!o->chain.empty()) req.set_chain_pem(ReadInputFile(o->chain));
                         if (!o->private_key.empty()) {
                           req.set_private_key_pem(ReadInputFile(o->private_key));
                         } else {
                           req.set_pkcs11_uri(o->pkcs11_uri);
                         }
                         req.set_private_key_password(ReadPassword(o->password, o->password_file));
                         auto resp = cli.Call(stub.get(), &Ca::Stub::ImportIssuer, req);
                         Show(cli, resp, IssuerPem(resp.issuer()));
                       });
    c->add_option("purpose", o->purpose, EnumChoices(v1::IssuerPurpose_descriptor()))->required();
    c->add_option("--certificate", o->certificate, "the CA certificate (PEM)")->required();
    c->add_option("--chain", o->chain, "its chain up to the self-signed root (PEM)");
    c->add_option("--private-key", o->private_key, "its private key (PEM file)");
    c->add_option("--pkcs11-uri", o->pkcs11_uri, "or its key in a PKCS#11 token");
    c->add_option("--key-password", o->password, "password of an encrypted key");
    c->add_option("--key-password-file", o->password_file, "file holding that password");
  }

  {  // rotate
    struct Opts {
      std::string issuer, key, validity;
    };
    auto o = std::make_shared<Opts>();
    CLI::App* c =
        Leaf(noun, cli, "rotate", "replace an issuer with a new key and certificate (RotateIssuer)",
             [&cli, o] {
               auto stub = Ca::NewStub(cli.Channel());
               v1::RotateIssuerRequest req;
               req.set_issuer_id(o->issuer);
               req.set_key_algorithm(KeyAlgorithm(o->key, "--key-algorithm"));
               if (!o->validity.empty()) {
                 *req.mutable_validity() = ParseDuration(o->validity, "--validity");
               }
               auto resp = cli.Call(stub.get(), &Ca::Stub::RotateIssuer, req);
               Show(cli, resp, IssuerPem(resp.issuer()));
             });
    c->add_option("issuer", o->issuer, "issuer id")->required();
    c->add_option("--key-algorithm", o->key, EnumChoices(v1::KeyAlgorithm_descriptor()));
    c->add_option("--validity", o->validity, "lifetime of the new certificate");
  }

  {  // rewrap
    auto kek = std::make_shared<std::string>();
    CLI::App* c = Leaf(noun, cli, "rewrap",
                       "re-wrap the CA keys under the current KEK (RewrapIssuerKeys)", [&cli, kek] {
                         auto stub = Ca::NewStub(cli.Channel());
                         v1::RewrapIssuerKeysRequest req;
                         req.set_expected_kek_id(*kek);
                         Show(cli, cli.Call(stub.get(), &Ca::Stub::RewrapIssuerKeys, req));
                       });
    c->add_option("--expected-kek-id", *kek, "fail unless the server's current KEK has this id");
  }

  AddExternalCommands(noun, cli);
}

}  // namespace fleetca::cli
