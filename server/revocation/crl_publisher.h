#pragma once

// CrlPublisher builds each issuer's CRLs in the background, never on a request's path:
// a new CRL once its revocations changed (checked every round, about a second), and a
// fresh one at half its validity even when nothing changed. With several replicas one
// builds at a time (storage's builder lock); every replica serves the newest stored. The
// builder serves its CRL as soon as the CRL's number is committed, and a second thread
// stores the DER (StorePending): at a million entries, writing 45 MiB to PostgreSQL takes
// longer than the rest, and the next CRL need not wait for it.
//
// The builder keeps each issuer's entries in memory, encoded, and reads from PostgreSQL
// only the revocations changed since its last round (all of them at its first
// round, or when it fell behind the change log): at a million revoked certificates a round
// reads a few rows, not a million. The newest CRL of each issuer is kept in memory too, and
// read again only when a newer one was stored (by any replica).
//
// Delta CRLs (RFC 5280 5.2.4; on unless turned off): each complete CRL names its delta
// CRLs' URL (freshestCRL), and every round that finds changes issues a delta CRL listing
// what changed since that complete CRL (a released hold as removeFromCRL), a few entries
// however long the complete CRL is. A new complete CRL is built once its last one's cost
// (encoding, signing, storing) is under 1% of the time since: at once for small CRLs,
// every few minutes at a million entries, whose 45 MiB rewrites would otherwise take the
// CPU the revocations need. Without deltas every round with changes builds a complete CRL.

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/btree_map.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "pki/crl_builder.h"
#include "server/ca/certificate_authority.h"
#include "storage/crl_store.h"

namespace fleetca::revocation {

// A CRL as served: the stored one and the SHA-256 of its DER (hex), computed once.
struct PublishedCrl : storage::StoredCrl {
  std::string sha256_hex;
};

struct CrlOptions {
  absl::Duration validity = absl::Hours(24);  // nextUpdate - thisUpdate
  bool deltas = true;                         // publish delta CRLs
  // With deltas: the least time between two complete CRLs (besides their cost's rule).
  absl::Duration complete_min_interval;
};

class CrlPublisher {
 public:
  CrlPublisher(ca::CertificateAuthority& ca, storage::CrlStore& store, const CrlOptions& options)
      : ca_(ca),
        store_(store),
        validity_(options.validity),
        deltas_(options.deltas),
        complete_min_interval_(options.complete_min_interval) {}

  // RunOnce brings every active issuer's CRL up to date (issuers whose key is not here, an
  // offline root, are skipped). Returns how many CRLs it stored. One caller at a time.
  absl::StatusOr<int> RunOnce(absl::Time now);

  // StorePending stores in PostgreSQL, for the other replicas, the newest CRL of each issuer
  // and kind (complete, delta) built here and not stored yet (older ones are skipped:
  // replicas serve the newest),
  // waiting up to `wait` for one. An issuer's stores are spaced by three times the last
  // one's duration (at a million entries, about every 5 s), unless flush. One caller at a
  // time, on a thread of its own: RunOnce goes on building meanwhile. Returns how many it
  // stored; one that failed is tried again at the next call.
  absl::StatusOr<int> StorePending(absl::Duration wait, bool flush = false);

  // Latest: the newest complete (or delta) CRL of a fleetca issuer, DER included. NOT_FOUND
  // for an unknown issuer; FAILED_PRECONDITION for a pending one, or for a delta when delta
  // CRLs are off; UNAVAILABLE while its first CRL of that kind is not built. Thread-safe.
  absl::StatusOr<std::shared_ptr<const PublishedCrl>> Latest(const std::string& issuer_id,
                                                             bool delta = false);

  bool deltas() const { return deltas_; }

  // What this replica serves now, per issuer and kind (for the metrics): the CRLs it built
  // or has served; build_time is zero for one built by another replica.
  struct Served {
    std::string issuer_id;
    bool delta = false;
    int64_t crl_number = 0;
    int entries = 0;
    size_t bytes = 0;
    absl::Time this_update, next_update;
    absl::Duration build_time;
  };
  std::vector<Served> ServedNow();

 private:
  // An issuer's revoked certificates as the builder last read them, each encoded once as
  // its CRL entry, by serial.
  struct Entry {
    std::string der;  // pki::AppendCrlEntry
    absl::Time not_after;
  };
  struct Entries {
    int64_t changes = -1;  // the change count they reflect; -1: none read yet
    absl::btree_map<std::string, Entry> by_serial;
    size_t bytes = 0;  // of all the ders
    absl::Time next_expiry = absl::InfiniteFuture();  // no entry expires before
    // Delta CRLs: the serials changed since complete CRL number delta_base (0: none; the
    // next CRL is complete), each encoded as a delta lists it (as by_serial, or
    // removeFromCRL).
    int64_t delta_base = 0;
    absl::btree_map<std::string, std::string> delta;
    size_t delta_bytes = 0;
    absl::Duration complete_cost;  // encoding and signing the last complete CRL built here
  };
  static absl::Status Apply(storage::CrlEntryChanges& changes, absl::Time now, Entries& entries);
  absl::StatusOr<std::string> Build(const storage::Issuer& issuer, const pki::CrlTemplate& t,
                                    Entries& entries, int* listed);
  storage::CrlKind Decide(const storage::Issuer& issuer, const storage::CrlWork& work,
                          absl::Time now, Entries& held);

  ca::CertificateAuthority& ca_;
  storage::CrlStore& store_;
  const absl::Duration validity_;
  const bool deltas_;
  const absl::Duration complete_min_interval_;
  // CRLs are held and stored per issuer and kind (true: delta).
  using Key = std::pair<std::string, bool>;
  absl::flat_hash_map<std::string, Entries> entries_;  // RunOnce's alone
  absl::flat_hash_map<Key, int64_t> built_here_;  // RunOnce's alone: newest number

  absl::Mutex store_mu_;
  absl::flat_hash_map<Key, std::shared_ptr<const PublishedCrl>> unstored_
      ABSL_GUARDED_BY(store_mu_);
  absl::flat_hash_map<Key, int64_t> stored_here_ ABSL_GUARDED_BY(store_mu_);
  absl::flat_hash_map<Key, absl::Time> store_due_ ABSL_GUARDED_BY(store_mu_);
  absl::flat_hash_map<Key, absl::Duration> store_took_ ABSL_GUARDED_BY(store_mu_);
  // Whether this replica built CRL `number` and has not stored it yet.
  bool AwaitingStore(const Key& key, int64_t number);

  absl::Mutex mu_;
  absl::flat_hash_map<Key, std::shared_ptr<const PublishedCrl>> latest_ ABSL_GUARDED_BY(mu_);
  // Encoding and signing time of the CRL in latest_, when built here.
  absl::flat_hash_map<Key, absl::Duration> build_time_ ABSL_GUARDED_BY(mu_);
};

}  // namespace fleetca::revocation
