#include "server/auth/auth_processor.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "tests/server/auth/auth_test_util.h"

namespace fleetca::auth {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using testing::LeafSpec;

// An AuthContext in memory: what gRPC's TLS transport hands the processor (the client
// certificate as property "x509_pem_cert"), and what the processor adds.
class FakeAuthContext : public grpc::AuthContext {
 public:
  explicit FakeAuthContext(const std::string& pem = "") {
    if (!pem.empty()) properties_.emplace("x509_pem_cert", pem);
  }

  bool IsPeerAuthenticated() const override { return false; }
  std::vector<grpc::string_ref> GetPeerIdentity() const override { return {}; }
  std::string GetPeerIdentityPropertyName() const override { return ""; }
  std::vector<grpc::string_ref> FindPropertyValues(const std::string& name) const override {
    std::vector<grpc::string_ref> out;
    auto [begin, end] = properties_.equal_range(name);
    for (auto it = begin; it != end; ++it) out.emplace_back(it->second);
    return out;
  }
  // The processor never iterates: an empty range.
  grpc::AuthPropertyIterator begin() const override { return EmptyIterator(); }
  grpc::AuthPropertyIterator end() const override { return EmptyIterator(); }
  void AddProperty(const std::string& key, const grpc::string_ref& value) override {
    properties_.emplace(key, std::string(value.data(), value.size()));
  }
  bool SetPeerIdentityPropertyName(const std::string&) override { return false; }

  // The value of a property the processor added, or "" (several: joined by '|').
  std::string Property(const std::string& name) const {
    std::string out;
    for (const grpc::string_ref& v : FindPropertyValues(name)) {
      if (!out.empty()) out += '|';
      out.append(v.data(), v.size());
    }
    return out;
  }

 private:
  // AuthPropertyIterator's default constructor (the end iterator) is protected.
  struct EmptyIterator : grpc::AuthPropertyIterator {
    EmptyIterator() : grpc::AuthPropertyIterator() {}
  };
  std::multimap<std::string, std::string> properties_;
};

class AuthProcessorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // The processor reads the real clock: certificates are valid around it.
    ASSERT_NO_FATAL_FAILURE(pki_.Init(absl::Now()));
    authenticator_.SetAnchors(pki_.Anchors());
  }

  // Call runs the processor for a call of `method` with client certificate pem ("" for
  // none) and records the context it filled.
  grpc::Status Call(const std::string& method, const std::string& pem) {
    path_ = method;  // string_refs in the metadata point here
    grpc::AuthMetadataProcessor::InputMetadata metadata;
    metadata.emplace(":path", grpc::string_ref(path_));
    context_ = FakeAuthContext(pem);
    grpc::AuthMetadataProcessor::OutputMetadata consumed, response;
    return processor_.Process(metadata, &context_, &consumed, &response);
  }

  std::string Provisioner(const std::string& name = "station-12") {
    LeafSpec spec;
    spec.common_name = name;
    spec.uris = {"fleetca://role/provisioner/" + name};
    return pki_.Issue(spec).pem;
  }

  testing::TestPki pki_;
  Authenticator authenticator_;
  RateLimiter limiter_{/*rate_per_second=*/1e-6, /*burst=*/2};  // no refill within a test
  AuthProcessor processor_{authenticator_, limiter_};
  std::string path_;
  FakeAuthContext context_;
};

TEST_F(AuthProcessorTest, HealthNeedsNoCertificate) {
  const grpc::Status st = Call("/grpc.health.v1.Health/Check", "");
  EXPECT_TRUE(st.ok()) << st.error_message();
  EXPECT_THAT(context_.Property(kNameProperty), IsEmpty());
}

TEST_F(AuthProcessorTest, NoCertificateIsUnauthenticated) {
  for (const char* method : {"/fleetca.v1.DeviceRegistryService/GetDevice",
                             "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"}) {
    const grpc::Status st = Call(method, "");
    EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAUTHENTICATED) << method;
    EXPECT_THAT(st.error_message(), HasSubstr("no client certificate"));
  }
}

TEST_F(AuthProcessorTest, AuthorizedCallRecordsTheCaller) {
  const testing::Leaf leaf = pki_.Issue({});
  const grpc::Status st = Call("/fleetca.v1.DeviceRegistryService/RegisterDevice", leaf.pem);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(context_.Property(kNameProperty), "station-12");
  EXPECT_EQ(context_.Property(kRoleProperty), "provisioner");
  EXPECT_EQ(context_.Property(kSerialProperty), leaf.serial_hex);
  EXPECT_EQ(context_.Property(kIssuerProperty), "operators");
}

// gRPC hands the processor the connection's AuthContext, shared by every call on it: the
// caller is recorded once, not once per call (which grew a long-lived connection's memory
// by about 0.5 KB per call: docs/reliability.md, "Soak").
TEST_F(AuthProcessorTest, ManyCallsOnOneConnectionRecordTheCallerOnce) {
  const testing::Leaf leaf = pki_.Issue({});
  FakeAuthContext connection(leaf.pem);
  path_ = "/fleetca.v1.DeviceRegistryService/GetDevice";
  grpc::AuthMetadataProcessor::InputMetadata metadata;
  metadata.emplace(":path", grpc::string_ref(path_));
  for (int i = 0; i < 100; ++i) {
    grpc::AuthMetadataProcessor::OutputMetadata consumed, response;
    const grpc::Status st = processor_.Process(metadata, &connection, &consumed, &response);
    ASSERT_TRUE(st.ok()) << st.error_message();
  }
  EXPECT_EQ(connection.Property(kNameProperty), "station-12");
  EXPECT_EQ(connection.Property(kRoleProperty), "provisioner");
  EXPECT_EQ(connection.Property(kSerialProperty), leaf.serial_hex);
  EXPECT_EQ(connection.Property(kIssuerProperty), "operators");
}

