#include "storage/connection_pool.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <pqxx/pqxx>
#include <thread>

#include "tests/testing/test_database.h"

namespace fleetca::storage {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(ConnectionPoolTest, UnreachableDatabaseIsUnavailableWithoutThePassword) {
  PoolOptions options;
  options.url = "postgresql://fleetca:s3cret-pw@127.0.0.1:1/fleetca";
  options.connect_timeout = absl::Seconds(2);
  auto pool = ConnectionPool::Create(options);
  ASSERT_FALSE(pool.ok());
  EXPECT_EQ(pool.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(pool.status().message()), HasSubstr("127.0.0.1"));
  EXPECT_THAT(std::string(pool.status().message()), Not(HasSubstr("s3cret-pw")));
}

TEST(ConnectionPoolTest, RedactsPasswords) {
  EXPECT_EQ(RedactUrl("postgresql://u:pw@h:5/db"), "postgresql://u:***@h:5/db");
  EXPECT_EQ(RedactUrl("host=h password=pw dbname=x"), "host=h password=*** dbname=x");
  EXPECT_EQ(RedactUrl("postgresql://u@h/db"), "postgresql://u@h/db");
}

TEST(ConnectionPoolTest, IsBoundedAndTimesOut) {
  testing::TestDatabase db(/*migrate=*/false);
  PoolOptions options;
  options.url = db.url();
  options.max_connections = 2;
  options.acquire_timeout = absl::Milliseconds(200);
  auto pool = ConnectionPool::Create(options);
  ASSERT_TRUE(pool.ok()) << pool.status();
  {
    auto a = (*pool)->Acquire();
    auto b = (*pool)->Acquire();
    ASSERT_TRUE(a.ok() && b.ok());
    EXPECT_EQ((*pool)->GetStats().open, 2);
    auto c = (*pool)->Acquire();
    EXPECT_EQ(c.status().code(), absl::StatusCode::kUnavailable);
    EXPECT_THAT(std::string(c.status().message()), HasSubstr("busy"));
  }
  EXPECT_TRUE((*pool)->Acquire().ok());
  EXPECT_EQ((*pool)->GetStats().idle, 2);
  (*pool)->Close();
  EXPECT_EQ((*pool)->Acquire().status().code(), absl::StatusCode::kUnavailable);
}

TEST(ConnectionPoolTest, RollsBackWhenTheFunctionFails) {
  testing::TestDatabase db(/*migrate=*/false);
  db.Exec("CREATE TABLE t (x int)");
  absl::Status st = db.pool().Transact("insert", TxMode::kReadWrite, [](pqxx::transaction_base& tx) {
    tx.exec("INSERT INTO t VALUES (1)");
    return absl::FailedPreconditionError("no");
  });
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(db.Exec("SELECT count(*) FROM t"), "0");
}

TEST(ConnectionPoolTest, SqlErrorsAreInternalAndDoNotLeakSql) {
  testing::TestDatabase db(/*migrate=*/false);
  absl::Status st = db.pool().Transact("read", TxMode::kReadOnly, [](pqxx::transaction_base& tx) {
    tx.exec("SELECT secret_column FROM no_such_table");
    return absl::OkStatus();
  });
  EXPECT_EQ(st.code(), absl::StatusCode::kInternal);
  EXPECT_THAT(std::string(st.message()), Not(HasSubstr("no_such_table")));
  EXPECT_THAT(std::string(st.message()), HasSubstr("incident"));
}

TEST(ConnectionPoolTest, ReadOnlyTransactionsRefuseWrites) {
  testing::TestDatabase db(/*migrate=*/false);
  db.Exec("CREATE TABLE t (x int)");
  absl::Status st = db.pool().Transact("w", TxMode::kReadOnly, [](pqxx::transaction_base& tx) {
    tx.exec("INSERT INTO t VALUES (1)");
    return absl::OkStatus();
  });
  EXPECT_FALSE(st.ok());
  EXPECT_EQ(db.Exec("SELECT count(*) FROM t"), "0");
}

TEST(ConnectionPoolTest, StaleConnectionsAreReplacedTransparently) {
  testing::TestDatabase db(/*migrate=*/false);
  db.Exec("CREATE TABLE t (x int)");
  ConnectionPool& pool = db.pool();
  ASSERT_TRUE(pool.Ping().ok());
  // Kill every backend of this pool, as a PostgreSQL restart would.
  std::string pid;
  {
    auto lease = pool.Acquire();
    ASSERT_TRUE(lease.ok());
    pqxx::nontransaction tx(lease->conn());
    pid = tx.exec1("SELECT pg_backend_pid()")[0].as<std::string>();
  }
  db.Exec("SELECT pg_terminate_backend(" + pid + ")");
  absl::Status st = pool.Transact("insert", TxMode::kReadWrite, [](pqxx::transaction_base& tx) {
    tx.exec("INSERT INTO t VALUES (1)");
    return absl::OkStatus();
  });
  EXPECT_TRUE(st.ok()) << st;
  EXPECT_EQ(db.Exec("SELECT count(*) FROM t"), "1");
}

TEST(ConnectionPoolTest, ACancelledCallRollsBackInsteadOfCommitting) {
  testing::TestDatabase db(/*migrate=*/false);
  db.Exec("CREATE TABLE t (x int)");
  RequestContext gone;
  gone.cancelled = [] { return true; };
  absl::Status st = db.pool().Transact(
      "insert", TxMode::kReadWrite,
      [](pqxx::transaction_base& tx) {
        tx.exec("INSERT INTO t VALUES (1)");
        return absl::OkStatus();
      },
      &gone);
  EXPECT_EQ(st.code(), absl::StatusCode::kCancelled);
  EXPECT_THAT(std::string(st.message()), HasSubstr("nothing was changed"));
  EXPECT_EQ(db.Exec("SELECT count(*) FROM t"), "0");
}

TEST(ConnectionPoolTest, CancelRunningQueriesUnblocksAWaitingTransaction) {
  testing::TestDatabase db(/*migrate=*/false);
  db.Exec("CREATE TABLE t (x int)");
  // Another session holds a lock the transaction below must wait for.
  pqxx::connection blocker(db.url());
  pqxx::work lock(blocker);
  lock.exec("LOCK TABLE t IN ACCESS EXCLUSIVE MODE");

  absl::Status st = absl::UnknownError("not run");
  std::thread writer([&] {
    st = db.pool().Transact("insert", TxMode::kReadWrite, [](pqxx::transaction_base& tx) {
      tx.exec("INSERT INTO t VALUES (1)");
      return absl::OkStatus();
    });
  });
  // Wait until the insert is blocked on the lock, then cancel it.
  for (int i = 0; i < 200; ++i) {
    if (db.Exec("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND "
                "query LIKE 'INSERT INTO t%'") == "1") {
      break;
    }
    absl::SleepFor(absl::Milliseconds(25));
  }
  db.pool().CancelRunningQueries();
  writer.join();
  EXPECT_EQ(st.code(), absl::StatusCode::kUnavailable) << st;
  lock.commit();
  EXPECT_EQ(db.Exec("SELECT count(*) FROM t"), "0");
  EXPECT_TRUE(db.pool().Ping().ok());  // the connection is usable again
}

}  // namespace
}  // namespace fleetca::storage
