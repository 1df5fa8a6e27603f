// IssuanceService over gRPC (in-process server, real channels) on a real PostgreSQL:
// ExportPkcs12. Callers get their role from a test AuthMetadataProcessor (the production
// one needs client certificates), over local TCP credentials: each caller has a channel,
// hence a connection, of its own, as each TLS client has in production.
#include "server/api/issuance_service.h"

#include <gmock/gmock.h>
#include <grpc/grpc_security_constants.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/security/auth_metadata_processor.h>
#include <gtest/gtest.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "pki/certificate_builder.h"
#include "pki/keys.h"
#include "pki/openssl_util.h"
#include "server/auth/auth_processor.h"
#include "server/ca/certificate_authority.h"
#include "server/issuance/issuance.h"
#include "server/registry/registry.h"
#include "storage/pg_broker_store.h"
#include "storage/pg_certificate_store.h"
#include "storage/pg_device_store.h"
#include "storage/pg_issuer_store.h"
#include "storage/pg_revocation_store.h"
#include "tests/testing/test_database.h"

namespace fleetca::api {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kPassword[] = "s3cret pass";

// TestAuthProcessor: names the caller from the "x-test-name" and "x-test-role" metadata,
// once per connection (as the production processor does from the client certificate). No
// metadata: no name, so the handler sees the development caller (admin).
class TestAuthProcessor final : public grpc::AuthMetadataProcessor {
 public:
  bool IsBlocking() const override { return false; }
  grpc::Status Process(const InputMetadata& metadata, grpc::AuthContext* context,
                       OutputMetadata*, OutputMetadata*) override {
    auto name = metadata.find("x-test-name");
    auto role = metadata.find("x-test-role");
    if (name == metadata.end() || role == metadata.end()) return grpc::Status::OK;
    absl::MutexLock lock(&mu_);
    if (context->FindPropertyValues(auth::kNameProperty).empty()) {
      context->AddProperty(auth::kNameProperty,
                           std::string(name->second.data(), name->second.size()));
      context->AddProperty(auth::kRoleProperty,
                           std::string(role->second.data(), role->second.size()));
    }
    return grpc::Status::OK;
  }

