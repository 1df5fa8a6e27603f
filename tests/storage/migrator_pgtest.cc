#include "storage/migrator.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <thread>

#include "migrations/embedded_migrations.h"
#include "storage/connection_pool.h"
#include "tests/testing/test_database.h"

namespace fleetca::storage {
namespace {

using ::testing::HasSubstr;

std::unique_ptr<ConnectionPool> NewPool(const std::string& url) {
  PoolOptions options;
  options.url = url;
  options.max_connections = 2;
  auto pool = ConnectionPool::Create(options);
  EXPECT_TRUE(pool.ok()) << pool.status();
  return pool.ok() ? *std::move(pool) : nullptr;
}

TEST(MigratorTest, AppliesEverythingThenIsANoOp) {
  testing::TestDatabase db(/*migrate=*/false);
  const auto& all = EmbeddedMigrations();
  ASSERT_FALSE(all.empty());
  auto first = Migrate(db.pool(), all);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->applied.size(), all.size());
  EXPECT_EQ(first->current_version, all.back().version);
  auto second = Migrate(db.pool(), all);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_TRUE(second->applied.empty());
  EXPECT_EQ(db.Exec("SELECT count(*) FROM schema_migrations"), std::to_string(all.size()));
}

TEST(MigratorTest, ConcurrentMigratorsApplyEachVersionOnce) {
  testing::TestDatabase db(/*migrate=*/false);
  const auto& all = EmbeddedMigrations();
  constexpr int kReplicas = 4;
  std::vector<std::unique_ptr<ConnectionPool>> pools;
  for (int i = 0; i < kReplicas; ++i) pools.push_back(NewPool(db.url()));
  std::vector<absl::StatusOr<MigrationReport>> reports(kReplicas, absl::UnknownError("not run"));
  std::vector<std::thread> threads;
  for (int i = 0; i < kReplicas; ++i) {
    threads.emplace_back([&, i] { reports[i] = Migrate(*pools[i], all); });
  }
  for (auto& t : threads) t.join();
  size_t applied = 0;
  for (const auto& r : reports) {
    ASSERT_TRUE(r.ok()) << r.status();
    applied += r->applied.size();
  }
  EXPECT_EQ(applied, all.size());
  EXPECT_EQ(db.Exec("SELECT count(*) FROM schema_migrations"), std::to_string(all.size()));
}

TEST(MigratorTest, RefusesAnEditedMigration) {
  testing::TestDatabase db(/*migrate=*/false);
  std::vector<Migration> v1 = {{1, "0001_a.sql", "CREATE TABLE a (x int)"}};
  ASSERT_TRUE(Migrate(db.pool(), v1).ok());
  v1[0].sql = "CREATE TABLE a (x bigint)";
  auto st = Migrate(db.pool(), v1).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(st.message()), HasSubstr("0001_a.sql was changed"));
}

TEST(MigratorTest, RefusesADatabaseFromANewerVersion) {
  testing::TestDatabase db(/*migrate=*/false);
  std::vector<Migration> newer = {{1, "0001_a.sql", "SELECT 1"}, {2, "0002_b.sql", "SELECT 2"}};
  ASSERT_TRUE(Migrate(db.pool(), newer).ok());
  newer.pop_back();
  auto st = Migrate(db.pool(), newer).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(st.message()), HasSubstr("newer version"));
}

TEST(MigratorTest, AFailingMigrationIsNamedAndLeavesNothingHalfDone) {
  testing::TestDatabase db(/*migrate=*/false);
  std::vector<Migration> ms = {
      {1, "0001_a.sql", "CREATE TABLE a (x int)"},
      {2, "0002_bad.sql", "CREATE TABLE b (x int); SELECT * FROM missing_table"}};
  auto st = Migrate(db.pool(), ms).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kInternal);
  EXPECT_THAT(std::string(st.message()), HasSubstr("0002_bad.sql"));
  EXPECT_EQ(db.Exec("SELECT count(*) FROM schema_migrations"), "1");
  EXPECT_EQ(db.Exec("SELECT to_regclass('b') IS NULL"), "t");
  // Fixed, it applies.
  ms[1].sql = "CREATE TABLE b (x int)";
  auto report = Migrate(db.pool(), ms);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->applied, std::vector<int>{2});
}

TEST(MigratorTest, RefusesOutOfOrderVersions) {
  testing::TestDatabase db(/*migrate=*/false);
  std::vector<Migration> ms = {{2, "0002_b.sql", "SELECT 1"}, {1, "0001_a.sql", "SELECT 1"}};
  EXPECT_EQ(Migrate(db.pool(), ms).status().code(), absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace fleetca::storage
