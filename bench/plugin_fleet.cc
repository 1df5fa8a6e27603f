// plugin_fleet: what the plugin benchmarks (bench/plugin_connect.sh,
// bench/plugin_revocation.sh) need from a running fleetca-server, made through its gRPC API
// over mutual TLS as its admin (the credential `fleetca-server init` writes):
//  - broker --broker_id (allowed name localhost and address 127.0.0.1), its BROKER identity
//    (IssueIdentity, key made by the server): OUT/plugin.crt (certificate and chain) and
//    OUT/plugin.key, what the plugin follows Watch with;
//  - the broker's TLS certificate (SignBrokerCsr for a P-256 key made here):
//    OUT/broker.pem (certificate and chain), OUT/broker.key;
//  - the trust bundles: OUT/clients-ca.pem (CLIENT_AUTH: mosquitto's cafile) and
//    OUT/servers-ca.pem (SERVER_AUTH: what the devices verify the broker with);
//  - --devices devices <prefix><i> (BatchRegisterDevices), each with a P-256 key made here
//    and a certificate (SignDeviceCsr): OUT/devices/<comm_id>.pem (key, then certificate),
//    and OUT/manifest, one line per device: "<comm_id> <serial> <issuer_id>".
// Start the server with --issuance_rate_limit=0 (the default limit, 50/s per identity,
// would pace the devices' certificates).
//
//   plugin_fleet --target=localhost:PORT --cacert=DIR/ca.pem --credential=DIR/admin.pem
//                --out=DIR --devices=200
#include <grpcpp/grpcpp.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sys/stat.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "bench/bench_util.h"
#include "fleetca/v1/broker_sync.grpc.pb.h"
#include "fleetca/v1/certificate_authority.grpc.pb.h"
#include "fleetca/v1/device_registry.grpc.pb.h"
#include "fleetca/v1/identity.grpc.pb.h"
#include "fleetca/v1/issuance.grpc.pb.h"
#include "sync_client/connection.h"

ABSL_FLAG(std::string, target, "localhost:50051", "fleetca-server gRPC address (TLS)");
ABSL_FLAG(std::string, cacert, "", "the server CA bundle (ca.pem beside the admin credential)");
ABSL_FLAG(std::string, credential, "", "the admin credential (key, certificate, chain; mode 0600)");
ABSL_FLAG(std::string, out, "", "output directory");
ABSL_FLAG(int, devices, 200, "devices to register, each with a certificate");
ABSL_FLAG(std::string, prefix, "dev-", "comm-ID prefix");
ABSL_FLAG(std::string, broker_id, "mqtt-1", "the broker (and its identity's name)");

namespace {

namespace v1 = fleetca::v1;

[[noreturn]] void Die(const std::string& what) { fleetca::bench::Die("plugin_fleet", what); }

void Check(const grpc::Status& status, const std::string& what) {
  if (!status.ok()) {
    Die(absl::StrCat(what, ": ", status.error_code(), " ", status.error_message()));
  }
}

std::unique_ptr<grpc::ClientContext> Context() {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  return ctx;
}

void WriteFile(const std::string& path, const std::string& content, mode_t mode = 0644) {
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << content;
    if (!out) Die("cannot write " + path);
  }
  chmod(path.c_str(), mode);
}