 private:
  absl::Mutex mu_;
};

pki::KeyRing Ring() {
  auto kek = pki::Kek::Generate("kek-1");
  EXPECT_TRUE(kek.ok()) << kek.status();
  std::vector<pki::Kek> keks;
  keks.push_back(*kek);
  return *pki::KeyRing::Create(std::move(keks));
}

std::string PrivateKeyPem(const EVP_PKEY* key) {
  pki::BioPtr bio(BIO_new(BIO_s_mem()));
  EXPECT_EQ(PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr), 1);
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

// A device key and its CSR (CN = comm_id), made with pki (the key signs its own CSR).
struct DeviceKey {
  std::string key_pem;
  std::string csr_pem;
};

DeviceKey NewDeviceKey(const std::string& comm_id,
                       pki::KeyAlgorithm algorithm = pki::KeyAlgorithm::kEcdsaP256) {
  DeviceKey out;
  auto key = pki::GenerateKey(algorithm);
  EXPECT_TRUE(key.ok()) << key.status();
  if (!key.ok()) return out;
  out.key_pem = PrivateKeyPem(key->get());
  pki::SoftwareKeyStore store;
  EVP_PKEY_up_ref(key->get());
  store.Add("device", pki::EvpPkeyPtr(key->get()));
  pki::SubjectName subject;
  subject.common_name = comm_id;
  auto csr = pki::BuildCsr(subject, key->get(), store, "device");
  EXPECT_TRUE(csr.ok()) << csr.status();
  if (!csr.ok()) return out;
  auto pem = pki::CsrToPem(csr->get());
  EXPECT_TRUE(pem.ok()) << pem.status();
  if (pem.ok()) out.csr_pem = *pem;
  return out;
}

// Opened: what OpenSSL's PKCS12_parse finds in a file (what a C client gets).
struct Opened {
  bool ok = false;
  pki::EvpPkeyPtr key;
  pki::X509Ptr cert;
  std::vector<pki::X509Ptr> ca;  // in the file's order
  std::string friendly_name;
};

Opened OpenPkcs12(const std::string& der, const std::string& password) {
  Opened out;
  const unsigned char* p = reinterpret_cast<const unsigned char*>(der.data());
  PKCS12* p12 = d2i_PKCS12(nullptr, &p, static_cast<long>(der.size()));
  if (p12 == nullptr) return out;
  EVP_PKEY* key = nullptr;
  X509* cert = nullptr;
  STACK_OF(X509)* ca = nullptr;
  out.ok = PKCS12_parse(p12, password.c_str(), &key, &cert, &ca) == 1;
  PKCS12_free(p12);
  out.key.reset(key);
  out.cert.reset(cert);
  if (cert != nullptr) {
    int len = 0;
    const unsigned char* alias = X509_alias_get0(cert, &len);
    if (alias != nullptr) out.friendly_name.assign(reinterpret_cast<const char*>(alias), len);
  }
  for (int i = 0; ca != nullptr && i < sk_X509_num(ca); ++i) {
    out.ca.emplace_back(sk_X509_value(ca, i));
  }
  sk_X509_free(ca);  // the certificates are owned by out.ca now
  pki::ClearOpenSslErrors();
  return out;
}

std::string DerOf(const X509* cert) {
  auto der = pki::CertificateToDer(cert);
  EXPECT_TRUE(der.ok()) << der.status();
  return der.ok() ? *der : "";
}

class IssuanceServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ca::InitOptions options;
    options.subject.common_name = "Acme Fleet";
    auto init = ca_.Initialize(options, RequestContext::Local("tester"));
    ASSERT_TRUE(init.ok()) << init.status();
    auto creds = grpc::experimental::LocalServerCredentials(LOCAL_TCP);
    creds->SetAuthMetadataProcessor(std::make_shared<TestAuthProcessor>());
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", creds, &port_);
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
  }
  void TearDown() override {
    if (server_ != nullptr) server_->Shutdown();
  }

  // A caller: role "" is the development admin (no metadata). Each caller has its own
  // connection (a local subchannel pool), since the processor names a connection once.
  class Caller {
   public:
    Caller(int port, std::string name, std::string role)
        : name_(std::move(name)), role_(std::move(role)) {
      grpc::ChannelArguments args;
      args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
      args.SetString("fleetca.test.caller", name_ + "/" + role_);
      stub_ = v1::IssuanceService::NewStub(grpc::CreateCustomChannel(
          absl::StrCat("127.0.0.1:", port), grpc::experimental::LocalCredentials(LOCAL_TCP),
          args));
    }

    grpc::Status Sign(const std::string& comm_id, const std::string& csr_pem,
                      v1::Certificate* out) {
      auto ctx = Context();
      v1::SignDeviceCsrRequest req;
      req.set_comm_id(comm_id);
      req.set_csr_pem(csr_pem);
      req.set_request_id(absl::StrCat("req-", comm_id, "-", ++requests_));
      v1::SignDeviceCsrResponse resp;
      grpc::Status st = stub_->SignDeviceCsr(ctx.get(), req, &resp);
      if (out != nullptr) *out = resp.certificate();
      return st;
    }

    grpc::Status Export(const v1::ExportPkcs12Request& req, std::string* pkcs12 = nullptr) {
      auto ctx = Context();
      v1::ExportPkcs12Response resp;
      grpc::Status st = stub_->ExportPkcs12(ctx.get(), req, &resp);
      if (pkcs12 != nullptr) *pkcs12 = resp.pkcs12();
      return st;
    }

   private:
    std::unique_ptr<grpc::ClientContext> Context() {
      auto ctx = std::make_unique<grpc::ClientContext>();
      if (!role_.empty()) {
        ctx->AddMetadata("x-test-name", name_);
        ctx->AddMetadata("x-test-role", role_);
      }
      return ctx;
    }

    std::string name_, role_;
    int requests_ = 0;
    std::unique_ptr<v1::IssuanceService::Stub> stub_;
  };

  Caller As(const std::string& name = "", const std::string& role = "") {
    return Caller(port_, name, role);
  }

  void RegisterDevice(const std::string& comm_id) {
    storage::Device d;
    d.comm_id = comm_id;
    auto st = registry_.Register(d, RequestContext::Local("tester"));
    ASSERT_TRUE(st.ok()) << st.status();
  }

  // A registered device with a certificate signed for `caller`: its key and certificate.
  void Issue(Caller& caller, const std::string& comm_id, DeviceKey* key, v1::Certificate* cert) {
    ASSERT_NO_FATAL_FAILURE(RegisterDevice(comm_id));
    *key = NewDeviceKey(comm_id);
    ASSERT_FALSE(key->csr_pem.empty());
    grpc::Status st = caller.Sign(comm_id, key->csr_pem, cert);
    ASSERT_TRUE(st.ok()) << st.error_message();
  }

  static v1::ExportPkcs12Request Request(const v1::Certificate& cert, const DeviceKey& key) {
    v1::ExportPkcs12Request req;
    req.set_serial(cert.serial());
    req.set_private_key_pem(key.key_pem);
    req.set_password(kPassword);
    return req;
  }

  std::string Bytes(const std::string& serial_hex) {
    auto s = pki::SerialFromHex(serial_hex);
    EXPECT_TRUE(s.ok());
    return s.ok() ? *s : "";
  }

  testing::TestDatabase db_;
  pki::KeyRing ring_ = Ring();
  pki::SoftwareKeyStore keys_;
  storage::PgIssuerStore issuer_store_{db_.pool()};
  storage::PgCertificateStore certificate_store_{db_.pool()};
  storage::PgBrokerStore broker_store_{db_.pool()};
  storage::PgDeviceStore device_store_{db_.pool()};
  storage::PgRevocationStore revocation_store_{db_.pool()};
  registry::Registry registry_{device_store_};
  ca::CertificateAuthority ca_{issuer_store_, keys_, ring_,
                              ca::CaConfig{"http://pki.example.test"}};
  issuance::Issuance issuance_{ca_, certificate_store_, broker_store_,
                               issuance::DefaultProfiles("Acme")};
  IssuanceService service_{issuance_};
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
};

