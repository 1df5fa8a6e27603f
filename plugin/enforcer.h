#pragma once

// The broker thread's side of the plugin, apart from mosquitto's API so that tests drive
// it directly: connections decided and remembered, ACL checks answered from the rules
// resolved at CONNECT, and new policy snapshots taken on TICK, when the connected clients
// they concern are decided again and those no longer allowed (or losing a right) are
// returned to be kicked.
//
// Threads: SnapshotBox::Publish is called by the sync thread; everything else on the one
// broker thread. An ACL check takes no lock and makes no call: a hash lookup and the
// evaluation of the client's rules.

#include <openssl/x509.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "acl/policy.h"
#include "plugin/authorizer.h"
#include "plugin/compiled_rules.h"
#include "plugin/policy.h"

namespace fleetca::plugin {

// SnapshotBox hands policy snapshots from the sync thread to the broker thread.
class SnapshotBox {
 public:
  // Publish makes `policy` (at `revision`) the newest snapshot; `touched` is what changed
  // since the previous one.
  void Publish(std::shared_ptr<const Policy> policy, int64_t revision, Touched touched);

  // Take returns true, the newest snapshot, its revision and everything touched since the
  // last Take, when one was published since; false at once (no lock) otherwise.
  bool Take(std::shared_ptr<const Policy>* policy, int64_t* revision, Touched* touched);

  // Latest: the newest snapshot and its revision (null before the first), for the cache.
  std::pair<std::shared_ptr<const Policy>, int64_t> Latest() const;

  // Retire: the broker thread hands back a snapshot it no longer reads, so that the sync
  // thread frees it (at its next Publish): freeing copied shards takes milliseconds at a
  // million devices, which mosquitto's thread must not spend.
  void Retire(std::shared_ptr<const Policy> policy);

 private:
  std::atomic<uint64_t> published_{0};
  uint64_t taken_ = 0;  // the broker thread's
  mutable absl::Mutex mu_;
  std::shared_ptr<const Policy> latest_ ABSL_GUARDED_BY(mu_);
  int64_t revision_ ABSL_GUARDED_BY(mu_) = 0;
  Touched touched_ ABSL_GUARDED_BY(mu_);
  std::vector<std::shared_ptr<const Policy>> retired_ ABSL_GUARDED_BY(mu_);
};

struct EnforcerOptions {
  // admit_without_policy: with no snapshot at all (none received, no cache), admit any
  // client whose certificate CN is its client id, with every topic allowed, until the first
  // snapshot arrives (then they are all kicked and reconnect under the policy). Off by
  // default: such a broker refuses everyone.
  bool admit_without_policy = false;
  // The most offline sessions whose rules are kept between snapshots (Allowed).
  size_t max_offline_cached = 100000;
};

// A kick the broker thread must carry out, and why.
struct Kick {
  std::string client_id;
  std::string reason;
};

// BrokerPolicy: what the broker thread asks, whichever way it is answered (Enforcer: the
// stream's policy in memory; QueryPolicy: AuthorizeConnect per connection).
class BrokerPolicy {
 public:
  virtual ~BrokerPolicy() = default;
  // OnConnect decides a CONNECT (cert borrowed, may be null) and, when allowed, remembers
  // the client under `client` (mosquitto's pointer, unique among live connections).
  virtual Decision OnConnect(const void* client, const std::string& client_id, X509* cert) = 0;
  // Allowed answers an ACL check.
  virtual bool Allowed(const void* client, absl::string_view client_id, acl::Operation op,
                       absl::string_view topic) = 0;
  // OnDisconnect forgets the client.
  virtual void OnDisconnect(const void* client) = 0;
  // OnTick returns the clients to kick (called about every 100 ms).
  virtual std::vector<Kick> OnTick() = 0;
};

class Enforcer final : public BrokerPolicy {
 public:
  Enforcer(SnapshotBox& box, EnforcerOptions options,
           std::function<absl::Time()> clock = [] { return absl::Now(); })
      : box_(box), options_(options), clock_(std::move(clock)) {}

