#include "tests/testing/test_database.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <pqxx/pqxx>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "migrations/embedded_migrations.h"
#include "storage/migrator.h"

namespace fleetca::testing {

std::string TestDatabase::BaseUrl() {
  const char* url = std::getenv("FLEETCA_TEST_DATABASE_URL");
  if (url == nullptr || *url == '\0') {
    ADD_FAILURE() << "FLEETCA_TEST_DATABASE_URL is not set: run the tests with scripts/test.sh, "
                     "which starts a PostgreSQL server for them";
    return "";
  }
  return url;
}

std::string TestDatabase::UrlWithSchema(const std::string& base, const std::string& schema) {
  return absl::StrCat(base, base.find('?') == std::string::npos ? "?" : "&",
                      "options=-csearch_path%3D", schema);
}

TestDatabase::TestDatabase(bool migrate) {
  absl::BitGen gen;
  schema_ = absl::StrFormat("t_%016x", absl::Uniform<uint64_t>(gen));
  const std::string base = BaseUrl();
  if (base.empty()) return;
  {
    pqxx::connection conn(base);
    pqxx::nontransaction tx(conn);
    tx.exec(absl::StrCat("CREATE SCHEMA ", schema_));
  }
  url_ = UrlWithSchema(base, schema_);
  if (migrate) {
    auto report = storage::Migrate(pool(), EmbeddedMigrations());
    EXPECT_TRUE(report.ok()) << report.status();
  }
}

TestDatabase::~TestDatabase() {
  if (pool_) pool_->Close();
  pool_.reset();
  const std::string base = BaseUrl();
  if (base.empty()) return;
  try {
    pqxx::connection conn(base);
    pqxx::nontransaction tx(conn);
    tx.exec(absl::StrCat("DROP SCHEMA IF EXISTS ", schema_, " CASCADE"));
  } catch (const std::exception& e) {
    ADD_FAILURE() << "dropping schema " << schema_ << ": " << e.what();
  }
}

storage::ConnectionPool& TestDatabase::pool() {
  if (!pool_) {
    storage::PoolOptions options;
    options.url = url_;
    options.max_connections = 8;
    auto pool = storage::ConnectionPool::Create(options);
    if (!pool.ok()) {
      ADD_FAILURE() << pool.status();
      std::abort();
    }
    pool_ = *std::move(pool);
  }
  return *pool_;
}

int TestDatabase::ChainAudit(int limit) {
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (true) {
    const int chained = std::stoi(Exec(absl::StrCat("SELECT fleetca_chain_audit(", limit, ")")));
    if (chained > 0 || Exec("SELECT count(*) FROM audit_log WHERE chain_seq IS NULL") == "0") {
      return chained;
    }
    if (absl::Now() > deadline) {
      ADD_FAILURE() << "the audit sequencer's lock stayed taken for 30 s";
      return 0;
    }
    absl::SleepFor(absl::Milliseconds(5));
  }
}

std::string TestDatabase::Exec(const std::string& sql) {
  pqxx::connection conn(url_);
  pqxx::work tx(conn);
  pqxx::result r = tx.exec(sql);
  tx.commit();
  if (r.empty() || r.columns() == 0 || r[0][0].is_null()) return "";
  return r[0][0].as<std::string>();
}

}  // namespace fleetca::testing