// A P-256 key: its PEM, and a PEM CSR with subject CN=cn signed by it.
std::pair<std::string, std::string> KeyAndCsr(const std::string& cn) {
  EVP_PKEY* key = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
  X509_REQ* req = X509_REQ_new();
  X509_NAME* name = X509_NAME_new();
  if (key == nullptr || req == nullptr || name == nullptr ||
      X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0) != 1 ||
      X509_REQ_set_version(req, X509_REQ_VERSION_1) != 1 || X509_REQ_set_subject_name(req, name) != 1 ||
      X509_REQ_set_pubkey(req, key) != 1 || X509_REQ_sign(req, key, EVP_sha256()) <= 0) {
    Die("CSR for " + cn);
  }
  auto to_string = [](BIO* bio) {
    char* data = nullptr;
    const long n = BIO_get_mem_data(bio, &data);
    std::string s(data, static_cast<size_t>(n));
    BIO_free(bio);
    return s;
  };
  BIO* kb = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(kb, key, nullptr, nullptr, 0, nullptr, nullptr);
  BIO* rb = BIO_new(BIO_s_mem());
  PEM_write_bio_X509_REQ(rb, req);
  std::pair<std::string, std::string> out{to_string(kb), to_string(rb)};
  X509_NAME_free(name);
  X509_REQ_free(req);
  EVP_PKEY_free(key);
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const std::string out = absl::GetFlag(FLAGS_out);
  if (out.empty() || absl::GetFlag(FLAGS_cacert).empty() || absl::GetFlag(FLAGS_credential).empty()) {
    Die("--out, --cacert and --credential are required");
  }
  mkdir(out.c_str(), 0755);
  mkdir((out + "/devices").c_str(), 0755);

  fleetca::sync_client::ConnectionConfig config;
  config.server = absl::GetFlag(FLAGS_target);
  config.tls_ca = absl::GetFlag(FLAGS_cacert);
  config.tls_cert = absl::GetFlag(FLAGS_credential);
  config.tls_key = absl::GetFlag(FLAGS_credential);
  auto credentials = fleetca::sync_client::ChannelCredentialsFor(config);
  if (!credentials.ok()) Die(std::string(credentials.status().message()));
  auto channel = fleetca::sync_client::NewChannel(config, *credentials);
  auto brokers = v1::BrokerSyncService::NewStub(channel);
  auto identities = v1::IdentityService::NewStub(channel);
  auto issuance = v1::IssuanceService::NewStub(channel);
  auto cas = v1::CertificateAuthorityService::NewStub(channel);
  auto registry = v1::DeviceRegistryService::NewStub(channel);
  const auto start = std::chrono::steady_clock::now();
  const std::string broker_id = absl::GetFlag(FLAGS_broker_id);

  {
    v1::RegisterBrokerRequest req;
    v1::RegisterBrokerResponse resp;
    req.mutable_broker()->set_broker_id(broker_id);
    req.mutable_broker()->add_allowed_dns_names("localhost");
    req.mutable_broker()->add_allowed_ip_addresses("127.0.0.1");
    Check(brokers->RegisterBroker(Context().get(), req, &resp), "RegisterBroker");
  }
  {
    v1::IssueIdentityRequest req;
    v1::IssueIdentityResponse resp;
    req.set_name(broker_id);
    req.set_role(v1::IDENTITY_ROLE_BROKER);
    req.set_generate_key_algorithm(v1::KEY_ALGORITHM_ECDSA_P256);
    Check(identities->IssueIdentity(Context().get(), req, &resp), "IssueIdentity");
    WriteFile(out + "/plugin.crt", resp.certificate().certificate_pem() + resp.certificate().chain_pem());
    WriteFile(out + "/plugin.key", resp.private_key_pem(), 0600);
  }
  {
    auto [key, csr] = KeyAndCsr("localhost");
    v1::SignBrokerCsrRequest req;
    v1::SignBrokerCsrResponse resp;
    req.set_broker_id(broker_id);
    req.set_csr_pem(csr);
    req.add_dns_names("localhost");
    req.add_ip_addresses("127.0.0.1");
    req.set_request_id("bench-broker-tls");
    Check(issuance->SignBrokerCsr(Context().get(), req, &resp), "SignBrokerCsr");
    WriteFile(out + "/broker.pem", resp.certificate().certificate_pem() + resp.certificate().chain_pem());
    WriteFile(out + "/broker.key", key, 0644);  // mosquitto reads it (as root here)
  }
  for (auto [scope, file] : {std::pair{v1::TRUST_BUNDLE_SCOPE_CLIENT_AUTH, "clients-ca.pem"},
                             std::pair{v1::TRUST_BUNDLE_SCOPE_SERVER_AUTH, "servers-ca.pem"}}) {
    v1::GetTrustBundleRequest req;
    v1::GetTrustBundleResponse resp;
    req.set_scope(scope);
    Check(cas->GetTrustBundle(Context().get(), req, &resp), "GetTrustBundle");
    WriteFile(out + "/" + file, resp.bundle_pem());
  }

  const int devices = absl::GetFlag(FLAGS_devices);
  const std::string prefix = absl::GetFlag(FLAGS_prefix);
  for (int first = 0; first < devices; first += 1000) {
    v1::BatchRegisterDevicesRequest req;
    v1::BatchRegisterDevicesResponse resp;
    for (int i = first; i < std::min(devices, first + 1000); ++i) {
      req.add_devices()->set_comm_id(absl::StrCat(prefix, i));
    }
    Check(registry->BatchRegisterDevices(Context().get(), req, &resp), "BatchRegisterDevices");
  }
  std::string manifest;
  for (int i = 0; i < devices; ++i) {
    const std::string comm_id = absl::StrCat(prefix, i);
    auto [key, csr] = KeyAndCsr(comm_id);
    v1::SignDeviceCsrRequest req;
    v1::SignDeviceCsrResponse resp;
    req.set_comm_id(comm_id);
    req.set_csr_pem(csr);
    req.set_request_id(absl::StrCat("bench-", comm_id));
    Check(issuance->SignDeviceCsr(Context().get(), req, &resp), "SignDeviceCsr " + comm_id);
    WriteFile(out + "/devices/" + comm_id + ".pem", key + resp.certificate().certificate_pem(), 0600);
    absl::StrAppend(&manifest, comm_id, " ", resp.certificate().serial(), " ",
                    resp.certificate().issuer_id(), "\n");
  }
  WriteFile(out + "/manifest", manifest);
  std::printf("== fleet: broker %s with its identity and TLS certificate, %d devices with a "
              "certificate each, in %.1f s\n",
              broker_id.c_str(), devices,
              std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  return 0;
}