TEST_F(IssuanceServiceTest, ExportsTheKeyTheCertificateAndTheChain) {
  Caller admin = As();
  DeviceKey key;
  v1::Certificate cert;
  ASSERT_NO_FATAL_FAILURE(Issue(admin, "SN-1", &key, &cert));
  const std::string audit_before = db_.Exec("SELECT count(*) FROM audit_log");
  const std::string certs_before = db_.Exec("SELECT count(*) FROM certificates");

  for (auto encryption : {v1::PKCS12_ENCRYPTION_UNSPECIFIED, v1::PKCS12_ENCRYPTION_AES_256,
                          v1::PKCS12_ENCRYPTION_LEGACY}) {
    SCOPED_TRACE(v1::Pkcs12Encryption_Name(encryption));
    v1::ExportPkcs12Request req = Request(cert, key);
    req.set_pkcs12_encryption(encryption);
    std::string der;
    grpc::Status st = admin.Export(req, &der);
    ASSERT_TRUE(st.ok()) << st.error_message();
    Opened p12 = OpenPkcs12(der, kPassword);
    ASSERT_TRUE(p12.ok);
    ASSERT_NE(p12.cert, nullptr);
    ASSERT_NE(p12.key, nullptr);
    // The certificate is the one issued, the key its own, the alias its CN.
    auto issued = pki::CertificateFromPem(cert.certificate_pem());
    ASSERT_TRUE(issued.ok());
    EXPECT_EQ(DerOf(p12.cert.get()), DerOf(issued->get()));
    EXPECT_TRUE(pki::PublicKeysMatch(X509_get0_pubkey(p12.cert.get()), p12.key.get()));
    EXPECT_EQ(p12.friendly_name, "SN-1");
    // The chain: the devices CA, then the root (the certificate's chain_pem).
    auto chain = pki::CertificatesFromPem(cert.chain_pem());
    ASSERT_TRUE(chain.ok());
    ASSERT_EQ(chain->size(), 2u);
    ASSERT_EQ(p12.ca.size(), 2u);
    for (size_t i = 0; i < 2; ++i) EXPECT_EQ(DerOf(p12.ca[i].get()), DerOf((*chain)[i].get()));
    // The wrong password opens nothing.
    EXPECT_FALSE(OpenPkcs12(der, "wrong").ok);
  }
  // A read: nothing written, nothing audited.
  EXPECT_EQ(db_.Exec("SELECT count(*) FROM audit_log"), audit_before);
  EXPECT_EQ(db_.Exec("SELECT count(*) FROM certificates"), certs_before);
  EXPECT_EQ(db_.Exec("SELECT count(*) FROM audit_log WHERE details::text LIKE '%PRIVATE KEY%'"),
            "0");
}

