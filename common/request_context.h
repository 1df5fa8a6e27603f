#pragma once

// RequestContext: what every layer may need to know about the call it serves.

#include <functional>
#include <string>
#include <utility>

namespace fleetca {

struct RequestContext {
  // Who asks, for the audit log: the authenticated identity's name (a device's comm-ID),
  // "anonymous" on a development server without TLS, "local-admin" for a server
  // subcommand run on the host.
  std::string actor;
  // The caller's role ("admin", "provisioner", ..., "device"; see server/auth/roles.h),
  // the serial (hex) and issuer of its client certificate, and its address, when known.
  std::string role;
  std::string actor_serial;
  std::string actor_issuer;
  std::string peer;
  // The caller's request id (x-request-id), if any.
  std::string request_id;
  // Reports whether the caller has gone (cancelled, deadline passed, server shutting
  // down). Empty: never cancelled. Transactions check it before COMMIT so a call whose
  // caller was told it failed does not commit after all.
  std::function<bool()> cancelled;

  bool IsCancelled() const { return cancelled && cancelled(); }

  // A context naming only the actor and request id (subcommands run on the host, tests).
  static RequestContext Local(std::string actor, std::string request_id = "") {
    RequestContext ctx;
    ctx.actor = std::move(actor);
    ctx.request_id = std::move(request_id);
    return ctx;
  }
};

}  // namespace fleetca
