#include "plugin/enforcer.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "pki/certificate_builder.h"
#include "pki/openssl_util.h"

namespace fleetca::plugin {

void SnapshotBox::Publish(std::shared_ptr<const Policy> policy, int64_t revision,
                          Touched touched) {
  absl::MutexLock lock(&mu_);
  latest_ = std::move(policy);
  revision_ = revision;
  touched_.Merge(std::move(touched));
  published_.fetch_add(1, std::memory_order_release);
}

bool SnapshotBox::Take(std::shared_ptr<const Policy>* policy, int64_t* revision,
                       Touched* touched) {
  const uint64_t published = published_.load(std::memory_order_acquire);
  if (published == taken_) return false;
  absl::MutexLock lock(&mu_);
  taken_ = published_.load(std::memory_order_relaxed);
  *policy = latest_;
  *revision = revision_;
  *touched = std::move(touched_);
  touched_ = Touched();
  return true;
}

std::pair<std::shared_ptr<const Policy>, int64_t> SnapshotBox::Latest() const {
  absl::MutexLock lock(&mu_);
  return {latest_, revision_};
}

bool Enforcer::TakeSnapshot() {
  std::shared_ptr<const Policy> policy;
  int64_t revision = 0;
  Touched touched;
  if (!box_.Take(&policy, &revision, &touched)) return false;
  if (policy_ == nullptr) touched.all = true;  // the first policy: everyone is decided on it
  policy_ = std::move(policy);
  revision_ = revision;
  pending_.Merge(std::move(touched));
  return true;
}

Decision Enforcer::OnConnect(const void* client, const std::string& client_id, X509* cert) {
  TakeSnapshot();
  clients_.erase(client);
  Client entry;
  entry.client_id = client_id;
  Decision decision;
  if (policy_ == nullptr) {
    decision.verdict = Verdict::kNoPolicy;
    decision.message = "no policy received from fleetca yet, and no cached one";
    if (!options_.admit_without_policy) return decision;
    absl::StatusOr<pki::CertificateInfo> info =
        cert != nullptr ? pki::InspectCertificate(cert)
                        : absl::InvalidArgumentError("no certificate");
    pki::ClearOpenSslErrors();
    if (!info.ok() || info->common_name != client_id) {
      decision.message += "; admit_without_policy needs a certificate whose CN is the client id";
      return decision;
    }
    decision.verdict = Verdict::kAllowed;
    decision.message = "admitted without a policy (admit_without_policy)";
    decision.principal_id = client_id;
    entry.permissive = true;
    entry.principal_id = client_id;
    clients_.emplace(client, std::move(entry));
    return decision;
  }
  if (!ReadClientCertificate(*policy_, cert, &entry.cert, &decision)) return decision;
  decision = Decide(*policy_, entry.cert, client_id, clock_());
  if (!decision.allowed()) return decision;
  entry.principal_type = decision.principal_type;
  entry.principal_id = decision.principal_id;
  entry.rules = decision.rules;
  clients_.emplace(client, std::move(entry));
  return decision;
}

bool Enforcer::Allowed(const void* client, absl::string_view client_id, acl::Operation op,
                       absl::string_view topic) {
  auto it = clients_.find(client);
  if (it != clients_.end() && it->second.client_id == client_id) {
    const Client& c = it->second;
    if (c.kicked) return false;
    if (c.permissive) return true;
    return acl::Evaluate(c.rules, op, topic).allowed;
  }
  // Not connected: an offline session's queued message.
  if (policy_ == nullptr) return false;
  const std::string id(client_id);
  if (const Device* device = policy_->FindDevice(id);
      device != nullptr && device->status == v1::DEVICE_STATUS_ACTIVE) {
    return acl::Evaluate(policy_->ResolveRules(v1::PRINCIPAL_TYPE_DEVICE, id, device), op, topic)
        .allowed;
  }
  if (const Identity* identity = policy_->FindIdentity(id);
      identity != nullptr && identity->status == v1::IDENTITY_STATUS_ACTIVE) {
    return acl::Evaluate(policy_->ResolveRules(v1::PRINCIPAL_TYPE_IDENTITY, id, nullptr), op,
                         topic)
        .allowed;
  }
  return false;
}

void Enforcer::OnDisconnect(const void* client) { clients_.erase(client); }

std::vector<Kick> Enforcer::OnTick() {
  std::vector<Kick> kicks;
  TakeSnapshot();
  const absl::Time now = clock_();
  if (policy_ != nullptr && now >= next_full_recheck_) {
    pending_.all = true;
    next_full_recheck_ = now + options_.full_recheck_interval;
  }
  if (policy_ != nullptr && !pending_.empty()) Recheck(&kicks);
  return kicks;
}

void Enforcer::Recheck(std::vector<Kick>* kicks) {
  const Touched touched = std::move(pending_);
  pending_ = Touched();
  const absl::Time now = clock_();
  for (auto& [client, c] : clients_) {
    if (c.kicked) continue;
    if (c.permissive) {
      // Admitted before any policy: reconnects under the policy now there is one.
      c.kicked = true;
      kicks->push_back({c.client_id, "the first policy arrived (admitted without one)"});
      continue;
    }
    if (!touched.Concerns(c.principal_type, c.principal_id, c.cert.key())) continue;
    Decision decision = Decide(*policy_, c.cert, c.client_id, now);
    if (!decision.allowed()) {
      c.kicked = true;
      kicks->push_back({c.client_id, std::move(decision.message)});
    } else if (LosesRights(c.rules, decision.rules)) {
      c.kicked = true;
      kicks->push_back({c.client_id, absl::StrCat("the ACL rules of ", c.principal_id,
                                                  " lost a right (reconnects under the new "
                                                  "rules)")});
    } else {
      c.rules = std::move(decision.rules);
    }
  }
}

}  // namespace fleetca::plugin
