#include "server/api/sync_feed.h"

#include <algorithm>
#include <future>
#include <map>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "common/status_macros.h"
#include "pki/certificate_builder.h"
#include "pki/openssl_util.h"
#include "server/api/acl_service.h"
#include "server/api/certificate_authority_service.h"
#include "server/api/device_registry_service.h"
#include "server/api/identity_service.h"
#include "server/api/proto_convert.h"

namespace fleetca::api {
namespace {

using storage::SyncKind;
using storage::SyncObject;

v1::CertificateStatus ToProtoStatus(storage::CertificateStatus s) {
  switch (s) {
    case storage::CertificateStatus::kRevoked:
      return v1::CERTIFICATE_STATUS_REVOKED;
    case storage::CertificateStatus::kOnHold:
      return v1::CERTIFICATE_STATUS_ON_HOLD;
    default:
      return v1::CERTIFICATE_STATUS_ACTIVE;
  }
}

bool Wanted(const WatchOptions& options, SyncKind kind) {
  return options.kinds.empty() || options.kinds.count(kind) > 0;
}

// Outbox gathers changes into SyncChanges messages of bounded size; a revision's changes
// stay in one message unless they alone pass the bound (then `continued` links them).
class Outbox {
 public:
  // snapshot_revision >= 0: a snapshot's contents, every message at that revision.
  Outbox(WatchSink& sink, const WatchOptions& options, int64_t snapshot_revision = -1)
      : sink_(sink), options_(options), snapshot_revision_(snapshot_revision) {}

  // Add queues a change; false when the sink broke.
  bool Add(const v1::SyncChange& change, int64_t revision, size_t bytes) {
    const bool same_revision = snapshot_revision_ < 0 && revision == last_revision_;
    if (!pending_.changes().empty() && !same_revision &&
        (bytes_ + bytes > options_.max_message_bytes ||
         static_cast<size_t>(pending_.changes_size()) >= options_.max_message_changes)) {
      if (!Flush(false)) return false;
    } else if (!pending_.changes().empty() && same_revision &&
               (bytes_ + bytes > 4 * options_.max_message_bytes ||
                static_cast<size_t>(pending_.changes_size()) >= 4 * options_.max_message_changes)) {
      // One large transaction: split it, telling the consumer more of it follows.
      if (!Flush(true)) return false;
    }
    *pending_.add_changes() = change;
    bytes_ += bytes;
    last_revision_ = revision;
    ++count_;
    return true;
  }

  // Flush sends what is queued.
  bool Flush(bool continued) {
    if (pending_.changes().empty()) return true;
    pending_.set_revision(snapshot_revision_ >= 0 ? snapshot_revision_ : last_revision_);
    pending_.set_continued(continued);
    v1::WatchResponse message;
    message.mutable_changes()->Swap(&pending_);
    pending_.Clear();
    bytes_ = 0;
    sent_ = true;
    return sink_.Write(message);
  }

  int64_t count() const { return count_; }
  // TakeSent: whether anything was written since the last call.
  bool TakeSent() { return std::exchange(sent_, false); }

