// Registry logic over an in-memory DeviceStore: the database-backed behaviour is covered by
// tests/storage/pg_device_store_pgtest.cc and tests/server/api/*_pgtest.cc.
#include "server/registry/registry.h"
#include "server/registry/validation.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace fleetca::registry {
namespace {

using ::testing::HasSubstr;
using storage::Device;

// FakeDeviceStore keeps devices in a map; enough for Registry's own logic.
class FakeDeviceStore : public storage::DeviceStore {
 public:
  absl::StatusOr<Device> Create(const Device& d, const RequestContext&) override {
    if (devices_.count(d.comm_id)) return absl::AlreadyExistsError("exists");
    Device s = d;
    s.version = 1;
    return devices_[d.comm_id] = s;
  }
  absl::StatusOr<std::vector<absl::Status>> CreateBatch(const std::vector<Device>& ds,
                                                        const RequestContext& ctx) override {
    ++batch_calls;
    std::vector<absl::Status> out;
    for (const auto& d : ds) out.push_back(Create(d, ctx).status());
    return out;
  }
  absl::StatusOr<Device> Get(const std::string& id) override {
    auto it = devices_.find(id);
    if (it == devices_.end()) return absl::NotFoundError("not found");
    return it->second;
  }
  absl::StatusOr<std::vector<Device>> List(const storage::DeviceFilter& f, const std::string& after,
                                           int limit) override {
    std::vector<Device> out;
    for (auto it = devices_.upper_bound(after); it != devices_.end(); ++it) {
      if (!absl::StartsWith(it->first, f.comm_id_prefix)) continue;
      if (static_cast<int>(out.size()) == limit) break;
      out.push_back(it->second);
    }
    return out;
  }
  absl::StatusOr<Device> Update(const std::string& id, const storage::DeviceUpdate& u,
                                std::optional<int64_t> v, const RequestContext&) override {
    last_update = u;
    last_version = v;
    return Get(id);
  }
  absl::StatusOr<Device> SetStatus(const std::string& id, storage::DeviceStatus,
                                   const std::string&, std::optional<int64_t>,
                                   const RequestContext&) override {
    return Get(id);
  }
  absl::Status Delete(const std::string& id, std::optional<int64_t>,
                      const RequestContext&) override {
    return devices_.erase(id) ? absl::OkStatus() : absl::NotFoundError("not found");
  }

  int batch_calls = 0;
  storage::DeviceUpdate last_update;
  std::optional<int64_t> last_version;

