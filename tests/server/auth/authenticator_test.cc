#include "server/auth/authenticator.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/x509v3.h>

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "tests/server/auth/auth_test_util.h"

namespace fleetca::auth {
namespace {

using ::testing::HasSubstr;
using testing::Leaf;
using testing::LeafSpec;

class AuthenticatorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(pki_.Init(absl::Now()));
    now_ = pki_.now();
    authenticator_.SetAnchors(pki_.Anchors());
  }

  // ExpectRefused: Authenticate refuses pem at `at` with UNAUTHENTICATED and a message
  // containing `reason`.
  void ExpectRefused(const std::string& pem, const std::string& reason, absl::Time at) {
    absl::StatusOr<Principal> p = authenticator_.Authenticate(pem, at);
    ASSERT_FALSE(p.ok()) << "accepted as " << RoleName(p->role) << " " << p->name;
    EXPECT_EQ(p.status().code(), absl::StatusCode::kUnauthenticated) << p.status();
    EXPECT_THAT(p.status().message(), HasSubstr(reason));
  }
  void ExpectRefused(const std::string& pem, const std::string& reason) {
    ExpectRefused(pem, reason, now_);
  }

  // The test PKI's anchors but its operators CA (rotated out, or not known yet).
  std::vector<TrustAnchor> AnchorsWithoutOperators() const {
    std::vector<TrustAnchor> anchors;
    for (TrustAnchor& a : pki_.Anchors()) {
      if (a.kind != TrustAnchor::Kind::kOperators) anchors.push_back(std::move(a));
    }
    return anchors;
  }

  testing::TestPki pki_;
  absl::Time now_;
  Authenticator authenticator_;
};

TEST_F(AuthenticatorTest, ProvisionerIdentity) {
  const Leaf leaf = pki_.Issue({});
  ASSERT_FALSE(leaf.pem.empty());
  absl::StatusOr<Principal> p = authenticator_.Authenticate(leaf.pem, now_);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->role, Role::kProvisioner);
  EXPECT_EQ(p->name, "station-12");
  EXPECT_EQ(p->serial_hex, leaf.serial_hex);
  EXPECT_EQ(p->issuer_id, "operators");
  EXPECT_EQ(p->not_after, leaf.not_after);
  // The serial is lowercase hex, the form the revoked sets hold.
  EXPECT_EQ(p->serial_hex, absl::AsciiStrToLower(p->serial_hex));
  EXPECT_EQ(p->serial_hex.size(), 40u);
}

TEST_F(AuthenticatorTest, EveryIdentityRole) {
  for (const char* role : {"admin", "provisioner", "broker", "viewer", "mqtt-client"}) {
    LeafSpec spec;
    spec.common_name = absl::StrCat(role, "-1");
    spec.uris = {absl::StrCat("fleetca://role/", role, "/", spec.common_name)};
    absl::StatusOr<Principal> p = authenticator_.Authenticate(pki_.Issue(spec).pem, now_);
    ASSERT_TRUE(p.ok()) << role << ": " << p.status();
    EXPECT_EQ(p->role, RoleFromName(role)) << role;
    EXPECT_EQ(p->name, spec.common_name);
  }
}

TEST_F(AuthenticatorTest, OtherUrisBesideTheRoleAreIgnored) {
  LeafSpec spec;
  spec.uris = {"https://station-12.example.test/", "fleetca://role/provisioner/station-12",
               "urn:uuid:6e8bc430-9c3a-11d9-9669-0800200c9a66"};
  absl::StatusOr<Principal> p = authenticator_.Authenticate(pki_.Issue(spec).pem, now_);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->role, Role::kProvisioner);
}

TEST_F(AuthenticatorTest, IdentityWithoutRoleUriIsRefused) {
  LeafSpec spec;
  spec.uris = {};
  ExpectRefused(pki_.Issue(spec).pem, "must carry one URI fleetca://role/<role>/<name>; it has 0");
  spec.uris = {"https://station-12.example.test/"};
  ExpectRefused(pki_.Issue(spec).pem, "it has 0");
  // The prefix is matched exactly: a look-alike is no role URI.
  spec.uris = {"FLEETCA://role/provisioner/station-12"};
  ExpectRefused(pki_.Issue(spec).pem, "it has 0");
}

