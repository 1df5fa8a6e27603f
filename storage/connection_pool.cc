#include "storage/connection_pool.h"

#include <pqxx/pqxx>
#include <regex>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "storage/pg_errors.h"

namespace fleetca::storage {

Lease::Lease(ConnectionPool* pool, std::unique_ptr<pqxx::connection> conn, int backend_pid)
    : pool_(pool), conn_(std::move(conn)), backend_pid_(backend_pid) {}

Lease::Lease(Lease&& other) noexcept
    : pool_(other.pool_),
      conn_(std::move(other.conn_)),
      backend_pid_(other.backend_pid_),
      discard_(other.discard_) {
  other.pool_ = nullptr;
}

Lease::~Lease() {
  if (pool_ != nullptr && conn_ != nullptr) {
    pool_->Release(std::move(conn_), backend_pid_, discard_);
  }
}

std::string RedactUrl(absl::string_view url) {
  // URI form: scheme://user:password@host -> scheme://user:***@host
  static const std::regex kUriPassword(R"(^([a-z]+://[^:/@]*):[^@]*@)");
  // key=value form: password=secret -> password=***
  static const std::regex kKvPassword(R"(password\s*=\s*('[^']*'|\S+))");
  std::string out = std::regex_replace(std::string(url), kUriPassword, "$1:***@");
  return std::regex_replace(out, kKvPassword, "password=***");
}

namespace {

// WithConnectTimeout appends libpq's connect_timeout to a URI or key=value string.
std::string WithConnectTimeout(const std::string& url, absl::Duration timeout) {
  const int64_t seconds = std::max<int64_t>(1, absl::ToInt64Seconds(timeout));
  if (absl::StartsWith(url, "postgresql://") || absl::StartsWith(url, "postgres://")) {
    if (absl::StrContains(url, "connect_timeout=")) return url;
    return absl::StrCat(url, absl::StrContains(url, "?") ? "&" : "?",
                        "connect_timeout=", seconds);
  }
  if (absl::StrContains(url, "connect_timeout")) return url;
  return absl::StrCat(url, url.empty() ? "" : " ", "connect_timeout=", seconds);
}

}  // namespace

ConnectionPool::ConnectionPool(PoolOptions options, std::string conninfo)
    : options_(std::move(options)), conninfo_(std::move(conninfo)) {}

ConnectionPool::~ConnectionPool() { Close(); }

absl::StatusOr<std::unique_ptr<ConnectionPool>> ConnectionPool::Create(PoolOptions options) {
  if (options.url.empty()) return absl::InvalidArgumentError("database URL is empty");
  if (options.max_connections < 1) {
    return absl::InvalidArgumentError("max_connections must be at least 1");
  }
  std::string conninfo = WithConnectTimeout(options.url, options.connect_timeout);
  std::unique_ptr<ConnectionPool> pool(new ConnectionPool(std::move(options), std::move(conninfo)));
  auto first = pool->Acquire();
  if (!first.ok()) return first.status();
  return pool;
}

absl::StatusOr<std::unique_ptr<pqxx::connection>> ConnectionPool::Connect() {
  try {
    auto conn = std::make_unique<pqxx::connection>(conninfo_);
    const int64_t ms = absl::ToInt64Milliseconds(options_.statement_timeout);
    pqxx::nontransaction tx(*conn);
    tx.exec(absl::StrCat("SET statement_timeout = ", ms,
                         "; SET idle_in_transaction_session_timeout = ",
                         std::max<int64_t>(ms, 60000)));
    return conn;
  } catch (const pqxx::broken_connection& e) {
    // libpq's message says why (refused, unknown host, auth failed); it never holds the
    // password, but trim it to its first line.
    std::string why = e.what();
    if (const size_t nl = why.find('\n'); nl != std::string::npos) why.resize(nl);
    return absl::UnavailableError(
        absl::StrCat("cannot connect to the database at ", RedactUrl(options_.url), ": ", why));
  } catch (const std::exception& e) {
    return StatusFromException(e, "connect");
  }
}

absl::StatusOr<Lease> ConnectionPool::Acquire() {
  {
    absl::MutexLock lock(&mu_);
    const absl::Time deadline = absl::Now() + options_.acquire_timeout;
    ++waiting_;
    auto available = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return closed_ || !idle_.empty() || open_ < options_.max_connections;
    };
    const bool ok = mu_.AwaitWithDeadline(absl::Condition(&available), deadline);
    --waiting_;
    if (closed_) return absl::UnavailableError("the database pool is closed (shutting down)");
    if (!ok) {
      return absl::UnavailableError(absl::StrCat(
          "all ", options_.max_connections, " database connections are busy; retry later"));
    }
    if (!idle_.empty()) {
      auto conn = std::move(idle_.back());
      idle_.pop_back();
      return MakeLease(std::move(conn));
    }
    ++open_;  // reserve the slot, connect outside the lock
  }
  auto conn = Connect();
  absl::MutexLock lock(&mu_);
  if (!conn.ok()) {
    --open_;
    return conn.status();
  }
  return MakeLease(*std::move(conn));
}