TEST_F(AuthProcessorTest, RefusedCertificateIsUnauthenticated) {
  LeafSpec spec;
  spec.issuer = "foreign-operators";
  const grpc::Status st = Call("/fleetca.v1.DeviceRegistryService/GetDevice", pki_.Issue(spec).pem);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(st.error_message(), HasSubstr("client certificate not accepted"));
  EXPECT_THAT(context_.Property(kNameProperty), IsEmpty());
}

TEST_F(AuthProcessorTest, NoAnchorsIsUnavailable) {
  Authenticator empty;
  AuthProcessor processor(empty, limiter_);
  grpc::AuthMetadataProcessor::InputMetadata metadata;
  const std::string path = "/fleetca.v1.DeviceRegistryService/GetDevice";
  metadata.emplace(":path", grpc::string_ref(path));
  FakeAuthContext context(Provisioner());
  grpc::AuthMetadataProcessor::OutputMetadata consumed, response;
  EXPECT_EQ(processor.Process(metadata, &context, &consumed, &response).error_code(),
            grpc::StatusCode::UNAVAILABLE);
}

TEST_F(AuthProcessorTest, ForbiddenMethodIsPermissionDenied) {
  const grpc::Status st = Call("/fleetca.v1.RevocationService/RevokeCertificate", Provisioner());
  EXPECT_EQ(st.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(st.error_message(), HasSubstr("role provisioner (station-12) may not call "
                                            "/fleetca.v1.RevocationService/RevokeCertificate"));
  EXPECT_THAT(context_.Property(kNameProperty), IsEmpty());
}

TEST_F(AuthProcessorTest, UnknownMethodIsForAdminsOnly) {
  EXPECT_EQ(Call("/fleetca.v1.IssuanceService/NoSuchMethod", Provisioner()).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  LeafSpec admin;
  admin.common_name = "alice";
  admin.uris = {"fleetca://role/admin/alice"};
  // Let through, for gRPC to answer UNIMPLEMENTED.
  EXPECT_TRUE(Call("/fleetca.v1.IssuanceService/NoSuchMethod", pki_.Issue(admin).pem).ok());
}

TEST_F(AuthProcessorTest, IssuanceIsRateLimitedPerIdentity) {
  const std::string a = Provisioner("station-12");
  const std::string b = Provisioner("station-13");
  const std::string sign = "/fleetca.v1.IssuanceService/SignDeviceCsr";
  EXPECT_TRUE(Call(sign, a).ok());
  EXPECT_TRUE(Call(sign, a).ok());
  const grpc::Status st = Call(sign, a);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(st.error_message(), HasSubstr("issuance rate limit of station-12 reached"));
  EXPECT_THAT(context_.Property(kNameProperty), IsEmpty());
  // Another station is not affected, and the limited one still reads.
  EXPECT_TRUE(Call(sign, b).ok());
  EXPECT_TRUE(Call("/fleetca.v1.DeviceRegistryService/GetDevice", a).ok());
}

TEST_F(AuthProcessorTest, DeviceAndIdentityOfTheSameNameHaveTheirOwnBuckets) {
  // A device's comm-ID may spell an identity's name: its renewals must not use up the
  // station's issuance budget.
  LeafSpec device;
  device.issuer = "devices";
  device.common_name = "station-12";
  device.uris = {};
  const std::string d = pki_.Issue(device).pem;
  const std::string renew = "/fleetca.v1.IssuanceService/RenewDeviceCertificate";
  EXPECT_TRUE(Call(renew, d).ok());
  EXPECT_TRUE(Call(renew, d).ok());
  EXPECT_EQ(Call(renew, d).error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_TRUE(Call("/fleetca.v1.IssuanceService/SignDeviceCsr", Provisioner("station-12")).ok());
}

TEST_F(AuthProcessorTest, RefusedCallsTakeNoIssuanceToken) {
  // A call refused for its role must not eat the caller's issuance budget.
  LeafSpec viewer;
  viewer.common_name = "station-12";
  viewer.uris = {"fleetca://role/viewer/station-12"};
  const std::string v = pki_.Issue(viewer).pem;
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(Call("/fleetca.v1.IssuanceService/SignDeviceCsr", v).error_code(),
              grpc::StatusCode::PERMISSION_DENIED);
  }
  EXPECT_TRUE(Call("/fleetca.v1.IssuanceService/SignDeviceCsr", Provisioner()).ok());
}

TEST_F(AuthProcessorTest, MissingPathIsAdminOnly) {
  grpc::AuthMetadataProcessor::InputMetadata metadata;  // no ":path"
  FakeAuthContext context(Provisioner());
  grpc::AuthMetadataProcessor::OutputMetadata consumed, response;
  EXPECT_EQ(processor_.Process(metadata, &context, &consumed, &response).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
}

}  // namespace
}  // namespace fleetca::auth
