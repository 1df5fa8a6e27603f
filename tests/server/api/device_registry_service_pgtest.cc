// DeviceRegistryService over gRPC (in-process server, real channel) on a real PostgreSQL.
#include "server/api/device_registry_service.h"

#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "storage/pg_device_store.h"
#include "tests/testing/test_database.h"

namespace fleetca::api {
namespace {

using ::testing::HasSubstr;

class DeviceRegistryServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    stub_ = v1::DeviceRegistryService::NewStub(grpc::CreateChannel(
        absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials()));
  }
  void TearDown() override { server_->Shutdown(); }

  grpc::Status Register(const std::string& id, v1::Device* out = nullptr) {
    grpc::ClientContext ctx;
    v1::RegisterDeviceRequest req;
    req.mutable_device()->set_comm_id(id);
    v1::RegisterDeviceResponse resp;
    grpc::Status st = stub_->RegisterDevice(&ctx, req, &resp);
    if (out != nullptr) *out = resp.device();
    return st;
  }

  testing::TestDatabase db_;
  storage::PgDeviceStore store_{db_.pool()};
  registry::Registry registry_{store_};
  DeviceRegistryService service_{registry_};
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<v1::DeviceRegistryService::Stub> stub_;
};

TEST_F(DeviceRegistryServiceTest, RegisterGetAndErrorsCarryTheFieldName) {
  v1::Device d;
  ASSERT_TRUE(Register("356938035643809", &d).ok());
  EXPECT_EQ(d.status(), v1::DEVICE_STATUS_ACTIVE);
  EXPECT_EQ(d.etag(), "1");
  EXPECT_GT(d.create_time().seconds(), 0);

  grpc::Status dup = Register("356938035643809");
  EXPECT_EQ(dup.error_code(), grpc::StatusCode::ALREADY_EXISTS);
  const std::vector<std::string> bad_ids = {
      "", "a/b", "dev+1", "dev#1", "with space", std::string(65, 'x'), std::string("nul\0", 4),
      "caf\xc3\xa9"};
  for (const std::string& bad : bad_ids) {
    grpc::Status st = Register(bad);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << bad;
    EXPECT_THAT(st.error_message(), HasSubstr("device.comm_id")) << bad;
  }
  EXPECT_EQ(db_.Exec("SELECT count(*) FROM devices"), "1");

  grpc::ClientContext ctx;
  v1::GetDeviceRequest get;
  get.set_comm_id("unknown-1");
  v1::GetDeviceResponse got;
  grpc::Status nf = stub_->GetDevice(&ctx, get, &got);
  EXPECT_EQ(nf.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(nf.error_message(), HasSubstr("unknown-1"));
}

TEST_F(DeviceRegistryServiceTest, RegisterWithoutDeviceIsInvalid) {
  grpc::ClientContext ctx;
  v1::RegisterDeviceRequest req;
  v1::RegisterDeviceResponse resp;
  grpc::Status st = stub_->RegisterDevice(&ctx, req, &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(st.error_message(), HasSubstr("device"));
}

TEST_F(DeviceRegistryServiceTest, BatchWithMixedItems) {
  ASSERT_TRUE(Register("exists").ok());
  v1::BatchRegisterDevicesRequest req;
  for (const char* id : {"g-1", "bad/1", "g-2", "exists", "g-1"}) {
    req.add_devices()->set_comm_id(id);
  }
  req.mutable_devices(2)->set_status(static_cast<v1::DeviceStatus>(42));
  grpc::ClientContext ctx;
  v1::BatchRegisterDevicesResponse resp;
  ASSERT_TRUE(stub_->BatchRegisterDevices(&ctx, req, &resp).ok());
  ASSERT_EQ(resp.results_size(), 5);
  EXPECT_EQ(resp.results(0).code(), 0);
  EXPECT_EQ(resp.results(1).code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(resp.results(1).message(), HasSubstr("devices[1].comm_id"));
  EXPECT_EQ(resp.results(2).code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(resp.results(2).message(), HasSubstr("devices[2].status"));
  EXPECT_EQ(resp.results(3).code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_EQ(resp.results(4).code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_EQ(resp.results(4).index(), 4);
  EXPECT_EQ(resp.registered_count(), 1);
  EXPECT_EQ(resp.failed_count(), 4);
  EXPECT_EQ(db_.Exec("SELECT string_agg(comm_id, ',' ORDER BY comm_id) FROM devices"),
            "exists,g-1");
}

TEST_F(DeviceRegistryServiceTest, EmptyBatchIsInvalid) {
  grpc::ClientContext ctx;
  v1::BatchRegisterDevicesRequest req;
  v1::BatchRegisterDevicesResponse resp;
  grpc::Status st = stub_->BatchRegisterDevices(&ctx, req, &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(st.error_message(), HasSubstr("devices"));
}

TEST_F(DeviceRegistryServiceTest, ListsPageByPageOverMoreThanOnePage) {
  v1::BatchRegisterDevicesRequest batch;
  for (int i = 0; i < 250; ++i) {
    v1::Device* d = batch.add_devices();
    d->set_comm_id(absl::StrCat("dev-", 1000 + i));
    if (i % 2 == 0) d->add_groups("even");
  }
  {
    grpc::ClientContext ctx;
    v1::BatchRegisterDevicesResponse resp;
    ASSERT_TRUE(stub_->BatchRegisterDevices(&ctx, batch, &resp).ok());
    ASSERT_EQ(resp.registered_count(), 250);
  }
  auto collect = [&](v1::ListDevicesRequest req, int* pages) {
    std::vector<std::string> ids;
    *pages = 0;
    do {
      grpc::ClientContext ctx;
      v1::ListDevicesResponse resp;
      grpc::Status st = stub_->ListDevices(&ctx, req, &resp);
      EXPECT_TRUE(st.ok()) << st.error_message();
      if (!st.ok()) break;
      for (const auto& d : resp.devices()) ids.push_back(d.comm_id());
      req.set_page_token(resp.next_page_token());
      ++*pages;
    } while (!req.page_token().empty());
    return ids;
  };
  v1::ListDevicesRequest req;
  req.set_page_size(100);
  int pages = 0;
  auto ids = collect(req, &pages);
  EXPECT_EQ(ids.size(), 250u);
  EXPECT_EQ(pages, 3);
  EXPECT_TRUE(std::is_sorted(ids.begin(), ids.end()));
  req.set_group("even");
  ids = collect(req, &pages);
  EXPECT_EQ(ids.size(), 125u);
  EXPECT_EQ(pages, 2);

  grpc::ClientContext ctx;
  v1::ListDevicesRequest neg;
  neg.set_page_size(-5);
  v1::ListDevicesResponse resp;
  grpc::Status st = stub_->ListDevices(&ctx, neg, &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(st.error_message(), HasSubstr("page_size"));
}

TEST_F(DeviceRegistryServiceTest, UpdateWithEtagsAndStatusChanges) {
  v1::Device d;
  ASSERT_TRUE(Register("d1", &d).ok());
  v1::UpdateDeviceRequest up;
  up.mutable_device()->set_comm_id("d1");
  (*up.mutable_device()->mutable_attributes())["site"] = "lyon";
  up.mutable_update_mask()->add_paths("attributes");
  up.set_etag(d.etag());
  v1::UpdateDeviceResponse resp;
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(stub_->UpdateDevice(&ctx, up, &resp).ok());
    EXPECT_EQ(resp.device().attributes().at("site"), "lyon");
    EXPECT_NE(resp.device().etag(), d.etag());
  }
  {
    grpc::ClientContext ctx;  // same (now stale) etag
    grpc::Status st = stub_->UpdateDevice(&ctx, up, &resp);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::ABORTED);
  }
  v1::SetDeviceStatusRequest ss;
  ss.set_comm_id("d1");
  v1::SetDeviceStatusResponse ssr;
  {
    grpc::ClientContext ctx;
    grpc::Status st = stub_->SetDeviceStatus(&ctx, ss, &ssr);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(st.error_message(), HasSubstr("status"));
  }
  for (auto s : {v1::DEVICE_STATUS_SUSPENDED, v1::DEVICE_STATUS_ACTIVE,
                 v1::DEVICE_STATUS_DECOMMISSIONED}) {
    grpc::ClientContext ctx;
    ss.set_status(s);
    ASSERT_TRUE(stub_->SetDeviceStatus(&ctx, ss, &ssr).ok());
    EXPECT_EQ(ssr.device().status(), s);
  }
  {
    grpc::ClientContext ctx;
    ss.set_status(v1::DEVICE_STATUS_ACTIVE);
    EXPECT_EQ(stub_->SetDeviceStatus(&ctx, ss, &ssr).error_code(),
              grpc::StatusCode::FAILED_PRECONDITION);
  }
  {
    grpc::ClientContext ctx;
    v1::DeleteDeviceRequest del;
    del.set_comm_id("d1");
    v1::DeleteDeviceResponse dr;
    ASSERT_TRUE(stub_->DeleteDevice(&ctx, del, &dr).ok());
  }
  EXPECT_EQ(db_.Exec("SELECT count(*) FROM devices"), "0");
}

TEST_F(DeviceRegistryServiceTest, AuditRecordsPeerAndRequestId) {
  grpc::ClientContext ctx;
  ctx.AddMetadata("x-request-id", "station-12-0001");
  v1::RegisterDeviceRequest req;
  req.mutable_device()->set_comm_id("d1");
  v1::RegisterDeviceResponse resp;
  ASSERT_TRUE(stub_->RegisterDevice(&ctx, req, &resp).ok());
  EXPECT_EQ(db_.Exec("SELECT request_id FROM audit_log"), "station-12-0001");
  // A plaintext test server: the development actor, with the caller's address beside it.
  EXPECT_EQ(db_.Exec("SELECT actor FROM audit_log"), "anonymous");
  EXPECT_THAT(db_.Exec("SELECT details->'actor'->>'peer' FROM audit_log"),
              HasSubstr("ipv4:127.0.0.1:"));
}

}  // namespace
}  // namespace fleetca::api
