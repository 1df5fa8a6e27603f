// AuditService over gRPC (in-process server, real channel) on a real PostgreSQL, and the
// `verify-audit` command's RunVerifyAudit on the same database.
#include "server/api/audit_service.h"

#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <pqxx/pqxx>

#include "absl/strings/str_cat.h"
#include "server/app/verify_audit.h"
#include "storage/journal.h"
#include "storage/pg_audit_store.h"
#include "tests/testing/test_database.h"

namespace fleetca::api {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

class AuditServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    stub_ = v1::AuditService::NewStub(grpc::CreateChannel(absl::StrCat("127.0.0.1:", port),
                                                          grpc::InsecureChannelCredentials()));
  }
  void TearDown() override { server_->Shutdown(); }

  void Write(const std::string& actor, const std::string& action, const std::string& target,
             const std::string& details = "{}", const std::string& request_id = "") {
    // Rows written as they are stored, details (resource, actor) included: the service
    // under test maps them; storage/journal.cc's own tests cover how they are built.
    absl::Status st = db_.pool().Transact(
        "write audit", storage::TxMode::kReadWrite,
        [&](pqxx::transaction_base& tx) -> absl::Status {
          tx.exec_params("SELECT fleetca_append_audit($1, $2, $3, $4, $5::jsonb)", actor, action,
                         target, request_id, details);
          return absl::OkStatus();
        });
    ASSERT_TRUE(st.ok()) << st;
  }
  void Chain() { db_.ChainAudit(1000); }

  // A small log: three device calls, a refused revocation, the init subcommand.
  void WriteLog() {
    Write("station-1", "RegisterDevice", "d1",
          "{\"resource\": \"device\", \"actor\": {\"role\": \"provisioner\", \"serial\": \"0a\", "
          "\"issuer\": \"operators-1\", \"peer\": \"ipv4:192.0.2.7:51234\"}}",
          "req-1");
    Write("station-1", "RegisterDevice", "d2", "{\"resource\": \"device\"}", "req-2");
    Write("admin-1", "SetDeviceStatus", "d1",
          "{\"resource\": \"device\", \"actor\": {\"role\": \"admin\"}, \"from\": \"active\", "
          "\"to\": \"suspended\"}",
          "req-3");
    Write("viewer-1", "RevokeCertificate", "devices-1/0a",
          "{\"resource\": \"revocation\", \"code\": 7, \"message\": \"role viewer may not call "
          "RevokeCertificate\", \"actor\": {\"role\": \"mqtt-client\"}}",
          "req-4");
    Write("local-admin", "fleetca-server init", "root-1", "{\"resource\": \"issuer\"}");
    Chain();
  }

  grpc::Status List(const v1::ListAuditEventsRequest& req, v1::ListAuditEventsResponse* resp) {
    grpc::ClientContext ctx;
    return stub_->ListAuditEvents(&ctx, req, resp);
  }
  std::vector<int64_t> Sequences(const v1::ListAuditEventsRequest& req) {
    v1::ListAuditEventsResponse resp;
    grpc::Status st = List(req, &resp);
    EXPECT_TRUE(st.ok()) << st.error_message();
    std::vector<int64_t> out;
    for (const auto& e : resp.events()) out.push_back(e.sequence());
    return out;
  }
  grpc::Status Verify(const v1::VerifyAuditChainRequest& req,
                      v1::VerifyAuditChainResponse* resp) {
    grpc::ClientContext ctx;
    return stub_->VerifyAuditChain(&ctx, req, resp);
  }

  testing::TestDatabase db_;
  storage::PgAuditStore store_{db_.pool()};
  AuditService service_{store_};
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<v1::AuditService::Stub> stub_;
};

