// fleetca cert ... and fleetca crl ...: IssuanceService and RevocationService.

#include <CLI/CLI.hpp>
#include <iostream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "cli/cli.h"
#include "cli/output.h"
#include "fleetca/v1/issuance.grpc.pb.h"
#include "fleetca/v1/revocation.grpc.pb.h"

namespace fleetca::cli {

namespace {

using Issuance = v1::IssuanceService;
using Revocation = v1::RevocationService;

const std::vector<Column> kCertColumns = {
    {"SERIAL", "serial"},   {"ISSUER", "issuer_id"},
    {"KIND", "kind"},       {"NAME", "comm_id|broker_id|identity_name"},
    {"STATUS", "status"},   {"NOT-AFTER", "not_after"},
    {"PROFILE", "profile"},
};

bool LooksPem(const std::string& s) { return absl::StrContains(s, "-----BEGIN "); }

// Writes the certificate (and chain) files asked for, then shows the certificate.
void ShowCertificate(Cli& cli, const google::protobuf::Message& response,
                     const v1::Certificate& cert, const std::string& out,
                     const std::string& chain_out) {
  if (!out.empty()) WriteOutputFile(out, cert.certificate_pem(), 0644);
  if (!chain_out.empty()) WriteOutputFile(chain_out, cert.chain_pem(), 0644);
  Show(cli, response, cert.certificate_pem() + cert.chain_pem());
}

struct CertOut {
  std::string out, chain_out;
};

void AddCertOut(CLI::App* c, CertOut* o) {
  c->add_option("--out", o->out, "write the certificate (PEM) to this file");
  c->add_option("--chain-out", o->chain_out, "write its chain (PEM, issuer first) to this file");
}

struct SerialArgs {
  std::string serial, fingerprint, issuer;
};

void AddSerialArgs(CLI::App* c, SerialArgs* o, bool fingerprint) {
  c->add_option("serial", o->serial, "certificate serial (hex)");
  if (fingerprint) c->add_option("--fingerprint", o->fingerprint, "SHA-256 fingerprint instead");
  c->add_option("--issuer", o->issuer, "issuer id (when serials could collide across issuers)");
}

template <class Req>
void SetSerialOrFingerprint(const SerialArgs& o, Req* req) {
  if (o.serial.empty() == o.fingerprint.empty()) {
    throw UsageError("give a serial or --fingerprint (one of them)");
  }
  if (!o.serial.empty()) req->set_serial(o.serial);
  if (!o.fingerprint.empty()) req->set_sha256_fingerprint(o.fingerprint);
  req->set_issuer_id(o.issuer);
}

void RequireSerial(const SerialArgs& o) {
  if (o.serial.empty()) throw UsageError("a certificate serial is required");
}

v1::RevocationReason Reason(const std::string& text) {
  if (text.empty()) return v1::REVOCATION_REASON_UNSPECIFIED;
  return static_cast<v1::RevocationReason>(
      ParseEnum(v1::RevocationReason_descriptor(), text, "--reason", /*allow_unspecified=*/true));
}

}  // namespace

void AddCertCommands(CLI::App& app, Cli& cli) {
  CLI::App* noun = Noun(
      &app, "cert", "certificates: issue, inspect, revoke (IssuanceService, RevocationService)");

  {  // sign
    struct Opts : CertOut {
      std::string comm_id, csr, profile, validity;
    };
    auto o = std::make_shared<Opts>();
    CLI::App* c = Leaf(noun, cli, "sign", "sign a device CSR (SignDeviceCsr)", [&cli, o] {
      auto stub = Issuance::NewStub(cli.Channel());
      v1::SignDeviceCsrRequest req;
      req.set_comm_id(o->comm_id);
      const std::string csr = ReadInputFile(o->csr);
      if (LooksPem(csr)) {
        req.set_csr_pem(csr);
      } else {
        req.set_csr_der(csr);
      }
      req.set_profile(o->profile);
      if (!o->validity.empty()) *req.mutable_validity() = ParseDuration(o->validity, "--validity");
      req.set_request_id(cli.RequestId());
      auto resp = cli.Call(stub.get(), &Issuance::Stub::SignDeviceCsr, req);
      if (resp.replayed()) std::cerr << "fleetca: replayed: the request id had been served\n";
      ShowCertificate(cli, resp, resp.certificate(), o->out, o->chain_out);
    });
    c->add_option("comm_id", o->comm_id, "the device (the CSR's Common Name)")->required();
    c->add_option("--csr", o->csr, "CSR file, PEM or DER (- for stdin)")->required();
    c->add_option("--profile", o->profile, "issuance profile (default: the kind's default)");
    c->add_option("--validity", o->validity, "lifetime (90d, 1y; default: the profile's)");
    AddCertOut(c, o.get());
  }

  {  // sign-broker
    struct Opts : CertOut {
      std::string broker_id, csr, profile, validity;
      std::vector<std::string> dns, ips;
    };
    auto o = std::make_shared<Opts>();
    CLI::App* c =
        Leaf(noun, cli, "sign-broker", "sign a broker server CSR (SignBrokerCsr)", [&cli, o] {
          auto stub = Issuance::NewStub(cli.Channel());
          v1::SignBrokerCsrRequest req;
          req.set_broker_id(o->broker_id);
          const std::string csr = ReadInputFile(o->csr);
          if (LooksPem(csr)) {
            req.set_csr_pem(csr);
          } else {
            req.set_csr_der(csr);
          }
          for (const auto& d : o->dns) req.add_dns_names(d);
          for (const auto& ip : o->ips) req.add_ip_addresses(ip);
          req.set_profile(o->profile);
          if (!o->validity.empty())
            *req.mutable_validity() = ParseDuration(o->validity, "--validity");
          req.set_request_id(cli.RequestId());
          auto resp = cli.Call(stub.get(), &Issuance::Stub::SignBrokerCsr, req);
          if (resp.replayed()) std::cerr << "fleetca: replayed: the request id had been served\n";
          ShowCertificate(cli, resp, resp.certificate(), o->out, o->chain_out);
        });
    c->add_option("broker_id", o->broker_id, "registered broker")->required();
    c->add_option("--csr", o->csr, "CSR file, PEM or DER (- for stdin)")->required();
    c->add_option("--dns", o->dns, "DNS name (repeat; from the broker's allow-list)");
    c->add_option("--ip", o->ips, "IP address (repeat; from the broker's allow-list)");
    c->add_option("--profile", o->profile, "issuance profile");
    c->add_option("--validity", o->validity, "lifetime (90d, 1y)");
    AddCertOut(c, o.get());
  }

  {  // renew
    struct Opts : CertOut {
      std::string comm_id, csr, previous, validity;
      bool revoke_previous = false;
    };
    auto o = std::make_shared<Opts>();
    CLI::App* c =
        Leaf(noun, cli, "renew", "renew a device certificate (RenewDeviceCertificate)", [&cli, o] {
          auto stub = Issuance::NewStub(cli.Channel());
          v1::RenewDeviceCertificateRequest req;
          req.set_comm_id(o->comm_id);
          req.set_previous_serial(o->previous);
          const std::string csr = ReadInputFile(o->csr);
          if (LooksPem(csr)) {
            req.set_csr_pem(csr);
          } else {
            req.set_csr_der(csr);
          }
          if (!o->validity.empty()) {
            *req.mutable_validity() = ParseDuration(o->validity, "--validity");
          }
          req.set_request_id(cli.RequestId());
          req.set_revoke_previous(o->revoke_previous);
          auto resp = cli.Call(stub.get(), &Issuance::Stub::RenewDeviceCertificate, req);
          ShowCertificate(cli, resp, resp.certificate(), o->out, o->chain_out);
        });
    c->add_option("comm_id", o->comm_id, "the device")->required();
    c->add_option("--csr", o->csr, "new CSR, PEM or DER (- for stdin)")->required();
    c->add_option("--previous", o->previous, "serial of the certificate being renewed");
    c->add_option("--validity", o->validity, "lifetime (90d, 1y)");
    c->add_flag("--revoke-previous", o->revoke_previous, "revoke the previous certificate");
    AddCertOut(c, o.get());
  }

  {  // get
    struct Opts : CertOut, SerialArgs {};
    auto o = std::make_shared<Opts>();
    CLI::App* c =
        Leaf(noun, cli, "get",
             "show one certificate (GetCertificate; -o pem: certificate and chain)", [&cli, o] {
               auto stub = Issuance::NewStub(cli.Channel());
               v1::GetCertificateRequest req;
               SetSerialOrFingerprint(*o, &req);
               auto resp = cli.Call(stub.get(), &Issuance::Stub::GetCertificate, req);
               ShowCertificate(cli, resp.certificate(), resp.certificate(), o->out, o->chain_out);
             });
    AddSerialArgs(c, o.get(), true);
    AddCertOut(c, o.get());
  }

  {  // list
    struct Opts {
      std::string comm_id, issuer, status, kind, expires_after, expires_before, broker, identity,
          requested_by;
      int64_t limit = 500;
    };
    auto o = std::make_shared<Opts>();
    CLI::App* c = Leaf(
        noun, cli, "list",
        "list the certificate inventory (ListCertificates; -o pem: every certificate)", [&cli, o] {
          auto stub = Issuance::NewStub(cli.Channel());
          v1::ListCertificatesRequest req;
          req.set_comm_id(o->comm_id);
          req.set_issuer_id(o->issuer);
          if (!o->status.empty()) {
            req.set_status(static_cast<v1::CertificateStatus>(
                ParseEnum(v1::CertificateStatus_descriptor(), o->status, "--status")));
          }
          if (!o->kind.empty()) {
            req.set_kind(static_cast<v1::CertificateKind>(
                ParseEnum(v1::CertificateKind_descriptor(), o->kind, "--kind")));
          }
          if (!o->expires_after.empty()) {
            *req.mutable_expires_after() = ParseTimestamp(o->expires_after, "--expires-after");
          }
          if (!o->expires_before.empty()) {
            *req.mutable_expires_before() = ParseTimestamp(o->expires_before, "--expires-before");
          }
          req.set_broker_id(o->broker);
          req.set_identity_name(o->identity);
          req.set_requested_by(o->requested_by);
          auto all = cli.List(stub.get(), &Issuance::Stub::ListCertificates, req, o->limit,
                              "certificates");
          ShowList(cli, all, "certificates", kCertColumns, "certificate_pem");
        });
    c->add_option("--comm-id", o->comm_id, "of this device");
    c->add_option("--issuer", o->issuer, "signed by this issuer");
    c->add_option("--status", o->status, EnumChoices(v1::CertificateStatus_descriptor()));
    c->add_option("--kind", o->kind, EnumChoices(v1::CertificateKind_descriptor()));
    c->add_option("--expires-after", o->expires_after, "notAfter after this time (RFC 3339)");
    c->add_option("--expires-before", o->expires_before, "notAfter before this time (RFC 3339)");
    c->add_option("--broker", o->broker, "of this broker");
    c->add_option("--identity", o->identity, "of this identity");
    c->add_option("--requested-by", o->requested_by, "requested by this identity");
    AddLimit(c, &o->limit);
  }

  {  // profiles
    auto kind = std::make_shared<std::string>();
    CLI::App* c =
        Leaf(noun, cli, "profiles", "list the issuance profiles (ListProfiles)", [&cli, kind] {
          auto stub = Issuance::NewStub(cli.Channel());
          v1::ListProfilesRequest req;
          if (!kind->empty()) {
            req.set_kind(static_cast<v1::CertificateKind>(
                ParseEnum(v1::CertificateKind_descriptor(), *kind, "--kind")));
          }
          auto resp = cli.Call(stub.get(), &Issuance::Stub::ListProfiles, req);
          ShowList(cli, resp, "profiles",
                   {{"NAME", "name"},
                    {"KIND", "kind"},
                    {"DEFAULT", "is_default"},
                    {"VALIDITY", "default_validity"},
                    {"MAX", "max_validity"},
                    {"KEYS", "allowed_key_algorithms"},
                    {"DESCRIPTION", "description"}});
        });
    c->add_option("--kind", *kind, EnumChoices(v1::CertificateKind_descriptor()));
  }

  {  // register-external
    struct Opts {
      std::string comm_id, certificate, chain;
    };
    auto o = std::make_shared<Opts>();
    CLI::App* c = Leaf(
        noun, cli, "register-external",
        "track a device certificate from an external CA (RegisterExternalCertificate)", [&cli, o] {
          auto stub = Issuance::NewStub(cli.Channel());
          v1::RegisterExternalCertificateRequest req;
          req.set_comm_id(o->comm_id);
          const std::string cert = ReadInputFile(o->certificate);
          if (LooksPem(cert)) {
            req.set_certificate_pem(cert);
          } else {
            req.set_certificate_der(cert);
          }
          if (!o->chain.empty()) req.set_chain_pem(ReadInputFile(o->chain));
          auto resp = cli.Call(stub.get(), &Issuance::Stub::RegisterExternalCertificate, req);
          Show(cli, resp, resp.certificate().certificate_pem());
        });
    c->add_option("comm_id", o->comm_id, "the device")->required();
    c->add_option("--certificate", o->certificate, "certificate file, PEM or DER")->required();
    c->add_option("--chain", o->chain, "its chain (PEM) up to the external CA");
  }

  {  // export-pkcs12
    struct Opts {
      std::string serial, issuer, private_key, password, password_file, friendly_name,
          encryption, out;
      bool exclude_chain = false;
    };
    auto o = std::make_shared<Opts>();
    CLI::App* c = Leaf(
        noun, cli, "export-pkcs12",
        "pack a certificate, its chain and its private key into a PKCS#12 key store "
        "(ExportPkcs12); written to --out FILE, mode 0600",
        [&cli, o] {
          if (o->out.empty()) throw UsageError("--out FILE is required (binary output)");
          if (o->password.empty() && o->password_file.empty()) {
            throw UsageError("a password is required: --password-file FILE (or --password)");
          }
          v1::ExportPkcs12Request req;
          req.set_serial(o->serial);
          req.set_issuer_id(o->issuer);
          req.set_pkcs12_encryption(static_cast<v1::Pkcs12Encryption>(
              ParsePkcs12Encryption(o->encryption, "--pkcs12-encryption")));
          req.set_private_key_pem(ReadInputFile(o->private_key));
          std::string password = o->password;
          if (!o->password_file.empty()) {
            password = ReadInputFile(o->password_file);
            while (!password.empty() && (password.back() == '\n' || password.back() == '\r')) {
              password.pop_back();
            }
          }
          req.set_password(password);
          req.set_friendly_name(o->friendly_name);
          req.set_exclude_chain(o->exclude_chain);
          auto stub = Issuance::NewStub(cli.Channel());
          auto resp = cli.Call(stub.get(), &Issuance::Stub::ExportPkcs12, req);
          WriteOutputFile(o->out, resp.pkcs12(), 0600);
          std::cerr << "fleetca: wrote " << o->out << " (mode 0600)\n";
        });
    c->add_option("serial", o->serial, "certificate serial (hex)")->required();
    c->add_option("--issuer,--issuer-id", o->issuer,
                  "issuer id (when serials could collide across issuers)");
    c->add_option("--private-key,--key-file", o->private_key,
                  "the certificate's private key (PEM file, unencrypted; - for stdin)")
        ->required();
    c->add_option("--password-file", o->password_file,
                  "file holding the PKCS#12 password (1 to 128 bytes; a final newline is dropped)");
    c->add_option("--password", o->password, "PKCS#12 password (prefer --password-file)");
    c->add_option("--friendly-name", o->friendly_name,
                  "alias of the key entry (default: the certificate's Common Name)");
    c->add_flag("--exclude-chain", o->exclude_chain,
                "leave the CA certificates out (default: the issuing CAs up to the root)");
    c->add_option("--pkcs12-encryption", o->encryption,
                  "aes-256|legacy (default aes-256; legacy: 3DES/SHA-1 for old Java runtimes)");
    c->add_option("--out", o->out, "output file (written 0600)");
  }

  {  // revoke
    struct Opts : SerialArgs {
      std::string reason, invalidity, comment;
    };
    auto o = std::make_shared<Opts>();
    CLI::App* c = Leaf(noun, cli, "revoke", "revoke a certificate (RevokeCertificate)", [&cli, o] {
      RequireSerial(*o);
      auto stub = Revocation::NewStub(cli.Channel());
      v1::RevokeCertificateRequest req;
      req.set_serial(o->serial);
      req.set_issuer_id(o->issuer);
      req.set_reason(Reason(o->reason));
      if (!o->invalidity.empty()) {
        *req.mutable_invalidity_time() = ParseTimestamp(o->invalidity, "--invalidity-time");
      }
      req.set_comment(o->comment);
      auto resp = cli.Call(stub.get(), &Revocation::Stub::RevokeCertificate, req);
      if (resp.already_revoked()) std::cerr << "fleetca: the certificate was already revoked\n";
      Show(cli, resp, resp.certificate().certificate_pem());
    });
    AddSerialArgs(c, o.get(), false);
    c->add_option("--reason", o->reason, EnumChoices(v1::RevocationReason_descriptor()));
    c->add_option("--invalidity-time", o->invalidity, "when the key became unusable (RFC 3339)");
    c->add_option("--comment", o->comment, "free text (not published)");
  }

  {  // revoke-device
    struct Opts {
      std::string comm_id, reason, invalidity, comment;
      bool suspend = false;
    };
    auto o = std::make_shared<Opts>();
    CLI::App* c = Leaf(
        noun, cli, "revoke-device",
        "revoke every live certificate of a device (RevokeDeviceCertificates)", [&cli, o] {
          auto stub = Revocation::NewStub(cli.Channel());
          v1::RevokeDeviceCertificatesRequest req;
          req.set_comm_id(o->comm_id);
          req.set_reason(Reason(o->reason));
          if (!o->invalidity.empty()) {
            *req.mutable_invalidity_time() = ParseTimestamp(o->invalidity, "--invalidity-time");
          }
          req.set_comment(o->comment);
          req.set_suspend_device(o->suspend);
          auto resp = cli.Call(stub.get(), &Revocation::Stub::RevokeDeviceCertificates, req);
          if (cli.Format() == OutputFormat::kTable) {
            std::cout << RenderList(resp, "revoked_certificates", kCertColumns);
            std::cout << "device " << resp.device().comm_id() << ": "
                      << FieldText(resp.device(), "status") << "\n";
          } else {
            Show(cli, resp);
          }
        });
    c->add_option("comm_id", o->comm_id, "the device")->required();
    c->add_option("--reason", o->reason, EnumChoices(v1::RevocationReason_descriptor()));
    c->add_option("--invalidity-time", o->invalidity, "RFC 3339");
    c->add_option("--comment", o->comment, "free text");
    c->add_flag("--suspend", o->suspend, "suspend the device too");
  }

  {  // hold
    struct Opts : SerialArgs {
      std::string comment;
    };
    auto o = std::make_shared<Opts>();
    CLI::App* c = Leaf(noun, cli, "hold", "put a certificate on hold (HoldCertificate)", [&cli, o] {
      RequireSerial(*o);
      auto stub = Revocation::NewStub(cli.Channel());
      v1::HoldCertificateRequest req;
      req.set_serial(o->serial);
      req.set_issuer_id(o->issuer);
      req.set_comment(o->comment);
      auto resp = cli.Call(stub.get(), &Revocation::Stub::HoldCertificate, req);
      Show(cli, resp, resp.certificate().certificate_pem());
    });
    AddSerialArgs(c, o.get(), false);
    c->add_option("--comment", o->comment, "free text");
  }

  {  // release
    struct Opts : SerialArgs {
      std::string comment;
    };
    auto o = std::make_shared<Opts>();
    CLI::App* c = Leaf(
        noun, cli, "release", "release a certificate's hold (ReleaseCertificateHold)", [&cli, o] {
          RequireSerial(*o);
          auto stub = Revocation::NewStub(cli.Channel());
          v1::ReleaseCertificateHoldRequest req;
          req.set_serial(o->serial);
          req.set_issuer_id(o->issuer);
          req.set_comment(o->comment);
          auto resp = cli.Call(stub.get(), &Revocation::Stub::ReleaseCertificateHold, req);
          Show(cli, resp, resp.certificate().certificate_pem());
        });
    AddSerialArgs(c, o.get(), false);
    c->add_option("--comment", o->comment, "free text");
  }

  {  // status
    auto o = std::make_shared<SerialArgs>();
    CLI::App* c = Leaf(
        noun, cli, "status", "revocation status of a certificate (GetRevocationStatus)", [&cli, o] {
          auto stub = Revocation::NewStub(cli.Channel());
          v1::GetRevocationStatusRequest req;
          SetSerialOrFingerprint(*o, &req);
          Show(cli, cli.Call(stub.get(), &Revocation::Stub::GetRevocationStatus, req));
        });
    AddSerialArgs(c, o.get(), true);
  }
}

void AddCrlCommands(CLI::App& app, Cli& cli) {
  CLI::App* noun = Noun(&app, "crl", "certificate revocation lists (RevocationService)");
  {  // get
    struct Opts {
      std::string issuer, out;
      bool delta = false;
      int64_t newer_than = 0;
    };
    auto o = std::make_shared<Opts>();
    CLI::App* c = Leaf(noun, cli, "get",
                       "an issuer's CRL (GetCrl): -o pem prints it, -o der --out FILE writes it, "
                       "table/json describe it",
                       [&cli, o] {
                         auto stub = Revocation::NewStub(cli.Channel());
                         v1::GetCrlRequest req;
                         req.set_issuer_id(o->issuer);
                         req.set_delta(o->delta);
                         req.set_newer_than_crl_number(o->newer_than);
                         const OutputFormat format = cli.Format();
                         req.set_encoding(format == OutputFormat::kDer ? v1::CRL_ENCODING_DER
                                                                       : v1::CRL_ENCODING_PEM);
                         auto resp = cli.Call(stub.get(), &Revocation::Stub::GetCrl, req);
                         if (resp.not_modified()) {
                           std::cerr << "fleetca: not modified (CRL number " << resp.crl_number()
                                     << ")\n";
                         }
                         if (!o->out.empty() && format != OutputFormat::kDer) {
                           WriteOutputFile(o->out, resp.crl_pem(), 0644);
                         }
                         if (format == OutputFormat::kPem && resp.not_modified()) return;
                         Show(cli, resp, resp.crl_pem(), &resp.crl_der(), o->out);
                       });
    c->add_option("issuer", o->issuer, "issuer id (devices-1, ...)")->required();
    c->add_flag("--delta", o->delta, "the newest delta CRL instead of the complete one");
    c->add_option("--newer-than", o->newer_than,
                  "answer not_modified unless the CRL number is greater");
    c->add_option("--out", o->out, "write the CRL to this file (PEM; DER with -o der)");
  }
  {  // import
    struct Opts {
      std::string external_ca, file;
    };
    auto o = std::make_shared<Opts>();
    CLI::App* c = Leaf(noun, cli, "import", "import an external CA's CRL (ImportCrl)", [&cli, o] {
      auto stub = Revocation::NewStub(cli.Channel());
      v1::ImportCrlRequest req;
      req.set_external_ca_id(o->external_ca);
      const std::string crl = ReadInputFile(o->file);
      if (LooksPem(crl)) {
        req.set_crl_pem(crl);
      } else {
        req.set_crl_der(crl);
      }
      Show(cli, cli.Call(stub.get(), &Revocation::Stub::ImportCrl, req));
    });
    c->add_option("external_ca", o->external_ca, "external CA id")->required();
    c->add_option("file", o->file, "CRL file, PEM or DER (- for stdin)")->required();
  }
}

}  // namespace fleetca::cli