 private:
  WatchSink& sink_;
  const WatchOptions& options_;
  v1::SyncChanges pending_;
  size_t bytes_ = 0;
  const int64_t snapshot_revision_;
  int64_t last_revision_ = 0;
  int64_t count_ = 0;
  bool sent_ = false;
};

// Revisions a stream reads from the database per statement when the window has moved past it.
constexpr int kCatchUpRevisions = 1000;

absl::Status Broken() { return absl::OkStatus(); }  // the broker went away: nothing to say

// SendSnapshot streams every object of the wanted kinds, a page at a time (the server
// holds one page), between snapshot_begin and snapshot_end; returns its revision.
absl::StatusOr<int64_t> SendSnapshot(SyncFeed& feed, const WatchOptions& options,
                                     v1::SnapshotReason reason, WatchSink& sink, bool* broken) {
  // The head first: every object read next reflects at least it.
  ASSIGN_OR_RETURN(const int64_t revision, feed.log().Head());
  v1::WatchResponse begin;
  begin.mutable_snapshot_begin()->set_revision(revision);
  begin.mutable_snapshot_begin()->set_reason(reason);
  if (!sink.Write(begin)) {
    *broken = true;
    return revision;
  }
  Outbox out(sink, options, revision);
  for (SyncKind kind : storage::kAllSyncKinds) {
    if (!Wanted(options, kind)) continue;
    // The next page is read while this one is sent: the database and the stream overlap.
    auto read = [&feed, kind, size = options.snapshot_page](std::string after) {
      return std::async(std::launch::async, [&feed, kind, size, after = std::move(after)] {
        return feed.store().List(kind, after, size);
      });
    };
    std::future<absl::StatusOr<storage::SyncPage>> next = read("");
    for (;;) {
      absl::StatusOr<storage::SyncPage> got = next.get();
      if (!got.ok()) return got.status();
      const storage::SyncPage page = *std::move(got);
      const bool last = page.next.empty();
      if (!last) next = read(page.next);
      // (An early return below waits for the page in flight: a future from std::async
      // joins its thread when destroyed.)
      if (feed.shutting_down()) return absl::UnavailableError("the server is shutting down");
      if (sink.Cancelled()) {
        *broken = true;
        return revision;
      }
      for (const SyncObject& object : page.objects) {
        v1::SyncChange change;
        ToSyncChange(object, 0, &change);
        if (!out.Add(change, 0, change.ByteSizeLong())) {
          *broken = true;
          return revision;
        }
      }
      if (last) break;
    }
  }
  if (!out.Flush(false)) {
    *broken = true;
    return revision;
  }
  v1::WatchResponse end;
  end.mutable_snapshot_end()->set_revision(revision);
  end.mutable_snapshot_end()->set_object_count(out.count());
  if (!sink.Write(end)) *broken = true;
  return revision;
}

}  // namespace

void ToSyncChange(const SyncObject& object, int64_t revision, v1::SyncChange* out) {
  out->set_revision(revision);
  out->set_deleted(object.deleted);
  const bool full = !object.deleted;
  switch (object.kind) {
    case SyncKind::kIssuer: {
      v1::SyncIssuer* i = out->mutable_issuer();
      i->set_issuer_id(object.key);
      if (const auto* v = std::get_if<storage::SyncIssuer>(&object.value); v != nullptr && full) {
        i->set_purpose(ToProtoPurpose(v->purpose));
        i->set_external(v->external);
        i->set_enabled(v->enabled);
        i->set_accept_unregistered_certificates(v->accept_unregistered);
        i->set_certificate_pem(pki::DerToPem(v->certificate_der, "CERTIFICATE"));
        i->set_sha256_fingerprint(pki::Sha256Hex(v->certificate_der));
        if (v->not_after) SetTimestamp(*v->not_after, i->mutable_not_after());
      }
      break;
    }
    case SyncKind::kCrl: {
      v1::SyncCrl* c = out->mutable_crl();
      c->set_issuer_id(object.key);
      if (const auto* v = std::get_if<storage::SyncCrl>(&object.value); v != nullptr && full) {
        c->set_crl_number(v->crl_number);
        SetTimestamp(v->this_update, c->mutable_this_update());
        SetTimestamp(v->next_update, c->mutable_next_update());
        c->set_crl_der(v->der);
        c->set_imported(v->imported);
      }
      break;
    }
    case SyncKind::kDevice: {
      v1::SyncDevice* d = out->mutable_device();
      d->set_comm_id(object.key);
      if (const auto* v = std::get_if<storage::SyncDevice>(&object.value); v != nullptr && full) {
        d->set_status(ToProtoStatus(v->status));
        for (const std::string& g : v->groups) d->add_groups(g);
        for (const auto& [name, value] : v->attributes) (*d->mutable_attributes())[name] = value;
      }
      break;
    }
    case SyncKind::kIdentity: {
      v1::SyncIdentity* i = out->mutable_identity();
      i->set_name(object.key);
      if (const auto* v = std::get_if<storage::SyncIdentity>(&object.value); v != nullptr && full) {
        i->set_role(ToProtoRole(v->role));
        i->set_status(v->active ? v1::IDENTITY_STATUS_ACTIVE : v1::IDENTITY_STATUS_REVOKED);
      }
      break;
    }
    case SyncKind::kCertificate: {
      v1::SyncCertificate* c = out->mutable_certificate();
      const auto* v = std::get_if<storage::SyncCertificate>(&object.value);
      if (v == nullptr) {  // the key only: "<serial hex>", or "<issuer>/<serial hex>"
        const size_t slash = object.key.find('/');
        if (slash == std::string::npos) {
          c->set_serial(object.key);
        } else {
          c->set_issuer_id(object.key.substr(0, slash));
          c->set_serial(object.key.substr(slash + 1));
        }
        break;
      }
      c->set_issuer_id(v->issuer_id);
      c->set_serial(pki::SerialToHex(v->serial));
      if (!full) break;
      if (v->from_imported_crl_only) {  // known only from a customer CRL
        c->set_status(v1::CERTIFICATE_STATUS_REVOKED);
        if (v->reason >= 0) c->set_revocation_reason(static_cast<v1::RevocationReason>(v->reason));
        break;
      }
      c->set_sha256_fingerprint(pki::SerialToHex(v->fingerprint));
      v1::Principal* p = c->mutable_principal();
      if (v->kind == storage::CertificateKind::kIdentity) {
        p->set_type(v1::PRINCIPAL_TYPE_IDENTITY);
        p->set_id(v->identity_name);
      } else {
        p->set_type(v1::PRINCIPAL_TYPE_DEVICE);
        p->set_id(v->comm_id);
      }
      c->set_status(ToProtoStatus(v->status));
      if (v->reason >= 0 && v->status != storage::CertificateStatus::kIssued) {
        c->set_revocation_reason(static_cast<v1::RevocationReason>(v->reason));
      }
      SetTimestamp(v->not_after, c->mutable_not_after());
      break;
    }
    case SyncKind::kAclProfile: {
      v1::SyncAclProfile* p = out->mutable_acl_profile();
      p->set_name(object.key);
      if (const auto* v = std::get_if<storage::AclProfileRow>(&object.value); v != nullptr && full) {
        for (const storage::AclRuleRow& r : v->rules) {
          v1::AclRule* rule = p->add_rules();
          rule->set_topic_pattern(r.pattern);
          rule->set_access(ToProto(r.access));
        }
      }
      break;
    }
    case SyncKind::kAclAssignment: {
      v1::AclAssignment* a = out->mutable_acl_assignment();
      if (const auto* v = std::get_if<storage::AclAssignmentRow>(&object.value); v != nullptr) {
        ToProto(*v, a);
        if (!full) a->clear_create_time();
      }
      break;
    }
  }
}

absl::StatusOr<ChangeBatch> ReadChanges(storage::ChangeLogReader& log, storage::SyncStore& store,
                                        int64_t after, int max_revisions) {
  ChangeBatch batch;
  batch.revision = after;
  ASSIGN_OR_RETURN(std::vector<storage::ChangeRow> rows, log.After(after, max_revisions));
  if (rows.empty()) return batch;
  batch.revision = rows.back().revision;
  // Each changed object read once (one statement per kind), then one change per change-log
  // key, at its revision: what a replica sends never depends on how it batched its reads
  // (a key changed twice is sent twice, with the state read, at both revisions).
  std::map<SyncKind, std::vector<std::string>> keys;
  absl::flat_hash_map<std::pair<int, std::string>, bool> wanted;
  for (const storage::ChangeRow& row : rows) {
    const std::optional<SyncKind> kind = storage::SyncKindOfChange(row.entity_type);
    if (kind && wanted.try_emplace({static_cast<int>(*kind), row.key}, true).second) {
      keys[*kind].push_back(row.key);
    }
  }
  absl::flat_hash_map<std::pair<int, std::string>, SyncObject> objects;
  for (auto& [kind, kind_keys] : keys) {
    ASSIGN_OR_RETURN(std::vector<SyncObject> read, store.Read(kind, kind_keys));
    for (SyncObject& o : read) {
      std::pair<int, std::string> k{static_cast<int>(kind), o.key};
      objects.emplace(std::move(k), std::move(o));
    }
  }
  for (const storage::ChangeRow& row : rows) {
    const std::optional<SyncKind> kind = storage::SyncKindOfChange(row.entity_type);
    if (!kind) continue;
    auto it = objects.find(std::pair<int, std::string>{static_cast<int>(*kind), row.key});
    if (it == objects.end()) continue;  // not an object brokers see
    auto change = std::make_shared<FeedChange>();
    change->revision = row.revision;
    change->kind = *kind;
    ToSyncChange(it->second, row.revision, &change->message);
    change->bytes = change->message.ByteSizeLong();
    batch.changes.push_back(std::move(change));
  }
  return batch;
}

SyncFeed::SyncFeed(storage::ChangeLogReader& log, storage::SyncStore& store, Options options)
    : log_(log), store_(store), options_(options) {}

absl::StatusOr<int> SyncFeed::Poll() {
  int64_t from;
  {
    absl::MutexLock lock(&mu_);
    from = head_;
    if (!started_) {
      ASSIGN_OR_RETURN(from, log_.Head());
      start_ = head_ = from;
      started_ = true;
    }
  }
  int added = 0;
  for (;;) {
    ASSIGN_OR_RETURN(ChangeBatch batch, ReadChanges(log_, store_, from, options_.revisions_per_read));
    if (batch.revision == from) return added;
    absl::MutexLock lock(&mu_);
    for (FeedChangePtr& c : batch.changes) {
      bytes_ += c->bytes;
      window_.push_back(std::move(c));
      ++added;
    }
    head_ = batch.revision;
    // Evict the oldest revisions, whole, past either bound.
    while (!window_.empty() &&
           (window_.size() > options_.max_changes || bytes_ > options_.max_bytes)) {
      const int64_t oldest = window_.front()->revision;
      while (!window_.empty() && window_.front()->revision == oldest) {
        bytes_ -= window_.front()->bytes;
        window_.pop_front();
      }
      start_ = oldest;
    }
    from = head_;
  }
}

bool SyncFeed::Read(int64_t after, size_t max, std::vector<FeedChangePtr>* out,
                    int64_t* reached) const {
  absl::ReaderMutexLock lock(&mu_);
  if (!started_ || after < start_) {
    *reached = head_;
    return false;
  }
  auto it = std::upper_bound(window_.begin(), window_.end(), after,
                             [](int64_t r, const FeedChangePtr& c) { return r < c->revision; });
  for (; it != window_.end(); ++it) {
    // Whole revisions only: past `max`, only the rest of the last one.
    if (out->size() >= max && (*it)->revision != out->back()->revision) {
      *reached = out->back()->revision;
      return true;
    }
    out->push_back(*it);
  }
  *reached = head_;
  return true;
}

void SyncFeed::WaitBeyond(int64_t after, absl::Duration timeout) const {
  absl::ReaderMutexLock lock(&mu_);
  auto ready = [this, after]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    return shutdown_ || head_ > after;
  };
  mu_.AwaitWithTimeout(absl::Condition(&ready), timeout);
}

