#pragma once

// A bounded pool of PostgreSQL connections (libpqxx), with timeouts, and the transaction
// runner every store uses.

#include <deque>
#include <functional>
#include <set>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/request_context.h"

#include <pqxx/connection>

namespace pqxx {
class transaction_base;
}  // namespace pqxx

namespace fleetca::storage {

struct PoolOptions {
  // libpq connection string or URI, e.g. postgresql://fleetca@127.0.0.1:5432/fleetca.
  std::string url;
  // Most connections open at once; callers beyond this wait up to acquire_timeout.
  int max_connections = 16;
  // How long Acquire waits for a free connection before UNAVAILABLE.
  absl::Duration acquire_timeout = absl::Seconds(5);
  // libpq connect_timeout for new connections (whole seconds, at least 1).
  absl::Duration connect_timeout = absl::Seconds(5);
  // PostgreSQL statement_timeout set on every connection.
  absl::Duration statement_timeout = absl::Seconds(30);
};

// Access mode of a transaction.
// kAutocommit runs without a transaction block (each statement commits on its own): one
// round trip instead of three, for a single statement that is safe to run again (a read).
enum class TxMode { kReadWrite, kReadOnly, kAutocommit };

class ConnectionPool;

// Lease: exclusive use of one connection; returns it to the pool when destroyed.
class Lease {
 public:
  Lease(Lease&& other) noexcept;
  Lease& operator=(Lease&&) = delete;
  Lease(const Lease&) = delete;
  ~Lease();

  pqxx::connection& conn() { return *conn_; }
  // Discard closes the connection instead of returning it (after a connection error).
  void Discard() { discard_ = true; }

 private:
  friend class ConnectionPool;
  Lease(ConnectionPool* pool, std::unique_ptr<pqxx::connection> conn, int backend_pid);

  ConnectionPool* pool_;  // null once moved from
  std::unique_ptr<pqxx::connection> conn_;
  int backend_pid_;  // read at lease time: a broken connection no longer knows it
  bool discard_ = false;
};

class ConnectionPool {
 public:
  // Create checks the URL by opening one connection. Returns UNAVAILABLE (with libpq's
  // reason, without the password) when the database cannot be reached, INVALID_ARGUMENT
  // for bad options.
  static absl::StatusOr<std::unique_ptr<ConnectionPool>> Create(PoolOptions options);
  ~ConnectionPool();

  ConnectionPool(const ConnectionPool&) = delete;
  ConnectionPool& operator=(const ConnectionPool&) = delete;

  // Acquire returns an idle connection or opens a new one. UNAVAILABLE when the pool is
  // exhausted for longer than acquire_timeout, when the database cannot be reached, or after
  // Close.
  absl::StatusOr<Lease> Acquire();

  // Transact runs fn in one transaction and commits it when fn returns OK (otherwise rolls
  // back and returns fn's status). libpqxx exceptions become statuses (pg_errors.h).
  // fn may run more than once: again on a new connection when the connection turns out to
  // be broken before COMMIT (a restarted database), and again after a serialization failure
  // or deadlock (up to 3 attempts in all). fn must therefore only assign its outputs.
  // When `request` is given and its caller has gone by the time fn returns, the transaction
  // is rolled back and CANCELLED returned: a caller told its call failed never finds the
  // change committed after all.
  absl::Status Transact(absl::string_view operation, TxMode mode,
                        const std::function<absl::Status(pqxx::transaction_base&)>& fn,
                        const RequestContext* request = nullptr);

  // CancelRunningQueries asks PostgreSQL to cancel the statement running on every leased
  // connection (pg_cancel_backend, over a separate connection). Their transactions fail and
  // roll back. Used at shutdown once the grace period is over.
  void CancelRunningQueries();

  // Ping runs SELECT 1 on a pooled connection: OK, or UNAVAILABLE with the reason.
  absl::Status Ping();

  // Close refuses new leases and closes idle connections; leased ones close when returned.
  void Close();

  struct Stats {
    int open = 0;     // connections open (idle + leased)
    int idle = 0;     // idle connections
    int waiting = 0;  // callers waiting in Acquire
    int max = 0;      // max_connections
  };
  Stats GetStats();

 private:
  friend class Lease;
  explicit ConnectionPool(PoolOptions options, std::string conninfo);
  absl::StatusOr<std::unique_ptr<pqxx::connection>> Connect();
  void Release(std::unique_ptr<pqxx::connection> conn, int backend_pid, bool discard);
  Lease MakeLease(std::unique_ptr<pqxx::connection> conn) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const PoolOptions options_;
  const std::string conninfo_;  // url plus connect_timeout
  absl::Mutex mu_;
  std::deque<std::unique_ptr<pqxx::connection>> idle_ ABSL_GUARDED_BY(mu_);
  std::multiset<int> leased_pids_ ABSL_GUARDED_BY(mu_);  // backend pids of leased connections
  int open_ ABSL_GUARDED_BY(mu_) = 0;
  int waiting_ ABSL_GUARDED_BY(mu_) = 0;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
};

// RedactUrl returns a connection string with any password replaced by "***", for logs and
// error messages.
std::string RedactUrl(absl::string_view url);

}  // namespace fleetca::storage