Lease ConnectionPool::MakeLease(std::unique_ptr<pqxx::connection> conn) {
  const int pid = conn->backendpid();
  leased_pids_.insert(pid);
  return Lease(this, std::move(conn), pid);
}

void ConnectionPool::CancelRunningQueries() {
  std::set<int> pids;
  {
    absl::MutexLock lock(&mu_);
    pids.insert(leased_pids_.begin(), leased_pids_.end());
  }
  if (pids.empty()) return;
  try {
    // A connection of its own: the pool may be exhausted by the very calls to cancel.
    pqxx::connection conn(conninfo_);
    pqxx::nontransaction tx(conn);
    for (int pid : pids) tx.exec_params("SELECT pg_cancel_backend($1)", pid);
    LogWarning("cancelled running database queries", {{"count", std::to_string(pids.size())}});
  } catch (const std::exception& e) {
    LogWarning("cannot cancel running database queries", {{"detail", e.what()}});
  }
}

void ConnectionPool::Release(std::unique_ptr<pqxx::connection> conn, int backend_pid,
                             bool discard) {
  std::deque<std::unique_ptr<pqxx::connection>> dropped;  // closed outside the lock
  {
    absl::MutexLock lock(&mu_);
    if (auto it = leased_pids_.find(backend_pid); it != leased_pids_.end()) {
      leased_pids_.erase(it);
    }
    if (!discard && !closed_) {
      idle_.push_back(std::move(conn));
      return;
    }
    --open_;
    if (discard) {
      // One broken connection usually means the server restarted: the idle ones are dead
      // too, so drop them all rather than fail one call per stale connection.
      open_ -= static_cast<int>(idle_.size());
      dropped.swap(idle_);
    }
  }
  conn.reset();
}

void ConnectionPool::Close() {
  std::deque<std::unique_ptr<pqxx::connection>> dropped;
  {
    absl::MutexLock lock(&mu_);
    closed_ = true;
    open_ -= static_cast<int>(idle_.size());
    dropped.swap(idle_);
  }
}

absl::Status ConnectionPool::Ping() {
  return Transact("ping", TxMode::kReadOnly, [](pqxx::transaction_base& tx) {
    tx.exec("SELECT 1");
    return absl::OkStatus();
  });
}

ConnectionPool::Stats ConnectionPool::GetStats() {
  absl::MutexLock lock(&mu_);
  Stats s;
  s.open = open_;
  s.idle = static_cast<int>(idle_.size());
  s.waiting = waiting_;
  s.max = options_.max_connections;
  return s;
}

absl::Status ConnectionPool::Transact(
    absl::string_view operation, TxMode mode,
    const std::function<absl::Status(pqxx::transaction_base&)>& fn,
    const RequestContext* request) {
  constexpr int kMaxAttempts = 3;
  absl::Status last;
  bool retried_connection = false;
  for (int attempt = 1; attempt <= kMaxAttempts; ++attempt) {
    auto lease = Acquire();
    if (!lease.ok()) return lease.status();
    bool committing = false;
    try {
      std::unique_ptr<pqxx::transaction_base> tx;
      if (mode == TxMode::kReadOnly) {
        tx = std::make_unique<pqxx::read_transaction>(lease->conn());
      } else if (mode == TxMode::kAutocommit) {
        tx = std::make_unique<pqxx::nontransaction>(lease->conn());
      } else {
        tx = std::make_unique<pqxx::work>(lease->conn());
      }
      absl::Status st = fn(*tx);
      if (st.ok() && request != nullptr && request->IsCancelled()) {
        st = absl::CancelledError(absl::StrCat(
            operation, ": the call was cancelled before its changes were committed; nothing "
                       "was changed"));
      }
      if (!st.ok()) {
        tx->abort();
        return st;
      }
      committing = true;
      tx->commit();
      return absl::OkStatus();
    } catch (const pqxx::in_doubt_error& e) {
      // COMMIT was sent and the connection died: whether it took effect is unknown. Never
      // retry it blindly; the caller reads back (request ids make retries safe).
      lease->Discard();
      return StatusFromException(e, operation);
    } catch (const std::exception& e) {
      const bool lost = IsConnectionLoss(e);
      if (lost || committing) lease->Discard();
      last = StatusFromException(e, operation);
      if (lost && committing) return last;
      if (lost && !retried_connection) {
        // A stale connection (the server restarted since it was opened): nothing was
        // committed, so run the whole transaction once more on a fresh connection.
        retried_connection = true;
        LogInfo("retrying on a new database connection", {{"operation", std::string(operation)}});
        continue;
      }
      if (last.code() == absl::StatusCode::kAborted && attempt < kMaxAttempts) continue;
      return last;
    }
  }
  return last;
}

}  // namespace fleetca::storage