int64_t SyncFeed::head() const {
  absl::ReaderMutexLock lock(&mu_);
  return head_;
}

void SyncFeed::Shutdown() {
  absl::MutexLock lock(&mu_);
  shutdown_ = true;
}

bool SyncFeed::shutting_down() const {
  absl::ReaderMutexLock lock(&mu_);
  return shutdown_;
}

void StreamTracker::Opened(const std::string& broker) {
  absl::MutexLock lock(&mu_);
  State& st = brokers_[broker];
  ++st.streams;
  st.last_seen = absl::Now();
  st.changed = true;
}

void StreamTracker::Sent(const std::string& broker, int64_t revision) {
  absl::MutexLock lock(&mu_);
  State& st = brokers_[broker];
  st.sent_revision = std::max(st.sent_revision, revision);
  st.last_seen = absl::Now();
  st.changed = true;
}

std::vector<StreamTracker::OpenBroker> StreamTracker::Open() {
  std::vector<OpenBroker> out;
  absl::MutexLock lock(&mu_);
  for (const auto& [broker, st] : brokers_) {
    if (st.streams > 0) out.push_back({broker, st.streams, st.sent_revision});
  }
  return out;
}

void StreamTracker::Closed(const std::string& broker) {
  absl::MutexLock lock(&mu_);
  State& st = brokers_[broker];
  if (st.streams > 0) --st.streams;
  st.changed = true;
}

