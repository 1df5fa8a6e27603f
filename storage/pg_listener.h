#pragma once

// Listener: LISTEN on one PostgreSQL channel, to wake a background worker when a
// transaction that NOTIFYs on it commits, instead of polling. It holds a connection of its
// own, leased from the pool for as long as it lives (and leased again after a break).

#include <memory>
#include <string>

#include "absl/time/time.h"
#include "storage/connection_pool.h"

namespace fleetca::storage {

class Listener {
 public:
  Listener(ConnectionPool& pool, std::string channel);
  ~Listener();
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

  // Wait returns true as soon as a notification arrived (or had arrived since the last
  // call), false after timeout. With the database unreachable it waits out the timeout and
  // returns false; it listens again once it can. One caller at a time.
  bool Wait(absl::Duration timeout);

 private:
  class Receiver;
  ConnectionPool& pool_;
  const std::string channel_;
  std::unique_ptr<Lease> lease_;
  std::unique_ptr<Receiver> receiver_;
  bool notified_ = false;
};

}  // namespace fleetca::storage