TEST_F(IssuanceServiceTest, FriendlyNameIssuerIdAndExcludeChain) {
  Caller admin = As();
  DeviceKey key;
  v1::Certificate cert;
  ASSERT_NO_FATAL_FAILURE(Issue(admin, "SN-2", &key, &cert));
  v1::ExportPkcs12Request req = Request(cert, key);
  req.set_friendly_name("pump 2");
  req.set_exclude_chain(true);
  req.set_issuer_id(cert.issuer_id());
  std::string der;
  grpc::Status st = admin.Export(req, &der);
  ASSERT_TRUE(st.ok()) << st.error_message();
  Opened p12 = OpenPkcs12(der, kPassword);
  ASSERT_TRUE(p12.ok);
  EXPECT_EQ(p12.friendly_name, "pump 2");
  EXPECT_TRUE(p12.ca.empty()) << p12.ca.size() << " CA certificates with exclude_chain";
  ASSERT_NE(p12.key, nullptr);

  // The serial as other RPCs take it: colons and upper case.
  std::string colons;
  for (size_t i = 0; i < cert.serial().size(); i += 2) {
    if (i > 0) colons += ":";
    colons += absl::AsciiStrToUpper(cert.serial().substr(i, 2));
  }
  req.set_serial(colons);
  EXPECT_TRUE(admin.Export(req).ok());
}

TEST_F(IssuanceServiceTest, UnknownCertificatesAreNotFound) {
  Caller admin = As();
  DeviceKey key;
  v1::Certificate cert;
  ASSERT_NO_FATAL_FAILURE(Issue(admin, "SN-3", &key, &cert));
  v1::ExportPkcs12Request req = Request(cert, key);
  req.set_serial("0123456789abcdef0123456789abcdef");
  grpc::Status st = admin.Export(req);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::NOT_FOUND) << st.error_message();
  EXPECT_THAT(st.error_message(), HasSubstr("0123456789abcdef"));

  // A serial of another issuer than the one named.
  req = Request(cert, key);
  req.set_issuer_id("brokers-1");
  st = admin.Export(req);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::NOT_FOUND) << st.error_message();
  EXPECT_THAT(st.error_message(), HasSubstr("brokers-1"));

  // A malformed serial is the request's fault.
  req = Request(cert, key);
  req.set_serial("not-hex");
  st = admin.Export(req);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(st.error_message(), HasSubstr("serial"));
  req.clear_serial();
  st = admin.Export(req);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(st.error_message(), HasSubstr("serial"));
}

TEST_F(IssuanceServiceTest, KeysThatDoNotFitAreInvalidAndNotEchoed) {
  Caller admin = As();
  DeviceKey key;
  v1::Certificate cert;
  ASSERT_NO_FATAL_FAILURE(Issue(admin, "SN-4", &key, &cert));
  const DeviceKey other = NewDeviceKey("SN-4");
  const DeviceKey rsa = NewDeviceKey("SN-4", pki::KeyAlgorithm::kRsa2048);
  const std::string garbage =
      "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWtleS1ieXRlcw==\n-----END PRIVATE KEY-----\n";
  for (const auto& [what, pem] : std::map<std::string, std::string>{
           {"another EC key", other.key_pem},
           {"an RSA key", rsa.key_pem},
           {"garbage PEM", garbage},
           {"the certificate instead of the key", cert.certificate_pem()},
           {"empty", ""}}) {
    SCOPED_TRACE(what);
    v1::ExportPkcs12Request req = Request(cert, key);
    req.set_private_key_pem(pem);
    grpc::Status st = admin.Export(req);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(st.error_message(), HasSubstr("private_key_pem"));
    EXPECT_THAT(st.error_message(), Not(HasSubstr("BEGIN")));
    EXPECT_THAT(st.error_message(), Not(HasSubstr("c2VjcmV0")));
  }
}

