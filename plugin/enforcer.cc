#include "plugin/enforcer.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "pki/certificate_builder.h"
#include "pki/openssl_util.h"

namespace fleetca::plugin {
namespace {

void EraseValue(std::vector<const void*>& values, const void* value) {
  values.erase(std::remove(values.begin(), values.end(), value), values.end());
}

}  // namespace

void SnapshotBox::Publish(std::shared_ptr<const Policy> policy, int64_t revision,
                          Touched touched) {
  std::vector<std::shared_ptr<const Policy>> retired;
  {
    absl::MutexLock lock(&mu_);
    latest_ = std::move(policy);
    revision_ = revision;
    touched_.Merge(std::move(touched));
    retired.swap(retired_);
    published_.fetch_add(1, std::memory_order_release);
  }
  // `retired` is freed here, on the publishing (sync) thread, outside the lock.
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

void SnapshotBox::Retire(std::shared_ptr<const Policy> policy) {
  if (policy == nullptr) return;
  absl::MutexLock lock(&mu_);
  retired_.push_back(std::move(policy));
}

std::string Enforcer::PrincipalKey(v1::PrincipalType type, absl::string_view id) {
  return absl::StrCat(static_cast<int>(type), ":", id);
}

bool Enforcer::TakeSnapshot() {
  std::shared_ptr<const Policy> policy;
  int64_t revision = 0;
  Touched touched;
  if (!box_.Take(&policy, &revision, &touched)) return false;
  if (policy_ == nullptr) touched.all = true;  // the first policy: everyone is decided on it
  box_.Retire(std::exchange(policy_, std::move(policy)));
  revision_ = revision;
  pending_.Merge(std::move(touched));
  ++snapshots_taken_;
  return true;
}

void Enforcer::Remember(const void* client, Client entry) {
  Forget(client);
  if (!entry.permissive) {
    ClientFacts& f = *entry.facts;
    f.cert_key = f.cert.key();
    by_principal_[PrincipalKey(f.principal_type, f.principal_id)].push_back(client);
    by_certificate_[f.cert_key].push_back(client);
    f.expiry = expiry_.emplace(f.cert.not_after, client);
  }
  clients_.emplace(client, std::move(entry));
}

void Enforcer::Forget(const void* client) {
  auto it = clients_.find(client);
  if (it == clients_.end()) return;
  const ClientFacts& f = *it->second.facts;
  if (!it->second.permissive) {
    const std::string principal = PrincipalKey(f.principal_type, f.principal_id);
    if (auto p = by_principal_.find(principal); p != by_principal_.end()) {
      EraseValue(p->second, client);
      if (p->second.empty()) by_principal_.erase(p);
    }
    if (auto p = by_certificate_.find(f.cert_key); p != by_certificate_.end()) {
      EraseValue(p->second, client);
      if (p->second.empty()) by_certificate_.erase(p);
    }
  }
  if (f.expiry) expiry_.erase(*f.expiry);
  clients_.erase(it);
}

Decision Enforcer::OnConnect(const void* client, const std::string& client_id, X509* cert) {
  TakeSnapshot();
  Forget(client);
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
    entry.facts->principal_id = client_id;
    Remember(client, std::move(entry));
    return decision;
  }
  ClientFacts& facts = *entry.facts;
  if (!ReadClientCertificate(*policy_, cert, &facts.cert, &decision)) return decision;
  decision = Decide(*policy_, facts.cert, client_id, clock_());
  if (!decision.allowed()) return decision;
  facts.principal_type = decision.principal_type;
  facts.principal_id = decision.principal_id;
  facts.rules = decision.rules;
  entry.rules = CompiledRules(facts.rules);
  Remember(client, std::move(entry));
  return decision;
}

const Enforcer::OfflineRules& Enforcer::OfflineRulesFor(absl::string_view client_id) {
  auto it = offline_.find(client_id);
  if (it != offline_.end() && it->second.generation == snapshots_taken_) return it->second.rules;
  if (it == offline_.end() && offline_.size() >= options_.max_offline_cached) offline_.clear();
  OfflineRules rules;
  const std::string id(client_id);
  if (const Device* device = policy_->FindDevice(id);
      device != nullptr && device->status == v1::DEVICE_STATUS_ACTIVE) {
    rules = policy_->ResolveRules(v1::PRINCIPAL_TYPE_DEVICE, id, device);
  } else if (const Identity* identity = policy_->FindIdentity(id);
             identity != nullptr && identity->status == v1::IDENTITY_STATUS_ACTIVE) {
    rules = policy_->ResolveRules(v1::PRINCIPAL_TYPE_IDENTITY, id, nullptr);
  }
  OfflineEntry& entry = offline_[id];
  entry.generation = snapshots_taken_;
  entry.rules = std::move(rules);
  return entry.rules;
}

bool Enforcer::Allowed(const void* client, absl::string_view client_id, acl::Operation op,
                       absl::string_view topic) {
  auto it = clients_.find(client);
  if (it != clients_.end() && it->second.client_id == client_id) {
    const Client& c = it->second;
    if (c.kicked) return false;
    if (c.permissive) return true;
    return c.rules.Evaluate(op, topic).allowed;
  }
  // Not connected: an offline session's queued message, decided by its client id (an
  // ACTIVE device of that comm-ID, else an ACTIVE identity of that name).
  if (policy_ == nullptr) return false;
  const OfflineRules& rules = OfflineRulesFor(client_id);
  return rules.has_value() && acl::Evaluate(*rules, op, topic).allowed;
}

void Enforcer::OnDisconnect(const void* client) { Forget(client); }

std::vector<Kick> Enforcer::OnTick() {
  std::vector<Kick> kicks;
  TakeSnapshot();
  if (policy_ == nullptr) return kicks;
  KickExpired(&kicks);
  if (!pending_.empty()) Recheck(&kicks);
  return kicks;
}

void Enforcer::KickExpired(std::vector<Kick>* kicks) {
  const int64_t now = absl::ToUnixSeconds(clock_());
  while (!expiry_.empty() && expiry_.begin()->first <= now) {
    Client& c = clients_.at(expiry_.begin()->second);
    expiry_.erase(expiry_.begin());
    c.facts->expiry.reset();
    if (c.kicked) continue;
    c.kicked = true;
    kicks->push_back(
        {c.client_id, absl::StrCat("certificate ", c.facts->cert.serial, " has expired")});
  }
}

void Enforcer::Recheck(std::vector<Kick>* kicks) {
  const Touched touched = std::move(pending_);
  pending_ = Touched();
  // 1. The clients the changes may concern.
  std::vector<const void*> candidates;
  if (touched.all) {
    candidates.reserve(clients_.size());
    for (const auto& [client, c] : clients_) candidates.push_back(client);
  } else {
    auto add = [&](const absl::flat_hash_map<std::string, std::vector<const void*>>& index,
                   const std::string& key) {
      if (auto it = index.find(key); it != index.end()) {
        candidates.insert(candidates.end(), it->second.begin(), it->second.end());
      }
    };
    for (const std::string& id : touched.devices) {
      add(by_principal_, PrincipalKey(v1::PRINCIPAL_TYPE_DEVICE, id));
    }
    for (const std::string& id : touched.identities) {
      add(by_principal_, PrincipalKey(v1::PRINCIPAL_TYPE_IDENTITY, id));
    }
    for (const std::string& key : touched.certificates) add(by_certificate_, key);
    std::sort(candidates.begin(), candidates.end());
    candidates.erase(std::unique(candidates.begin(), candidates.end()), candidates.end());
  }
  // 2. Each decided again.
  const absl::Time now = clock_();
  for (const void* client : candidates) {
    Client& c = clients_.at(client);
    if (c.kicked) continue;
    if (c.permissive) {
      // Admitted before any policy: reconnects under the policy now there is one.
      c.kicked = true;
      kicks->push_back({c.client_id, "the first policy arrived (admitted without one)"});
      continue;
    }
    Decision decision = Decide(*policy_, c.facts->cert, c.client_id, now);
    if (!decision.allowed()) {
      c.kicked = true;
      kicks->push_back({c.client_id, std::move(decision.message)});
    } else if (LosesRights(c.facts->rules, decision.rules)) {
      c.kicked = true;
      kicks->push_back({c.client_id, absl::StrCat("the ACL rules of ", c.facts->principal_id,
                                                  " lost a right (reconnects under the new "
                                                  "rules)")});
    } else {
      c.rules = CompiledRules(decision.rules);
      c.facts->rules = std::move(decision.rules);
    }
  }
}

}  // namespace fleetca::plugin