std::vector<storage::BrokerStreams> StreamTracker::Take() {
  absl::MutexLock lock(&mu_);
  std::vector<storage::BrokerStreams> out;
  for (auto it = brokers_.begin(); it != brokers_.end();) {
    State& st = it->second;
    if (st.streams > 0 || st.changed) {
      out.push_back({it->first, st.streams, st.sent_revision, st.last_seen});
      st.changed = false;
    }
    if (st.streams == 0) {
      brokers_.erase(it++);
    } else {
      ++it;
    }
  }
  return out;
}

namespace {

// TrackedSink tells the tracker what each message delivered up to.
class TrackedSink final : public WatchSink {
 public:
  TrackedSink(WatchSink& sink, const WatchOptions& options) : sink_(sink), options_(options) {
    if (options_.tracker != nullptr) options_.tracker->Opened(options_.broker_id);
  }
  ~TrackedSink() override {
    if (options_.tracker != nullptr) options_.tracker->Closed(options_.broker_id);
  }
  bool Write(const v1::WatchResponse& message) override {
    if (!sink_.Write(message)) return false;
    if (options_.tracker != nullptr) {
      // The revision the broker can resume from once it applied the message (none inside
      // a snapshot before snapshot_end, nor within a continued transaction).
      int64_t revision = 0;
      if (message.has_snapshot_begin()) {
        in_snapshot_ = true;
      } else if (message.has_snapshot_end()) {
        in_snapshot_ = false;
        revision = message.snapshot_end().revision();
      } else if (message.has_changes() && !in_snapshot_ && !message.changes().continued()) {
        revision = message.changes().revision();
      } else if (message.has_heartbeat()) {
        revision = message.heartbeat().revision();
      }
      options_.tracker->Sent(options_.broker_id, revision);
    }
    return true;
  }
  bool Cancelled() override { return sink_.Cancelled(); }