 private:
  std::map<std::string, Device> devices_;
};

Device Dev(const std::string& id) {
  Device d;
  d.comm_id = id;
  return d;
}

class RegistryTest : public ::testing::Test {
 protected:
  FakeDeviceStore store_;
  Registry registry_{store_};
  RequestContext ctx_ = RequestContext::Local("test");
};

TEST_F(RegistryTest, BatchReportsEachItemAndKeepsTheGoodOnes) {
  ASSERT_TRUE(registry_.Register(Dev("old"), ctx_).ok());
  auto results = registry_.RegisterBatch({Dev("a"), Dev("bad/id"), Dev("a"), Dev("old"), Dev("b")},
                                         ctx_);
  ASSERT_TRUE(results.ok()) << results.status();
  ASSERT_EQ(results->size(), 5u);
  EXPECT_TRUE((*results)[0].status.ok());
  EXPECT_EQ((*results)[1].status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string((*results)[1].status.message()), HasSubstr("devices[1].comm_id"));
  EXPECT_EQ((*results)[2].status.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(std::string((*results)[2].status.message()), HasSubstr("earlier in this batch"));
  EXPECT_EQ((*results)[3].status.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_TRUE((*results)[4].status.ok());
  EXPECT_EQ(store_.batch_calls, 1);
  EXPECT_TRUE(store_.Get("b").ok());
}

TEST_F(RegistryTest, BatchSizeLimits) {
  EXPECT_EQ(registry_.RegisterBatch({}, ctx_).status().code(), absl::StatusCode::kInvalidArgument);
  std::vector<Device> big(kMaxBatchSize + 1, Dev("x"));
  auto st = registry_.RegisterBatch(big, ctx_).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(st.message()), HasSubstr("at most 10000"));
}

TEST_F(RegistryTest, PagesFollowTokensToTheEnd) {
  for (int i = 0; i < 25; ++i) ASSERT_TRUE(registry_.Register(Dev(absl::StrCat("d", 100 + i)), ctx_).ok());
  ListDevicesQuery q;
  q.page_size = 10;
  std::vector<std::string> seen;
  int pages = 0;
  do {
    auto page = registry_.List(q);
    ASSERT_TRUE(page.ok()) << page.status();
    for (const auto& d : page->devices) seen.push_back(d.comm_id);
    q.page_token = page->next_page_token;
    ++pages;
  } while (!q.page_token.empty());
  EXPECT_EQ(pages, 3);
  ASSERT_EQ(seen.size(), 25u);
  EXPECT_TRUE(std::is_sorted(seen.begin(), seen.end()));
}

TEST_F(RegistryTest, ExactMultipleOfPageSizeHasNoEmptyLastPage) {
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(registry_.Register(Dev(absl::StrCat("d", 100 + i)), ctx_).ok());
  ListDevicesQuery q;
  q.page_size = 10;
  auto first = registry_.List(q);
  ASSERT_FALSE(first->next_page_token.empty());
  q.page_token = first->next_page_token;
  auto second = registry_.List(q);
  EXPECT_EQ(second->devices.size(), 10u);
  EXPECT_TRUE(second->next_page_token.empty());
}

TEST_F(RegistryTest, PageTokenRejectedWithOtherFiltersOrGarbage) {
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(registry_.Register(Dev(absl::StrCat("d", i)), ctx_).ok());
  ListDevicesQuery q;
  q.page_size = 1;
  auto first = registry_.List(q);
  ASSERT_TRUE(first.ok());
  q.page_token = first->next_page_token;
  q.filter.comm_id_prefix = "d";
  auto st = registry_.List(q).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(st.message()), HasSubstr("other filters"));
  q.page_token = "not-a-token";
  EXPECT_THAT(std::string(registry_.List(q).status().message()), HasSubstr("page_token"));
}

TEST_F(RegistryTest, PageSizeBounds) {
  ListDevicesQuery q;
  q.page_size = -1;
  auto st = registry_.List(q).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(st.message()), HasSubstr("page_size"));
  q.page_size = 1 << 30;  // capped, not an error
  EXPECT_TRUE(registry_.List(q).ok());
}

TEST_F(RegistryTest, UpdateNeedsAKnownMaskAndAValidEtag) {
  ASSERT_TRUE(registry_.Register(Dev("d1"), ctx_).ok());
  Device d = Dev("d1");
  d.display_name = "Pump 1";
  EXPECT_THAT(std::string(registry_.Update(d, {}, "", ctx_).status().message()),
              HasSubstr("update_mask"));
  EXPECT_THAT(std::string(registry_.Update(d, {"status"}, "", ctx_).status().message()),
              HasSubstr("SetDeviceStatus"));
  EXPECT_THAT(std::string(registry_.Update(d, {"display_name"}, "x1", ctx_).status().message()),
              HasSubstr("etag"));
  ASSERT_TRUE(registry_.Update(d, {"display_name"}, "7", ctx_).ok());
  EXPECT_EQ(store_.last_update.display_name, "Pump 1");
  EXPECT_FALSE(store_.last_update.attributes.has_value());
  EXPECT_EQ(store_.last_version, 7);
}

TEST_F(RegistryTest, SetStatusRequiresAStatus) {
  ASSERT_TRUE(registry_.Register(Dev("d1"), ctx_).ok());
  auto st = registry_.SetStatus("d1", std::nullopt, "", "", ctx_).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(st.message()), HasSubstr("status"));
}

TEST(EtagTest, RoundTrip) {
  EXPECT_EQ(*ParseEtag("etag", Etag(42)), 42);
  EXPECT_FALSE(ParseEtag("etag", "").value().has_value());
  EXPECT_FALSE(ParseEtag("etag", "0").ok());
  EXPECT_FALSE(ParseEtag("etag", "-3").ok());
  EXPECT_FALSE(ParseEtag("etag", "99999999999999999999999").ok());
}

}  // namespace
}  // namespace fleetca::registry
