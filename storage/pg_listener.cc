#include "storage/pg_listener.h"

#include <pqxx/pqxx>

#include "absl/time/clock.h"

namespace fleetca::storage {

class Listener::Receiver final : public pqxx::notification_receiver {
 public:
  Receiver(pqxx::connection_base& conn, const std::string& channel, bool* notified)
      : pqxx::notification_receiver(conn, channel), notified_(notified) {}
  void operator()(const std::string& /*payload*/, int /*backend_pid*/) override {
    *notified_ = true;
  }

 private:
  bool* notified_;
};

Listener::Listener(ConnectionPool& pool, std::string channel)
    : pool_(pool), channel_(std::move(channel)) {}

Listener::~Listener() {
  receiver_.reset();  // UNLISTEN, before the connection goes back to the pool
  lease_.reset();
}

bool Listener::Wait(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  try {
    if (receiver_ == nullptr) {
      auto lease = pool_.Acquire();
      if (!lease.ok()) {
        absl::SleepFor(deadline - absl::Now());
        return false;
      }
      lease_ = std::make_unique<Lease>(*std::move(lease));
      receiver_ = std::make_unique<Receiver>(lease_->conn(), channel_, &notified_);
    }
    while (!notified_) {
      const absl::Duration left = deadline - absl::Now();
      if (left <= absl::ZeroDuration()) break;
      const int64_t micros = absl::ToInt64Microseconds(left);
      lease_->conn().await_notification(micros / 1000000, micros % 1000000);
    }
  } catch (const std::exception&) {
    // A broken connection: drop it, and listen on a new one at the next call.
    receiver_.reset();
    if (lease_ != nullptr) lease_->Discard();
    lease_.reset();
    absl::SleepFor(deadline - absl::Now());
  }
  const bool notified = notified_;
  notified_ = false;
  return notified;
}

}  // namespace fleetca::storage