 private:
  WatchSink& sink_;
  const WatchOptions& options_;
  bool in_snapshot_ = false;
};

absl::Status RunWatchTracked(SyncFeed& feed, const WatchOptions& options, WatchSink& sink);

}  // namespace

absl::Status RunWatch(SyncFeed& feed, const WatchOptions& options, WatchSink& outer) {
  TrackedSink sink(outer, options);
  return RunWatchTracked(feed, options, sink);
}

namespace {

absl::Status RunWatchTracked(SyncFeed& feed, const WatchOptions& options, WatchSink& sink) {
  // Where to start: a snapshot unless the broker's revision can be caught up from.
  ASSIGN_OR_RETURN(const int64_t head, feed.log().Head());
  int64_t position = options.since_revision;
  // A snapshot to send first (UNSPECIFIED: none).
  v1::SnapshotReason reason = v1::SNAPSHOT_REASON_UNSPECIFIED;
  if (position == 0) {
    reason = v1::SNAPSHOT_REASON_REQUESTED;
  } else if (position > head) {
    reason = v1::SNAPSHOT_REASON_REVISION_AHEAD;
  } else {
    ASSIGN_OR_RETURN(const int64_t oldest, feed.store().OldestRevision());
    if (position < oldest - 1 || head - position > options.max_catch_up_revisions) {
      reason = v1::SNAPSHOT_REASON_REVISION_TOO_OLD;
    }
  }
  bool broken = false;
  absl::Time last_write = absl::Now();
  auto write = [&](const v1::WatchResponse& message) {
    last_write = absl::Now();
    if (!sink.Write(message)) broken = true;
    return !broken;
  };

  Outbox out(sink, options);
  std::vector<FeedChangePtr> changes;
  for (;;) {
    if (feed.shutting_down()) return absl::UnavailableError("the server is shutting down");
    if (broken || sink.Cancelled()) return Broken();
    if (reason != v1::SNAPSHOT_REASON_UNSPECIFIED) {
      ASSIGN_OR_RETURN(position, SendSnapshot(feed, options, reason, sink, &broken));
      last_write = absl::Now();
      reason = v1::SNAPSHOT_REASON_UNSPECIFIED;
      continue;
    }
    // The window first; the database for what the window no longer holds.
    changes.clear();
    int64_t reached = position;
    if (!feed.Read(position, options.max_message_changes, &changes, &reached)) {
      if (reached - position > options.max_catch_up_revisions) {
        reason = v1::SNAPSHOT_REASON_FELL_BEHIND;
        continue;
      }
      ASSIGN_OR_RETURN(ChangeBatch batch,
                       ReadChanges(feed.log(), feed.store(), position, kCatchUpRevisions));
      changes = std::move(batch.changes);
      reached = batch.revision;
    }
    for (const FeedChangePtr& c : changes) {
      if (!Wanted(options, c->kind)) continue;
      if (!out.Add(c->message, c->revision, c->bytes)) return Broken();
    }
    if (!out.Flush(false)) return Broken();
    if (out.TakeSent()) last_write = absl::Now();
    if (reached > position) {
      position = reached;
      continue;  // more may be there already
    }
    // Caught up: wait for the next change, a heartbeat, or a cancellation (checked at
    // least every second).
    const absl::Duration idle = absl::Now() - last_write;
    if (idle >= options.heartbeat_interval) {
      v1::WatchResponse beat;
      beat.mutable_heartbeat()->set_revision(position);
      beat.mutable_heartbeat()->set_head_revision(feed.head());
      SetTimestamp(absl::Now(), beat.mutable_heartbeat()->mutable_server_time());
      if (!write(beat)) return Broken();
      continue;
    }
    feed.WaitBeyond(position, std::min(options.heartbeat_interval - idle, absl::Seconds(1)));
  }
}

}  // namespace

}  // namespace fleetca::api