TEST_F(IssuanceServiceTest, PasswordsAreOneTo128Bytes) {
  Caller admin = As();
  DeviceKey key;
  v1::Certificate cert;
  ASSERT_NO_FATAL_FAILURE(Issue(admin, "SN-5", &key, &cert));
  // (Not UTF-8 is refused too, by pki, but a protobuf string cannot carry it to the server.)
  for (const std::string& bad : {std::string(), std::string(129, 'x'), std::string("a\0b", 3)}) {
    SCOPED_TRACE(bad.size());
    v1::ExportPkcs12Request req = Request(cert, key);
    req.set_password(bad);
    grpc::Status st = admin.Export(req);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(st.error_message(), HasSubstr("password"));
  }
  for (const std::string& good : {std::string("x"), std::string(128, 'y')}) {
    v1::ExportPkcs12Request req = Request(cert, key);
    req.set_password(good);
    std::string der;
    grpc::Status st = admin.Export(req, &der);
    ASSERT_TRUE(st.ok()) << st.error_message();
    EXPECT_TRUE(OpenPkcs12(der, good).ok);
  }
  v1::ExportPkcs12Request req = Request(cert, key);
  req.set_pkcs12_encryption(static_cast<v1::Pkcs12Encryption>(42));
  grpc::Status st = admin.Export(req);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(st.error_message(), HasSubstr("pkcs12_encryption"));
}

TEST_F(IssuanceServiceTest, RevokedHeldAndExpiredCertificatesAreRefused) {
  Caller admin = As();
  DeviceKey k_revoked, k_held, k_expired;
  v1::Certificate revoked, held, expired;
  ASSERT_NO_FATAL_FAILURE(Issue(admin, "SN-6", &k_revoked, &revoked));
  ASSERT_NO_FATAL_FAILURE(Issue(admin, "SN-7", &k_held, &held));
  ASSERT_NO_FATAL_FAILURE(Issue(admin, "SN-8", &k_expired, &expired));
  const RequestContext ctx = RequestContext::Local("tester");
  ASSERT_TRUE(revocation_store_
                  .Revoke(Bytes(revoked.serial()), "", /*reason=*/1, std::nullopt, "", ctx)
                  .ok());
  ASSERT_TRUE(revocation_store_.Hold(Bytes(held.serial()), "", "", ctx).ok());
  db_.Exec(absl::StrCat("UPDATE certificates SET not_before = now() - interval '2 days', ",
                        "not_after = now() - interval '1 day' ",
                        "WHERE serial = '\\x", expired.serial(), "'::bytea"));
  ASSERT_EQ(db_.Exec(absl::StrCat("SELECT not_after < now() FROM certificates WHERE serial = '\\x",
                                  expired.serial(), "'::bytea")),
            "t");
  for (const auto& [cert, key, word] :
       {std::make_tuple(revoked, k_revoked, "revoked"), std::make_tuple(held, k_held, "on hold"),
        std::make_tuple(expired, k_expired, "expired")}) {
    SCOPED_TRACE(word);
    grpc::Status st = admin.Export(Request(cert, key));
    EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << st.error_message();
    EXPECT_THAT(st.error_message(), HasSubstr(word));
    EXPECT_THAT(st.error_message(), HasSubstr(cert.serial()));
  }
}

TEST_F(IssuanceServiceTest, ProvisionersExportWhatTheyRequestedDevicesTheirOwn) {
  Caller station1 = As("station-1", "provisioner");
  Caller station2 = As("station-2", "provisioner");
  DeviceKey key;
  v1::Certificate cert;
  ASSERT_NO_FATAL_FAILURE(Issue(station1, "SN-9", &key, &cert));
  EXPECT_EQ(cert.requested_by(), "station-1");

  std::string der;
  grpc::Status st = station1.Export(Request(cert, key), &der);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_TRUE(OpenPkcs12(der, kPassword).ok);

  // Another provisioner: refused as GetCertificate refuses it, whatever the key.
  st = station2.Export(Request(cert, key));
  EXPECT_EQ(st.error_code(), grpc::StatusCode::PERMISSION_DENIED) << st.error_message();
  EXPECT_THAT(st.error_message(), HasSubstr("role provisioner (station-2)"));
  EXPECT_THAT(st.error_message(), HasSubstr("may read only"));

  // The device itself may; another device may not.
  Caller self = As("SN-9", "device");
  EXPECT_TRUE(self.Export(Request(cert, key)).ok());
  Caller other = As("SN-10", "device");
  st = other.Export(Request(cert, key));
  EXPECT_EQ(st.error_code(), grpc::StatusCode::PERMISSION_DENIED) << st.error_message();
  EXPECT_THAT(st.error_message(), HasSubstr("role device (SN-10)"));

  // The admin may export anyone's.
  EXPECT_TRUE(As().Export(Request(cert, key)).ok());
}

}  // namespace
}  // namespace fleetca::api