  // OnConnect decides a CONNECT (cert borrowed, may be null) and, when allowed, remembers
  // the client under `client` (mosquitto's pointer, unique among live connections). Takes a
  // newer snapshot first, so a client is never decided on an older policy than its ACL
  // checks will be.
  Decision OnConnect(const void* client, const std::string& client_id, X509* cert) override;

  // Allowed answers an ACL check. A client not remembered (an offline persistent session
  // receiving a queued message) is decided by its client id: a registered ACTIVE device
  // of that comm-ID, else an ACTIVE identity of that name, with its rules.
  bool Allowed(const void* client, absl::string_view client_id, acl::Operation op,
               absl::string_view topic) override;

  // OnDisconnect forgets the client.
  void OnDisconnect(const void* client) override;

  // OnTick takes a newer snapshot if there is one, decides again the clients it concerns
  // (found through indexes by principal and by certificate, not by visiting every client),
  // and returns those to kick, with those whose certificate has expired.
  std::vector<Kick> OnTick() override;

  bool has_policy() const { return policy_ != nullptr; }
  int64_t revision() const { return revision_; }
  size_t client_count() const { return clients_.size(); }

 private:
  using ExpiryIndex = std::multimap<int64_t, const void*>;

  // What deciding a client again needs (cold: not read by ACL checks).
  struct ClientFacts {
    ClientCertificate cert;
    std::vector<acl::ResolvedRule> rules;  // as resolved (compared when they change)
    std::string cert_key;  // cert.key()
    v1::PrincipalType principal_type = v1::PRINCIPAL_TYPE_UNSPECIFIED;
    std::string principal_id;
    std::optional<ExpiryIndex::iterator> expiry;
  };
  // A connected client: what an ACL check reads, inline in the table; the rest apart.
  struct Client {
    std::string client_id;
    CompiledRules rules;
    bool permissive = false;  // admitted without a policy: everything allowed
    bool kicked = false;      // a kick was returned: denied until it is gone
    std::unique_ptr<ClientFacts> facts = std::make_unique<ClientFacts>();
  };

  // Rules of an offline session, by client id: nullopt when it may receive nothing.
  using OfflineRules = std::optional<std::vector<acl::ResolvedRule>>;
  struct OfflineEntry {
    uint64_t generation = 0;  // snapshots_taken_ when resolved: stale after the next one
    OfflineRules rules;
  };

  // TakeSnapshot: true when a newer snapshot was taken; what it touched is merged into
  // pending_, the snapshot dropped goes back to the sync thread.
  bool TakeSnapshot();
  void Recheck(std::vector<Kick>* kicks);
  void KickExpired(std::vector<Kick>* kicks);
  void Remember(const void* client, Client entry);
  void Forget(const void* client);
  const OfflineRules& OfflineRulesFor(absl::string_view client_id);
  static std::string PrincipalKey(v1::PrincipalType type, absl::string_view id);

  SnapshotBox& box_;
  const EnforcerOptions options_;
  std::function<absl::Time()> clock_;
  std::shared_ptr<const Policy> policy_;
  int64_t revision_ = 0;
  Touched pending_;
  absl::flat_hash_map<const void*, Client> clients_;
  // Indexes over clients_: by PrincipalKey, by certificate key, by the certificate's
  // notAfter.
  absl::flat_hash_map<std::string, std::vector<const void*>> by_principal_;
  absl::flat_hash_map<std::string, std::vector<const void*>> by_certificate_;
  ExpiryIndex expiry_;
  // Offline sessions' rules, resolved again when a newer snapshot was taken since (not
  // cleared on each snapshot: freeing many entries would stall mosquitto's thread).
  absl::flat_hash_map<std::string, OfflineEntry> offline_;
  uint64_t snapshots_taken_ = 0;
};

}  // namespace fleetca::plugin
