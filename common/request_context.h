#pragma once

// RequestContext: what every layer may need to know about the call it serves.

#include <functional>
#include <string>

namespace fleetca {

struct RequestContext {
  // Who asks, for the audit log: the authenticated identity, or the peer address while
  // there is none.
  std::string actor;
  // The caller's request id (x-request-id), if any.
  std::string request_id;
  // Reports whether the caller has gone (cancelled, deadline passed, server shutting
  // down). Empty: never cancelled. Transactions check it before COMMIT so a call whose
  // caller was told it failed does not commit after all.
  std::function<bool()> cancelled;

  bool IsCancelled() const { return cancelled && cancelled(); }
};

}  // namespace fleetca
