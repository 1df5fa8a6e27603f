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

}  // namespace
absl::Status CrlPublisher::Apply(storage::CrlEntryChanges& changes, Entries& entries) {
  if (changes.full) {
    entries = Entries();
    // In serial order, each entry goes in at the end of the btree: no search, and no
    // cache miss per level (at 1M entries in PostgreSQL's order, inserting took 5 s).
    std::sort(changes.entries.begin(), changes.entries.end(),
              [](const storage::CrlEntryRow& a, const storage::CrlEntryRow& b) {
                return a.serial < b.serial;
              });
  }
  auto erase = [&](const std::string& serial) {
    auto it = entries.by_serial.find(serial);
    if (it == entries.by_serial.end()) return;
    entries.bytes -= it->second.der.size();
    entries.by_serial.erase(it);
  };
  for (const std::string& serial : changes.removed) erase(serial);
  for (const storage::CrlEntryRow& row : changes.entries) {
    if (!changes.full) erase(row.serial);
    Entry e;
    e.not_after = row.not_after;
    RETURN_IF_ERROR(pki::AppendCrlEntry(
        {row.serial, row.revocation_date, row.reason, row.invalidity_date, row.not_after},
        &e.der));
    entries.bytes += e.der.size();
    entries.next_expiry = std::min(entries.next_expiry, e.not_after);
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
  ASSIGN_OR_RETURN(pki::X509Ptr cert, pki::CertificateFromDer(issuer.certificate_der));
  return pki::BuildCrlDerFromEncoded(
      t, entries.bytes,
      [&](std::string* out) {
        for (const auto& [serial, e] : entries.by_serial) out->append(e.der);
      },
      cert.get(), ca_.key_store(), issuer.id);
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
    auto decide = [&](const storage::CrlWork& work) {
      if (!work.latest) return true;
      const storage::StoredCrl& latest = *work.latest;
      if (work.changes != latest.changes) return true;
      // Numbered but its DER not stored: by a replica that is gone, or lost with the
      // unlogged crl_ders (a database crash or failover). The others cannot serve it.
      if (!latest.der_stored && !AwaitingStore(issuer.id, latest.crl_number) &&
          now - latest.this_update > kUnstoredGrace) {
        return true;
      }
      return now >= latest.this_update + (latest.next_update - latest.this_update) / 2;
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
      if (absl::Status st = Apply(changes, held); !st.ok()) {
        held = Entries();  // read everything again next time
        return st;
      }
      const absl::Time build_start = absl::Now();
      apply_time = build_start - read_done;
      pki::CrlTemplate t;
      t.crl_number = static_cast<uint64_t>(number);
      t.this_update = absl::FromUnixSeconds(absl::ToUnixSeconds(now));
      t.next_update = t.this_update + validity_;
      ASSIGN_OR_RETURN(crl->der, Build(issuer, t, held, &crl->entries));
      crl->issuer_id = issuer.id;
      crl->crl_number = number;
      crl->this_update = t.this_update;
      crl->next_update = t.next_update;
      crl->changes = changes.changes;
      build_time = absl::Now() - build_start;
      return storage::CrlStore::Built{crl->entries, crl->this_update, crl->next_update};
    };
    auto done = store_.BuildIfNeeded(issuer.id, held.changes, decide, build);
    if (!done.ok()) {
      if (first_error.ok()) first_error = done.status();
      continue;
    }
    if (!*done) continue;
    ++stored;
    built_here_[issuer.id] = crl->crl_number;
    // Its number is committed: serve it here now, and have it stored for the other replicas.
    crl->sha256_hex = pki::Sha256Hex(crl->der);
    {
      absl::MutexLock lock(&mu_);
      latest_[issuer.id] = crl;
    }
    {
      absl::MutexLock lock(&store_mu_);
      unstored_[issuer.id] = crl;
    }
    auto ms = [](absl::Duration d) { return std::to_string(absl::ToInt64Milliseconds(d)); };
    LogInfo("CRL published", {{"issuer", issuer.id},
                              {"crl_number", std::to_string(crl->crl_number)},
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

bool CrlPublisher::AwaitingStore(const std::string& issuer_id, int64_t number) {
  auto built = built_here_.find(issuer_id);
  if (built == built_here_.end() || built->second != number) return false;
  absl::MutexLock lock(&store_mu_);
  auto stored = stored_here_.find(issuer_id);
  return stored == stored_here_.end() || stored->second < number;
}

absl::StatusOr<int> CrlPublisher::StorePending(absl::Duration wait, bool flush) {
  const absl::Time deadline = absl::Now() + wait;
  absl::flat_hash_map<std::string, std::shared_ptr<const PublishedCrl>> batch;
  {
    absl::MutexLock lock(&store_mu_);
    for (;;) {
      store_mu_.AwaitWithDeadline(
          absl::Condition(
              +[](absl::flat_hash_map<std::string, std::shared_ptr<const PublishedCrl>>* m) {
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
  for (auto& [issuer_id, crl] : batch) {
    const absl::Time start = absl::Now();
    if (absl::Status st = store_.StoreDer(issuer_id, crl->crl_number, crl->der); !st.ok()) {
      if (first_error.ok()) first_error = st;
      absl::MutexLock lock(&store_mu_);
      unstored_.try_emplace(issuer_id, crl);  // again next time, unless a newer one came
      continue;
    }
    ++stored;
    const absl::Time end = absl::Now();
    {
      absl::MutexLock lock(&store_mu_);
      int64_t& last = stored_here_[issuer_id];
      last = std::max(last, crl->crl_number);
      store_due_[issuer_id] = end + kStoreSpacing * (end - start);
    }
    LogInfo("CRL stored", {{"issuer", issuer_id},
                           {"crl_number", std::to_string(crl->crl_number)},
                           {"store_ms", std::to_string(absl::ToInt64Milliseconds(end - start))}});
  }
  if (!first_error.ok()) return first_error;
  return stored;
}

absl::StatusOr<std::shared_ptr<const PublishedCrl>> CrlPublisher::Latest(
    const std::string& issuer_id) {
  ASSIGN_OR_RETURN(storage::Issuer issuer, ca_.GetIssuer(issuer_id));
  if (issuer.state == storage::IssuerState::kPending) {
    return absl::FailedPreconditionError(
        absl::StrCat("issuer_id: \"", issuer_id, "\" is pending: it has no CRL"));
  }
  auto unavailable = [&] {
    return absl::UnavailableError(
        absl::StrCat("the first CRL of \"", issuer_id, "\" is not built yet: retry shortly"));
  };
  // The newest stored CRL's number first (no DER): the one held is served while it is at
  // least as new (the builder's own is held before it is stored, its first one included).
  auto head = store_.Latest(issuer_id, /*with_der=*/false);
  if (!head.ok() && head.status().code() != absl::StatusCode::kNotFound) return head.status();
  {
    absl::MutexLock lock(&mu_);
    auto it = latest_.find(issuer_id);
    if (it != latest_.end() && (!head.ok() || it->second->crl_number >= head->crl_number)) {
      return it->second;
    }
  }
  if (!head.ok()) return unavailable();
  auto crl = store_.Latest(issuer_id, /*with_der=*/true);
  if (crl.status().code() == absl::StatusCode::kNotFound) return unavailable();
  if (!crl.ok()) return crl.status();
  auto shared = std::make_shared<PublishedCrl>();
  static_cast<storage::StoredCrl&>(*shared) = *std::move(crl);
  shared->sha256_hex = pki::Sha256Hex(shared->der);
  absl::MutexLock lock(&mu_);
  std::shared_ptr<const PublishedCrl>& held = latest_[issuer_id];
  if (held == nullptr || held->crl_number < shared->crl_number) held = shared;
  return held;
}

}  // namespace fleetca::revocation