TEST(AuditMethodsTest, ActionsMapToFullMethods) {
  EXPECT_EQ(FullMethodFor("RegisterDevice"), "/fleetca.v1.DeviceRegistryService/RegisterDevice");
  EXPECT_EQ(FullMethodFor("RevokeCertificate"),
            "/fleetca.v1.RevocationService/RevokeCertificate");
  EXPECT_EQ(FullMethodFor("CreateAclProfile"), "/fleetca.v1.AclService/CreateAclProfile");
  EXPECT_EQ(FullMethodFor("IssueIdentity"), "/fleetca.v1.IdentityService/IssueIdentity");
  EXPECT_EQ(FullMethodFor("fleetca-server init"), "fleetca-server init");
  EXPECT_EQ(FullMethodFor("Initialize"), "Initialize");
  EXPECT_THAT(AuditActionsFor("RegisterDevice"),
              ElementsAre("RegisterDevice", "/fleetca.v1.DeviceRegistryService/RegisterDevice"));
  EXPECT_THAT(AuditActionsFor("/fleetca.v1.DeviceRegistryService/RegisterDevice"),
              ElementsAre("RegisterDevice", "/fleetca.v1.DeviceRegistryService/RegisterDevice"));
  // The right name under the wrong service is not that method.
  EXPECT_THAT(AuditActionsFor("/fleetca.v1.AclService/RegisterDevice"),
              ElementsAre("/fleetca.v1.AclService/RegisterDevice"));
  EXPECT_THAT(AuditActionsFor("fleetca-server init"), ElementsAre("fleetca-server init"));
  EXPECT_TRUE(AuditActionsFor("").empty());
}

TEST_F(AuditServiceTest, ListMapsRowsToEvents) {
  WriteLog();
  v1::ListAuditEventsResponse resp;
  ASSERT_TRUE(List({}, &resp).ok());
  ASSERT_EQ(resp.events_size(), 5);
  EXPECT_EQ(resp.next_page_token(), "");

  const v1::AuditEvent& first = resp.events(0);
  EXPECT_EQ(first.sequence(), 1);
  EXPECT_GT(first.time().seconds(), 0);
  EXPECT_EQ(first.actor().name(), "station-1");
  EXPECT_EQ(first.actor().role(), v1::IDENTITY_ROLE_PROVISIONER);
  EXPECT_EQ(first.actor().certificate_serial(), "0a");
  EXPECT_EQ(first.actor().certificate_issuer_id(), "operators-1");
  EXPECT_EQ(first.actor().peer(), "ipv4:192.0.2.7:51234");
  EXPECT_EQ(first.method(), "/fleetca.v1.DeviceRegistryService/RegisterDevice");
  EXPECT_EQ(first.resource_type(), v1::AUDIT_RESOURCE_TYPE_DEVICE);
  EXPECT_EQ(first.resource_id(), "d1");
  EXPECT_EQ(first.request_id(), "req-1");
  EXPECT_EQ(first.code(), 0);
  EXPECT_TRUE(first.details().empty());
  EXPECT_EQ(first.previous_hash(), std::string(64, '0'));
  EXPECT_EQ(first.hash().size(), 64u);

  const v1::AuditEvent& status = resp.events(2);
  EXPECT_EQ(status.actor().role(), v1::IDENTITY_ROLE_ADMIN);
  EXPECT_EQ(status.method(), "/fleetca.v1.DeviceRegistryService/SetDeviceStatus");
  EXPECT_EQ(status.details().at("from"), "active");
  EXPECT_EQ(status.details().at("to"), "suspended");
  EXPECT_EQ(status.details().size(), 2u);
  EXPECT_EQ(status.previous_hash(), resp.events(1).hash());

  const v1::AuditEvent& refused = resp.events(3);
  EXPECT_EQ(refused.actor().role(), v1::IDENTITY_ROLE_MQTT_CLIENT);
  EXPECT_EQ(refused.method(), "/fleetca.v1.RevocationService/RevokeCertificate");
  EXPECT_EQ(refused.resource_type(), v1::AUDIT_RESOURCE_TYPE_CERTIFICATE);
  EXPECT_EQ(refused.code(), 7);
  EXPECT_EQ(refused.message(), "role viewer may not call RevokeCertificate");

  const v1::AuditEvent& init = resp.events(4);
  EXPECT_EQ(init.method(), "fleetca-server init");
  EXPECT_EQ(init.actor().role(), v1::IDENTITY_ROLE_UNSPECIFIED);
  EXPECT_EQ(init.resource_type(), v1::AUDIT_RESOURCE_TYPE_ISSUER);
}

