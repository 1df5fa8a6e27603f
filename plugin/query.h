#pragma once

// QueryPolicy: the plugin's query mode. Each CONNECT asks fleetca
// (BrokerAuthService.AuthorizeConnect with the client's certificate) under a strict
// deadline; the answer, with the principal's effective rules, is cached for the TTL the
// server gives (capped by the plugin's option), and ACL checks are decided from those rules
// in memory: still no call per PUBLISH or SUBSCRIBE. A deadline missed or an error refuses
// the connection (fail closed) unless a cached answer is still fresh.
//
// What it does not do, by design: kick a connected client when fleetca revokes it (there
// is no stream to learn it from), or admit anyone while fleetca is unreachable. Stream mode
// does both; query mode is for brokers that cannot hold the whole policy.

#include <openssl/x509.h>

#include <functional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/time/time.h"
#include "fleetca/v1/broker_auth.pb.h"
#include "grpcpp/support/status.h"
#include "plugin/enforcer.h"

namespace fleetca::plugin {

// QueryCall sends one AuthorizeConnect with this deadline.
using QueryCall = std::function<grpc::Status(const v1::AuthorizeConnectRequest& request,
                                             v1::AuthorizeConnectResponse* response,
                                             absl::Time deadline)>;

struct QueryOptions {
  absl::Duration timeout = absl::Milliseconds(500);
  // The longest an answer is reused (the server's cache_ttl, when shorter, wins).
  absl::Duration max_cache_ttl = absl::Seconds(10);
  // At most this many cached answers (the cache is emptied when full).
  size_t max_cached = 100000;
};

class QueryPolicy final : public BrokerPolicy {
 public:
  QueryPolicy(QueryCall call, QueryOptions options,
              std::function<absl::Time()> clock = [] { return absl::Now(); })
      : call_(std::move(call)), options_(options), clock_(std::move(clock)) {}

  Decision OnConnect(const void* client, const std::string& client_id, X509* cert) override;
  bool Allowed(const void* client, absl::string_view client_id, acl::Operation op,
               absl::string_view topic) override;
  void OnDisconnect(const void* client) override { clients_.erase(client); }
  std::vector<Kick> OnTick() override { return {}; }

  size_t calls() const { return calls_; }

 private:
  struct Cached {
    Decision decision;
    absl::Time expires;
  };
  struct Client {
    std::string client_id;
    std::vector<acl::ResolvedRule> rules;
  };

  QueryCall call_;
  const QueryOptions options_;
  std::function<absl::Time()> clock_;
  absl::flat_hash_map<std::string, Cached> cache_;  // SHA-256 of the DER + NUL + client id
  absl::flat_hash_map<const void*, Client> clients_;
  size_t calls_ = 0;
};

// DecisionFromResponse: the plugin's Decision for an AuthorizeConnect answer (rules sorted
// as Policy::ResolveRules sorts them).
Decision DecisionFromResponse(const v1::AuthorizeConnectResponse& response);

}  // namespace fleetca::plugin
