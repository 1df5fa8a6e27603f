#include "server/revocation/crl_publisher.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/logging.h"
#include "common/status_macros.h"

namespace fleetca::revocation {
namespace {

// How long a CRL numbered by another replica (or by this one, and since lost) may stay
// without its DER before this builder builds a newer one (storing 45 MiB takes seconds).
constexpr absl::Duration kUnstoredGrace = absl::Minutes(1);

// An issuer's next CRL is stored no sooner than kStoreSpacing times the last store's
// duration after it: at a million entries a store (45 MiB into PostgreSQL) takes a second
// or two of a database core, and back to back they starve the revocations themselves on a
// small machine. Small CRLs (milliseconds) are stored as soon as built.
constexpr int kStoreSpacing = 3;

// With delta CRLs, a new complete CRL waits until the last one's cost (encoding, signing
// and storing it) is at most 1/kCompleteCrlDuty of the time since it was issued.
constexpr int kCompleteCrlDuty = 100;

// RFC 5280 CRLReason removeFromCRL: a delta CRL's entry for a certificate no longer revoked.
constexpr int kRemoveFromCrl = 8;

}  // namespace
absl::Status CrlPublisher::Apply(storage::CrlEntryChanges& changes, absl::Time now,
                                 Entries& entries) {
  if (changes.full) {
    entries = Entries();  // no delta either: what changed since a complete CRL is unknown
    // In serial order, each entry goes in at the end of the btree: no search, and no
    // cache miss per level (at 1M entries in PostgreSQL's order, inserting took 5 s).
    std::sort(changes.entries.begin(), changes.entries.end(),
              [](const storage::CrlEntryRow& a, const storage::CrlEntryRow& b) {
                return a.serial < b.serial;
              });
  }
  // A changed serial's entry in the next delta CRL: the same as in a complete CRL, or
  // removeFromCRL (dated now) when it is no longer revoked.
  auto set_delta = [&](const std::string& serial, std::string der) {
    if (entries.delta_base == 0) return;
    std::string& held = entries.delta[serial];
    entries.delta_bytes += der.size() - held.size();
    held = std::move(der);
  };
  auto erase = [&](const std::string& serial) {
    auto it = entries.by_serial.find(serial);
    if (it == entries.by_serial.end()) return;
    entries.bytes -= it->second.der.size();
    entries.by_serial.erase(it);
  };
  for (const std::string& serial : changes.removed) {
    erase(serial);
    if (entries.delta_base == 0) continue;
    pki::CrlEntry remove;
    remove.serial = serial;
    remove.revocation_date = now;
    remove.reason = kRemoveFromCrl;
    std::string der;
    RETURN_IF_ERROR(pki::AppendCrlEntry(remove, &der));
    set_delta(serial, std::move(der));
  }
  for (const storage::CrlEntryRow& row : changes.entries) {
    if (!changes.full) erase(row.serial);
    Entry e;
    e.not_after = row.not_after;
    RETURN_IF_ERROR(pki::AppendCrlEntry(
        {row.serial, row.revocation_date, row.reason, row.invalidity_date, row.not_after},
        &e.der));
    entries.bytes += e.der.size();
    entries.next_expiry = std::min(entries.next_expiry, e.not_after);
    set_delta(row.serial, e.der);
    if (changes.full) {
      entries.by_serial.emplace_hint(entries.by_serial.end(), row.serial, std::move(e));
    } else {
      entries.by_serial.emplace(row.serial, std::move(e));
    }
  }
  entries.changes = changes.changes;
  return absl::OkStatus();
}

absl::StatusOr<std::string> CrlPublisher::Build(const storage::Issuer& issuer,
                                                const pki::CrlTemplate& t, Entries& entries,
                                                int* listed) {
  ASSIGN_OR_RETURN(pki::X509Ptr cert, pki::CertificateFromDer(issuer.certificate_der));
  if (t.delta_base_crl_number) {
    *listed = static_cast<int>(entries.delta.size());
    return pki::BuildCrlDerFromEncoded(
        t, entries.delta_bytes,
        [&](std::string* out) {
          for (const auto& [serial, der] : entries.delta) out->append(der);
        },
        cert.get(), ca_.key_store(), issuer.id);
  }
  // Certificates expired by thisUpdate leave the CRL, and the entries held, for good (a
  // pass over them only when one has expired).
  if (entries.next_expiry <= t.this_update) {
    entries.next_expiry = absl::InfiniteFuture();
    for (auto it = entries.by_serial.begin(); it != entries.by_serial.end();) {
      if (it->second.not_after <= t.this_update) {
        entries.bytes -= it->second.der.size();
        it = entries.by_serial.erase(it);
        continue;
      }
      entries.next_expiry = std::min(entries.next_expiry, it->second.not_after);
      ++it;
    }
  }
  *listed = static_cast<int>(entries.by_serial.size());
  return pki::BuildCrlDerFromEncoded(
      t, entries.bytes,
      [&](std::string* out) {
        for (const auto& [serial, e] : entries.by_serial) out->append(e.der);
      },
      cert.get(), ca_.key_store(), issuer.id);
}

storage::CrlKind CrlPublisher::Decide(const storage::Issuer& issuer, const storage::CrlWork& work,
                                      absl::Time now, Entries& held) {
  using storage::CrlKind;
  // Whether a CRL is due again: past half its validity, or numbered but its DER never
  // stored (by a replica that is gone, or lost with the unlogged crl_ders after a database
  // crash or failover: the other replicas cannot serve it).
  auto stale = [&](const storage::StoredCrl& crl, bool delta) {
    if (!crl.der_stored && !AwaitingStore({issuer.id, delta}, crl.crl_number) &&
        now - crl.this_update > kUnstoredGrace) {
      return true;
    }
    return now >= crl.this_update + (crl.next_update - crl.this_update) / 2;
  };
  if (!work.latest) return CrlKind::kComplete;
  const storage::StoredCrl& complete = *work.latest;
  const bool changed = work.changes != complete.changes;
  if (stale(complete, false)) return CrlKind::kComplete;
  if (!deltas_) return changed ? CrlKind::kComplete : CrlKind::kNone;

  // Deltas are built against the newest complete CRL only. Entries held at exactly its
  // change count (it was built from the same revocations, by any replica) start its delta
  // empty; else, once something changed, a new complete CRL.
  if (held.delta_base != complete.crl_number) {
    if (held.changes != complete.changes) return changed ? CrlKind::kComplete : CrlKind::kNone;
    held.delta_base = complete.crl_number;
    held.delta.clear();
    held.delta_bytes = 0;
  }
  if (changed) {
    absl::Duration cost = held.complete_cost;
    {
      absl::MutexLock lock(&store_mu_);
      auto took = store_took_.find({issuer.id, false});
      if (took != store_took_.end()) cost += took->second;
    }
    if (now - complete.this_update >= std::max(complete_min_interval_, kCompleteCrlDuty * cost)) {
      return CrlKind::kComplete;
    }
  }
  // A delta against the newest complete CRL, listing every change since it.
  const std::optional<storage::StoredCrl>& delta = work.latest_delta;
  if (!delta || delta->base_crl_number != complete.crl_number || delta->changes != work.changes ||
      stale(*delta, true)) {
    return CrlKind::kDelta;
  }
  return CrlKind::kNone;
}

absl::StatusOr<int> CrlPublisher::RunOnce(absl::Time now) {
  ASSIGN_OR_RETURN(std::vector<storage::Issuer> issuers, ca_.ListIssuers());
  int stored = 0;
  absl::Status first_error;
  for (const storage::Issuer& issuer : issuers) {
    if (issuer.state != storage::IssuerState::kActive || issuer.certificate_der.empty()) continue;
    if (issuer.not_after.has_value() && *issuer.not_after <= now) continue;
    if (!ca_.key_store().SignatureAlgorithm(issuer.id).ok()) continue;  // no key here
    Entries& held = entries_[issuer.id];
    storage::CrlKind kind = storage::CrlKind::kNone;
    int64_t base = 0;
    auto decide = [&](const storage::CrlWork& work) {
      kind = Decide(issuer, work, now, held);
      base = work.latest ? work.latest->crl_number : 0;
      return kind;
    };
    // What the log line of a new CRL says: its number and size, and where the time went
    // (reading the changes, applying them, encoding and signing, serving, storing).
    auto crl = std::make_shared<PublishedCrl>();
    bool full = false;
    size_t changed = 0;
    absl::Duration read_time, apply_time, build_time;
    const absl::Time start = absl::Now();
    auto build = [&](int64_t number, storage::CrlEntryChanges& changes)
        -> absl::StatusOr<storage::CrlStore::Built> {
      const absl::Time read_done = absl::Now();
      read_time = read_done - start;
      full = changes.full;
      changed = changes.entries.size() + changes.removed.size();
      pki::CrlTemplate t;
      t.crl_number = static_cast<uint64_t>(number);
      t.this_update = absl::FromUnixSeconds(absl::ToUnixSeconds(now));
      t.next_update = t.this_update + validity_;
      if (absl::Status st = Apply(changes, t.this_update, held); !st.ok()) {
        held = Entries();  // read everything again next time
        return st;
      }
      if (kind == storage::CrlKind::kDelta) {
        if (held.delta_base != base) {  // a full read: no delta known
          return absl::InternalError("no delta held against the newest complete CRL");
        }
        t.delta_base_crl_number = static_cast<uint64_t>(base);
      } else if (deltas_) {
        t.freshest_crl_url = ca_.DeltaCrlUrl(issuer.id);
      }
      const absl::Time build_start = absl::Now();
      apply_time = build_start - read_done;
      ASSIGN_OR_RETURN(crl->der, Build(issuer, t, held, &crl->entries));
      crl->issuer_id = issuer.id;
      crl->crl_number = number;
      crl->base_crl_number = kind == storage::CrlKind::kDelta ? base : 0;
      crl->this_update = t.this_update;
      crl->next_update = t.next_update;
      crl->changes = changes.changes;
      build_time = absl::Now() - build_start;
      if (kind == storage::CrlKind::kComplete) {
        // Deltas from now on are against this one.
        held.complete_cost = build_time;
        held.delta_base = deltas_ ? number : 0;
        held.delta.clear();
        held.delta_bytes = 0;
      }
      return storage::CrlStore::Built{crl->entries, crl->this_update, crl->next_update};
    };
    auto done = store_.BuildIfNeeded(issuer.id, held.changes, decide, build);
    if (!done.ok()) {
      if (first_error.ok()) first_error = done.status();
      continue;
    }
    if (!*done) continue;
    ++stored;
    const Key key{issuer.id, crl->base_crl_number != 0};
    built_here_[key] = crl->crl_number;
    // Its number is committed: serve it here now, and have it stored for the other replicas.
    crl->sha256_hex = pki::Sha256Hex(crl->der);
    {
      absl::MutexLock lock(&mu_);
      latest_[key] = crl;
      build_time_[key] = build_time;
    }
    {
      absl::MutexLock lock(&store_mu_);
      unstored_[key] = crl;
    }
    auto ms = [](absl::Duration d) { return std::to_string(absl::ToInt64Milliseconds(d)); };
    LogInfo("CRL published", {{"issuer", issuer.id},
                              {"crl_number", std::to_string(crl->crl_number)},
                              {"kind", key.second ? "delta" : "complete"},
                              {"entries", std::to_string(crl->entries)},
                              {"bytes", std::to_string(crl->der.size())},
                              {"read", full ? "all" : absl::StrCat(changed, " changed")},
                              {"served_ms", ms(absl::Now() - start)},
                              {"read_ms", ms(read_time)},
                              {"apply_ms", ms(apply_time)},
                              {"build_ms", ms(build_time)}});
  }
  if (!first_error.ok()) return first_error;
  return stored;
}

bool CrlPublisher::AwaitingStore(const Key& key, int64_t number) {
  auto built = built_here_.find(key);
  if (built == built_here_.end() || built->second != number) return false;
  absl::MutexLock lock(&store_mu_);
  auto stored = stored_here_.find(key);
  return stored == stored_here_.end() || stored->second < number;
}

absl::StatusOr<int> CrlPublisher::StorePending(absl::Duration wait, bool flush) {
  const absl::Time deadline = absl::Now() + wait;
  absl::flat_hash_map<Key, std::shared_ptr<const PublishedCrl>> batch;
  {
    absl::MutexLock lock(&store_mu_);
    for (;;) {
      store_mu_.AwaitWithDeadline(
          absl::Condition(
              +[](absl::flat_hash_map<Key, std::shared_ptr<const PublishedCrl>>* m) {
                return !m->empty();
              },
              &unstored_),
          deadline);
      // The issuers whose next store is due; the others wait their turn.
      const absl::Time now = absl::Now();
      absl::Time next = deadline;
      for (auto it = unstored_.begin(); it != unstored_.end();) {
        auto due = store_due_.find(it->first);
        if (flush || due == store_due_.end() || due->second <= now) {
          batch.insert(unstored_.extract(it++));
          continue;
        }
        next = std::min(next, due->second);
        ++it;
      }
      if (!batch.empty() || now >= deadline) break;
      // Sleep until the first is due (a newer CRL only replaces the one waiting).
      store_mu_.AwaitWithDeadline(absl::Condition(+[](void*) { return false; }, nullptr), next);
    }
  }
  int stored = 0;
  absl::Status first_error;
  for (auto& [key, crl] : batch) {
    const absl::Time start = absl::Now();
    if (absl::Status st = store_.StoreDer(key.first, crl->crl_number, crl->der); !st.ok()) {
      if (first_error.ok()) first_error = st;
      absl::MutexLock lock(&store_mu_);
      unstored_.try_emplace(key, crl);  // again next time, unless a newer one came
      continue;
    }
    ++stored;
    const absl::Time end = absl::Now();
    {
      absl::MutexLock lock(&store_mu_);
      int64_t& last = stored_here_[key];
      last = std::max(last, crl->crl_number);
      store_due_[key] = end + kStoreSpacing * (end - start);
      store_took_[key] = end - start;
    }
    LogInfo("CRL stored", {{"issuer", key.first},
                           {"crl_number", std::to_string(crl->crl_number)},
                           {"kind", key.second ? "delta" : "complete"},
                           {"store_ms", std::to_string(absl::ToInt64Milliseconds(end - start))}});
  }
  if (!first_error.ok()) return first_error;
  return stored;
}

absl::StatusOr<std::shared_ptr<const PublishedCrl>> CrlPublisher::Latest(
    const std::string& issuer_id, bool delta) {
  if (delta && !deltas_) {
    return absl::FailedPreconditionError(
        "delta: delta CRLs are turned off on this server (--crl_deltas)");
  }
  ASSIGN_OR_RETURN(storage::Issuer issuer, ca_.GetIssuer(issuer_id));
  if (issuer.state == storage::IssuerState::kPending) {
    return absl::FailedPreconditionError(
        absl::StrCat("issuer_id: \"", issuer_id, "\" is pending: it has no CRL"));
  }
  const char* kind = delta ? "delta CRL" : "CRL";
  auto unavailable = [&] {
    return absl::UnavailableError(absl::StrCat("the first ", kind, " of \"", issuer_id,
                                               "\" is not built yet: retry shortly"));
  };
  const Key key{issuer_id, delta};
  // The newest stored CRL's number first (no DER): the one held is served while it is at
  // least as new (the builder's own is held before it is stored, its first one included).
  auto head = store_.Latest(issuer_id, delta, /*with_der=*/false);
  if (!head.ok() && head.status().code() != absl::StatusCode::kNotFound) return head.status();
  {
    absl::MutexLock lock(&mu_);
    auto it = latest_.find(key);
    if (it != latest_.end() && (!head.ok() || it->second->crl_number >= head->crl_number)) {
      return it->second;
    }
  }
  if (!head.ok()) return unavailable();
  auto crl = store_.Latest(issuer_id, delta, /*with_der=*/true);
  if (crl.status().code() == absl::StatusCode::kNotFound) return unavailable();
  if (!crl.ok()) return crl.status();
  auto shared = std::make_shared<PublishedCrl>();
  static_cast<storage::StoredCrl&>(*shared) = *std::move(crl);
  shared->sha256_hex = pki::Sha256Hex(shared->der);
  absl::MutexLock lock(&mu_);
  std::shared_ptr<const PublishedCrl>& held = latest_[key];
  if (held == nullptr || held->crl_number < shared->crl_number) {
    held = shared;
    build_time_.erase(key);
  }
  return held;
}

std::vector<CrlPublisher::Served> CrlPublisher::ServedNow() {
  std::vector<Served> out;
  absl::MutexLock lock(&mu_);
  out.reserve(latest_.size());
  for (const auto& [key, crl] : latest_) {
    Served& s = out.emplace_back();
    s.issuer_id = key.first;
    s.delta = key.second;
    s.crl_number = crl->crl_number;
    s.entries = crl->entries;
    s.bytes = crl->der.size();
    s.this_update = crl->this_update;
    s.next_update = crl->next_update;
    auto t = build_time_.find(key);
    if (t != build_time_.end()) s.build_time = t->second;
  }
  return out;
}

}  // namespace fleetca::revocation