TEST_F(AuditServiceTest, ListFiltersAndPages) {
  WriteLog();
  v1::ListAuditEventsRequest req;
  req.set_method("/fleetca.v1.DeviceRegistryService/RegisterDevice");
  EXPECT_THAT(Sequences(req), ElementsAre(1, 2));
  req.set_method("RegisterDevice");
  EXPECT_THAT(Sequences(req), ElementsAre(1, 2));
  req.set_method("fleetca-server init");
  EXPECT_THAT(Sequences(req), ElementsAre(5));
  req.set_method("/fleetca.v1.AclService/RegisterDevice");
  EXPECT_TRUE(Sequences(req).empty());

  req = {};
  req.set_actor_name("station-1");
  EXPECT_THAT(Sequences(req), ElementsAre(1, 2));
  req = {};
  req.set_resource_type(v1::AUDIT_RESOURCE_TYPE_DEVICE);
  EXPECT_THAT(Sequences(req), ElementsAre(1, 2, 3));
  req.set_resource_id("d1");
  EXPECT_THAT(Sequences(req), ElementsAre(1, 3));
  req = {};
  req.set_resource_type(v1::AUDIT_RESOURCE_TYPE_CERTIFICATE);
  EXPECT_THAT(Sequences(req), ElementsAre(4));
  req = {};
  req.set_request_id("req-2");
  EXPECT_THAT(Sequences(req), ElementsAre(2));
  req = {};
  req.set_failures_only(true);
  EXPECT_THAT(Sequences(req), ElementsAre(4));
  req = {};
  req.mutable_start_time()->set_seconds(absl::ToUnixSeconds(absl::Now() + absl::Hours(1)));
  EXPECT_TRUE(Sequences(req).empty());
  req = {};
  req.mutable_end_time()->set_seconds(absl::ToUnixSeconds(absl::Now() + absl::Hours(1)));
  req.mutable_start_time()->set_seconds(absl::ToUnixSeconds(absl::Now() - absl::Hours(1)));
  EXPECT_THAT(Sequences(req), ElementsAre(1, 2, 3, 4, 5));

  // Page by page, both orders, until the token is empty.
  for (bool newest_first : {false, true}) {
    std::vector<int64_t> seen;
    std::string token;
    int pages = 0;
    do {
      v1::ListAuditEventsRequest page;
      page.set_page_size(2);
      page.set_newest_first(newest_first);
      page.set_page_token(token);
      v1::ListAuditEventsResponse resp;
      ASSERT_TRUE(List(page, &resp).ok());
      for (const auto& e : resp.events()) seen.push_back(e.sequence());
      token = resp.next_page_token();
      ASSERT_LE(++pages, 3);
    } while (!token.empty());
    if (newest_first) {
      EXPECT_THAT(seen, ElementsAre(5, 4, 3, 2, 1));
    } else {
      EXPECT_THAT(seen, ElementsAre(1, 2, 3, 4, 5));
    }
  }
}

TEST_F(AuditServiceTest, InvalidListRequestsNameTheField) {
  WriteLog();
  v1::ListAuditEventsRequest first;
  first.set_page_size(2);
  v1::ListAuditEventsResponse page1;
  ASSERT_TRUE(List(first, &page1).ok());
  ASSERT_FALSE(page1.next_page_token().empty());

  struct Case {
    v1::ListAuditEventsRequest request;
    std::string field;
  };
  std::vector<Case> cases(7);
  cases[0].request.set_page_size(-1);
  cases[0].field = "page_size";
  cases[1].request.set_page_token("not-a-token");
  cases[1].field = "page_token";
  // A token sent with other filters, or with the other order.
  cases[2].request.set_page_token(page1.next_page_token());
  cases[2].request.set_actor_name("station-1");
  cases[2].field = "page_token";
  cases[3].request.set_page_token(page1.next_page_token());
  cases[3].request.set_newest_first(true);
  cases[3].field = "page_token";
  cases[4].request.set_resource_type(static_cast<v1::AuditResourceType>(99));
  cases[4].field = "resource_type";
  cases[5].request.mutable_start_time()->set_nanos(-1);
  cases[5].field = "start_time";
  cases[6].request.set_actor_name(std::string("a\nb"));
  cases[6].field = "actor_name";
  for (const Case& c : cases) {
    v1::ListAuditEventsResponse resp;
    grpc::Status st = List(c.request, &resp);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << c.field;
    EXPECT_THAT(st.error_message(), ::testing::StartsWith(c.field + ":"));
  }
  // The token with its own filters goes on.
  first.set_page_token(page1.next_page_token());
  EXPECT_THAT(Sequences(first), ElementsAre(3, 4));
}