TEST_F(AuthenticatorTest, IdentityWithTwoRoleUrisIsRefused) {
  LeafSpec spec;
  spec.uris = {"fleetca://role/provisioner/station-12", "fleetca://role/admin/station-12"};
  ExpectRefused(pki_.Issue(spec).pem, "it has 2");
  // Even twice the same one.
  spec.uris = {"fleetca://role/provisioner/station-12", "fleetca://role/provisioner/station-12"};
  ExpectRefused(pki_.Issue(spec).pem, "it has 2");
}

TEST_F(AuthenticatorTest, UnknownRoleIsRefused) {
  LeafSpec spec;
  for (const char* uri : {"fleetca://role/superuser/station-12", "fleetca://role/Admin/station-12",
                          "fleetca://role/provisioner", "fleetca://role/provisioner/station-12/x",
                          "fleetca://role//station-12"}) {
    spec.uris = {uri};
    ExpectRefused(pki_.Issue(spec).pem, absl::StrCat("role URI ", uri, " is not valid"));
  }
}

TEST_F(AuthenticatorTest, RoleUriWithoutNameIsRefused) {
  LeafSpec spec;
  spec.common_name = "x";  // the builder wants a common name; the check comes first
  spec.uris = {"fleetca://role/admin/"};
  ExpectRefused(pki_.Issue(spec).pem, "role URI fleetca://role/admin/ has no name");
}

TEST_F(AuthenticatorTest, OperatorsCaCannotMakeADevice) {
  // Role device comes only from the devices CA: an identity claiming it is refused.
  LeafSpec spec;
  spec.uris = {"fleetca://role/device/station-12"};
  ExpectRefused(pki_.Issue(spec).pem, "is not valid");
}

TEST_F(AuthenticatorTest, RoleNameMustBeTheCommonName) {
  LeafSpec spec;
  spec.common_name = "station-13";
  ExpectRefused(pki_.Issue(spec).pem,
                "role URI fleetca://role/provisioner/station-12 does not name its common name "
                "station-13");
  // Case matters.
  spec.common_name = "Station-12";
  ExpectRefused(pki_.Issue(spec).pem, "does not name its common name");
}

TEST_F(AuthenticatorTest, DeviceCertificate) {
  LeafSpec spec;
  spec.issuer = "devices";
  spec.common_name = "AB12CD34";
  spec.uris = {};
  const Leaf leaf = pki_.Issue(spec);
  absl::StatusOr<Principal> p = authenticator_.Authenticate(leaf.pem, now_);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->role, Role::kDevice);
  EXPECT_EQ(p->name, "AB12CD34");
  EXPECT_EQ(p->serial_hex, leaf.serial_hex);
  EXPECT_EQ(p->issuer_id, "devices");
}

TEST_F(AuthenticatorTest, DeviceCertificateRoleUriGrantsNothing) {
  // A device certificate is a device whatever URI its CSR smuggled in.
  LeafSpec spec;
  spec.issuer = "devices";
  spec.common_name = "AB12CD34";
  spec.uris = {"fleetca://role/admin/AB12CD34"};
  absl::StatusOr<Principal> p = authenticator_.Authenticate(pki_.Issue(spec).pem, now_);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->role, Role::kDevice);
  EXPECT_EQ(p->name, "AB12CD34");
}

TEST_F(AuthenticatorTest, ForeignCaIsRefused) {
  // A foreign hierarchy whose CAs have fleetca's very names.
  LeafSpec spec;
  spec.issuer = "foreign-operators";
  ExpectRefused(pki_.Issue(spec).pem, "client certificate not accepted");
  spec.issuer = "foreign-root";
  ExpectRefused(pki_.Issue(spec).pem, "client certificate not accepted");
}

TEST_F(AuthenticatorTest, OnlyOperatorsAndDevicesCasSignCallers) {
  LeafSpec spec;
  spec.issuer = "brokers";  // trusted for chains, but signs no callers
  ExpectRefused(pki_.Issue(spec).pem, "not issued by an operators or devices CA");
  spec.issuer = "root";
  ExpectRefused(pki_.Issue(spec).pem, "not issued by an operators or devices CA");
}