TEST_F(AuditServiceTest, VerifyReportsIntactThenTheEditedRow) {
  WriteLog();
  v1::VerifyAuditChainResponse resp;
  ASSERT_TRUE(Verify({}, &resp).ok());
  EXPECT_TRUE(resp.intact());
  EXPECT_EQ(resp.events_checked(), 5);
  EXPECT_EQ(resp.last_sequence(), 5);
  EXPECT_EQ(resp.first_break_sequence(), 0);
  EXPECT_EQ(resp.break_reason(), "");
  v1::ListAuditEventsResponse list;
  ASSERT_TRUE(List({}, &list).ok());
  EXPECT_EQ(resp.last_hash(), list.events(4).hash());

  v1::VerifyAuditChainRequest anchored;
  anchored.set_anchor_sequence(5);
  anchored.set_anchor_hash(resp.last_hash());
  ASSERT_TRUE(Verify(anchored, &resp).ok());
  EXPECT_TRUE(resp.intact());

  db_.Exec("UPDATE audit_log SET details = '{\"resource\": \"device\"}' WHERE chain_seq = 3");
  ASSERT_TRUE(Verify({}, &resp).ok());
  EXPECT_FALSE(resp.intact());
  EXPECT_EQ(resp.first_break_sequence(), 3);
  EXPECT_EQ(resp.break_reason(), "hash mismatch");
  EXPECT_EQ(resp.events_checked(), 2);
  EXPECT_EQ(resp.last_sequence(), 2);

  db_.Exec("DELETE FROM audit_log WHERE chain_seq >= 3");
  ASSERT_TRUE(Verify(anchored, &resp).ok());
  EXPECT_FALSE(resp.intact());
  EXPECT_EQ(resp.first_break_sequence(), 3);
  EXPECT_THAT(resp.break_reason(), HasSubstr("sequence gap after 2"));
}

TEST_F(AuditServiceTest, InvalidVerifyRequestsNameTheField) {
  WriteLog();
  v1::VerifyAuditChainRequest req;
  v1::VerifyAuditChainResponse resp;
  req.set_from_sequence(4);
  req.set_to_sequence(2);
  grpc::Status st = Verify(req, &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(st.error_message(), ::testing::StartsWith("to_sequence:"));
  req = {};
  req.set_anchor_sequence(2);
  req.set_anchor_hash("xyz");
  st = Verify(req, &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(st.error_message(), ::testing::StartsWith("anchor_hash:"));
  req.set_from_sequence(3);
  req.set_anchor_hash(std::string(64, 'a'));
  st = Verify(req, &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(st.error_message(), ::testing::StartsWith("anchor_sequence:"));
}

// RunVerifyAudit (`fleetca-server verify-audit`): output and exit codes.
TEST_F(AuditServiceTest, VerifyAuditCommandPrintsTheResultAndExitCode) {
  WriteLog();
  ::testing::internal::CaptureStdout();
  EXPECT_EQ(app::RunVerifyAudit(db_.pool(), 0, 0, ""), 0);
  std::string out = ::testing::internal::GetCapturedStdout();
  EXPECT_THAT(out, HasSubstr("audit chain intact"));
  EXPECT_THAT(out, HasSubstr("events checked: 5"));
  const std::string hash5 =
      db_.Exec("SELECT encode(hash, 'hex') FROM audit_log WHERE chain_seq = 5");
  const std::string anchor = absl::StrCat("5:", hash5);
  EXPECT_THAT(out, HasSubstr(anchor));

  ::testing::internal::CaptureStdout();
  EXPECT_EQ(app::RunVerifyAudit(db_.pool(), 2, 5, anchor), 0);
  out = ::testing::internal::GetCapturedStdout();
  EXPECT_THAT(out, HasSubstr("events checked: 4"));

  db_.Exec("DELETE FROM audit_log WHERE chain_seq = 5");
  ::testing::internal::CaptureStdout();
  EXPECT_EQ(app::RunVerifyAudit(db_.pool(), 0, 0, anchor), 3);
  out = ::testing::internal::GetCapturedStdout();
  EXPECT_THAT(out, HasSubstr("BROKEN at sequence 5: sequence gap after 4"));
  EXPECT_THAT(out, HasSubstr("events checked: 4"));

  ::testing::internal::CaptureStderr();
  EXPECT_EQ(app::RunVerifyAudit(db_.pool(), 0, 0, "5"), 1);
  EXPECT_EQ(app::RunVerifyAudit(db_.pool(), 0, 0, "5:nothex"), 1);
  EXPECT_EQ(app::RunVerifyAudit(db_.pool(), 3, 1, ""), 1);
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_THAT(err, HasSubstr("anchor"));
  EXPECT_THAT(err, HasSubstr("to_sequence"));
}

}  // namespace
}  // namespace fleetca::api