TEST_F(AuthenticatorTest, CaCertificateIsNoCaller) {
  for (const X509* ca : {pki_.operators(), pki_.devices(), pki_.root()}) {
    auto pem = pki::CertificateToPem(ca);
    ASSERT_TRUE(pem.ok());
    ExpectRefused(*pem, "client certificate not accepted");
  }
}

TEST_F(AuthenticatorTest, ServerCertificateIsRefused) {
  LeafSpec spec;
  spec.profile = pki::CertificateProfile::kServer;
  ExpectRefused(pki_.Issue(spec).pem, "it does not allow clientAuth");
}

TEST_F(AuthenticatorTest, ExpiredCertificateIsRefused) {
  LeafSpec spec;
  spec.not_before_offset = -absl::Hours(2);
  spec.validity = absl::Hours(1);
  ExpectRefused(pki_.Issue(spec).pem, "expired");
}

TEST_F(AuthenticatorTest, NotYetValidCertificateIsRefused) {
  LeafSpec spec;
  spec.not_before_offset = absl::Hours(1);
  ExpectRefused(pki_.Issue(spec).pem, "not yet valid");
}

TEST_F(AuthenticatorTest, CachedCertificateExpiresAllTheSame) {
  // Validity is checked on every call, not only when the chain was verified.
  const Leaf leaf = pki_.Issue({});
  ASSERT_TRUE(authenticator_.Authenticate(leaf.pem, now_).ok());
  ASSERT_TRUE(authenticator_.Authenticate(leaf.pem, leaf.not_after - absl::Seconds(1)).ok());
  ExpectRefused(leaf.pem, absl::StrCat("client certificate ", leaf.serial_hex, " expired at"),
                leaf.not_after + absl::Seconds(1));
}

TEST_F(AuthenticatorTest, RevokedSerialIsRefused) {
  const Leaf leaf = pki_.Issue({});
  RevokedSet revoked;
  revoked.serials.insert(leaf.serial_hex);
  authenticator_.AddRevoked(revoked);
  ExpectRefused(leaf.pem, absl::StrCat("client certificate ", leaf.serial_hex, " is revoked"));
  // Another certificate of the same identity is fine.
  ASSERT_TRUE(authenticator_.Authenticate(pki_.Issue({}).pem, now_).ok());
}

TEST_F(AuthenticatorTest, RevokedIdentityIsRefused) {
  const Leaf leaf = pki_.Issue({});
  RevokedSet revoked;
  revoked.identities.insert("station-12");
  authenticator_.AddRevoked(revoked);
  ExpectRefused(leaf.pem, "identity station-12 is revoked");
  // Every certificate of it.
  ExpectRefused(pki_.Issue({}).pem, "identity station-12 is revoked");
}

TEST_F(AuthenticatorTest, MarkRevokedAppliesToCachedCertificatesAtOnce) {
  const Leaf a = pki_.Issue({});
  LeafSpec other;
  other.common_name = "station-13";
  other.uris = {"fleetca://role/provisioner/station-13"};
  const Leaf b = pki_.Issue(other);
  // Both verified and cached.
  ASSERT_TRUE(authenticator_.Authenticate(a.pem, now_).ok());
  ASSERT_TRUE(authenticator_.Authenticate(b.pem, now_).ok());

  authenticator_.MarkRevoked("", {a.serial_hex});
  ExpectRefused(a.pem, "is revoked");
  ASSERT_TRUE(authenticator_.Authenticate(b.pem, now_).ok());

  authenticator_.MarkRevoked("station-13", {});
  ExpectRefused(b.pem, "identity station-13 is revoked");
}

TEST_F(AuthenticatorTest, AddRevokedAppliesToCachedCertificatesAtOnce) {
  const Leaf leaf = pki_.Issue({});
  ASSERT_TRUE(authenticator_.Authenticate(leaf.pem, now_).ok());
  RevokedSet revoked;
  revoked.serials.insert(leaf.serial_hex);
  authenticator_.AddRevoked(revoked);
  ExpectRefused(leaf.pem, "is revoked");
}

TEST_F(AuthenticatorTest, AddRevokedNeverUndoesARevocation) {
  // A database snapshot read before this replica's revocation committed must not undo it.
  const Leaf leaf = pki_.Issue({});
  authenticator_.MarkRevoked("station-12", {leaf.serial_hex});
  ExpectRefused(leaf.pem, "is revoked");
  authenticator_.AddRevoked({});
  ExpectRefused(leaf.pem, "is revoked");
}

TEST_F(AuthenticatorTest, RevokedDeviceSerialIsRefused) {
  LeafSpec spec;
  spec.issuer = "devices";
  spec.common_name = "AB12CD34";
  spec.uris = {};
  const Leaf leaf = pki_.Issue(spec);
  ASSERT_TRUE(authenticator_.Authenticate(leaf.pem, now_).ok());
  authenticator_.MarkRevoked("", {leaf.serial_hex});
  ExpectRefused(leaf.pem, "is revoked");
}

TEST_F(AuthenticatorTest, IdentityRevocationDoesNotTouchADeviceOfTheSameName) {
  // Identity names and devices' comm-IDs are separate namespaces.
  LeafSpec spec;
  spec.issuer = "devices";
  spec.common_name = "station-12";
  spec.uris = {};
  const Leaf device = pki_.Issue(spec);
  authenticator_.MarkRevoked("station-12", {});
  EXPECT_TRUE(authenticator_.Authenticate(device.pem, now_).ok());
  ExpectRefused(pki_.Issue({}).pem, "identity station-12 is revoked");
}

TEST_F(AuthenticatorTest, GarbageIsRefused) {
  for (const std::string& pem :
       {std::string(), std::string("hello"),
        std::string("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
        std::string(1000, '\xff')}) {
    ExpectRefused(pem, "client certificate does not parse");
  }
}

TEST_F(AuthenticatorTest, NoAnchorsIsUnavailable) {
  Authenticator fresh;
  absl::StatusOr<Principal> p = fresh.Authenticate(pki_.Issue({}).pem, now_);
  ASSERT_FALSE(p.ok());
  // Not the caller's fault: UNAVAILABLE, so that clients retry.
  EXPECT_EQ(p.status().code(), absl::StatusCode::kUnavailable);
  fresh.SetAnchors({});
  EXPECT_EQ(fresh.Authenticate(pki_.Issue({}).pem, now_).status().code(),
            absl::StatusCode::kUnavailable);
}

TEST_F(AuthenticatorTest, SetAnchorsForgetsCachedVerifications) {
  const Leaf leaf = pki_.Issue({});
  ASSERT_TRUE(authenticator_.Authenticate(leaf.pem, now_).ok());
  // The operators CA is no longer trusted (say, rotated out): its certificates go with it.
  authenticator_.SetAnchors(AnchorsWithoutOperators());
  ExpectRefused(leaf.pem, "client certificate not accepted");
}

TEST_F(AuthenticatorTest, SameAnchorsAgainKeepTrustingAndNewOnesApply) {
  // The server sets the anchors every second; setting the same ones changes nothing, and
  // setting different ones still applies (a rotated-out CA is no longer trusted).
  const Leaf leaf = pki_.Issue({});
  ASSERT_TRUE(authenticator_.Authenticate(leaf.pem, now_).ok());
  authenticator_.SetAnchors(pki_.Anchors());
  ASSERT_TRUE(authenticator_.Authenticate(leaf.pem, now_).ok());
  authenticator_.SetAnchors(AnchorsWithoutOperators());
  ExpectRefused(leaf.pem, "client certificate not accepted");
}

TEST_F(AuthenticatorTest, RefusalIsNotCached) {
  // A certificate refused because its CA was not yet known is accepted once it is.
  const Leaf leaf = pki_.Issue({});
  authenticator_.SetAnchors(AnchorsWithoutOperators());
  ExpectRefused(leaf.pem, "client certificate not accepted");
  authenticator_.SetAnchors(pki_.Anchors());
  EXPECT_TRUE(authenticator_.Authenticate(leaf.pem, now_).ok());
}

}  // namespace
}  // namespace fleetca::auth
