#include "sync_client/stream_applier.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/logging.h"

namespace fleetca::sync_client {
namespace {

// A key part must be non-empty and hold no NUL: the plugin joins composite keys with NUL
// ("<issuer_id>\0<serial>") and splits them again when it writes its cache, so a NUL inside
// a part would make a cache that does not load (found by fuzz/stream_fuzz).
bool BadKeyPart(const std::string& part, bool may_be_empty = false) {
  return (part.empty() && !may_be_empty) || part.find('\0') != std::string::npos;
}

absl::Status BadKey(absl::string_view what) {
  return absl::InvalidArgumentError(
      absl::StrCat("a ", what, " change without a valid key (empty, or holding a NUL byte)"));
}

}  // namespace

absl::Status ValidateChange(const v1::SyncChange& change) {
  switch (change.object_case()) {
    case v1::SyncChange::kIssuer:
      if (BadKeyPart(change.issuer().issuer_id())) return BadKey("issuer");
      return absl::OkStatus();
    case v1::SyncChange::kCrl:
      if (BadKeyPart(change.crl().issuer_id())) return BadKey("crl");
      return absl::OkStatus();
    case v1::SyncChange::kDevice:
      if (BadKeyPart(change.device().comm_id())) return BadKey("device");
      return absl::OkStatus();
    case v1::SyncChange::kIdentity:
      if (BadKeyPart(change.identity().name())) return BadKey("identity");
      return absl::OkStatus();
    case v1::SyncChange::kCertificate:
      if (BadKeyPart(change.certificate().issuer_id()) || BadKeyPart(change.certificate().serial())) {
        return BadKey("certificate");
      }
      return absl::OkStatus();
    case v1::SyncChange::kAclProfile:
      if (BadKeyPart(change.acl_profile().name())) return BadKey("acl_profile");
      return absl::OkStatus();
    case v1::SyncChange::kAclAssignment: {
      const v1::AclAssignment& a = change.acl_assignment();
      if (BadKeyPart(a.profile_name()) || a.subject_type() == v1::ACL_SUBJECT_TYPE_UNSPECIFIED ||
          BadKeyPart(a.subject_id(), a.subject_type() == v1::ACL_SUBJECT_TYPE_ALL_DEVICES)) {
        return BadKey("acl_assignment");
      }
      return absl::OkStatus();
    }
    case v1::SyncChange::OBJECT_NOT_SET:
      // "Always set": an object of a kind a newer server added lands in the unknown fields.
      // Skipped by ApplyChange, not an error, so that an old agent keeps working.
      return absl::OkStatus();
  }
  return absl::OkStatus();
}

StreamApplier::StreamApplier(std::function<std::unique_ptr<SyncState>()> new_state,
                             bool log_snapshots)
    : new_state_(std::move(new_state)), log_snapshots_(log_snapshots), state_(new_state_()) {}

void StreamApplier::Restore(std::unique_ptr<SyncState> state, int64_t revision) {
  building_.reset();
  pending_.clear();
  state_ = std::move(state);
  has_state_ = true;
  resume_revision_ = revision;
}

std::unique_ptr<SyncState> StreamApplier::ReleaseState() {
  std::unique_ptr<SyncState> state = std::move(state_);
  state_ = new_state_();
  building_.reset();
  pending_.clear();
  has_state_ = false;
  resume_revision_ = 0;
  return state;
}

absl::StatusOr<StreamApplier::Outcome> StreamApplier::Apply(const v1::WatchResponse& response) {
  switch (response.event_case()) {
    case v1::WatchResponse::kSnapshotBegin:
      // A new snapshot replaces whatever was on its way: a snapshot begun earlier on this
      // stream (the server may restart one at any time) and an unfinished `continued` run.
      building_.emplace(Building{});  // not emplace(): clang rejects it (Building is nested)
      building_->state = new_state_();
      building_->revision = response.snapshot_begin().revision();
      pending_.clear();
      if (log_snapshots_) LogInfo("snapshot begins",
              {{"revision", absl::StrCat(building_->revision)},
               {"reason", v1::SnapshotReason_Name(response.snapshot_begin().reason())}});
      return Outcome::kNothing;
    case v1::WatchResponse::kChanges:
      return ApplyChanges(response.changes());
    case v1::WatchResponse::kSnapshotEnd:
      return EndSnapshot(response.snapshot_end());
    case v1::WatchResponse::kHeartbeat:
      // The heartbeat's revision is a resume point only for a consumer that applied
      // everything received: not in the middle of a snapshot or of a `continued` run.
      if (has_state_ && !building_ && pending_.empty()) {
        resume_revision_ = response.heartbeat().revision();
      }
      return Outcome::kNothing;
    case v1::WatchResponse::EVENT_NOT_SET:
      break;
  }
  return absl::InvalidArgumentError("a Watch message without an event");
}

absl::StatusOr<StreamApplier::Outcome> StreamApplier::ApplyChanges(const v1::SyncChanges& changes) {
  // 1. Check every change first: a message is applied whole or not at all.
  for (const v1::SyncChange& change : changes.changes()) {
    if (absl::Status status = ValidateChange(change); !status.ok()) {
      return status;
    }
  }
  // 2. Inside a snapshot: into the snapshot being built, counted.
  if (building_) {
    for (const v1::SyncChange& change : changes.changes()) {
      building_->state->Apply(change);
      ++building_->count;
    }
    return Outcome::kNothing;
  }
  if (!has_state_) {
    return absl::InvalidArgumentError("changes before the first snapshot");
  }
  // 3. A `continued` run is held back until its last message, then applied together.
  pending_.insert(pending_.end(), changes.changes().begin(), changes.changes().end());
  if (changes.continued()) {
    return Outcome::kNothing;
  }
  int unknown = 0;
  for (const v1::SyncChange& change : pending_) {
    if (!state_->Apply(change)) ++unknown;
  }
  if (unknown > 0) {
    LogWarning("skipped changes of an unknown object kind (a newer server?)",
               {{"count", absl::StrCat(unknown)}, {"revision", absl::StrCat(changes.revision())}});
  }
  const bool changed = pending_.size() > static_cast<size_t>(unknown);
  pending_.clear();
  resume_revision_ = changes.revision();
  return changed ? Outcome::kChanged : Outcome::kNothing;
}

absl::StatusOr<StreamApplier::Outcome> StreamApplier::EndSnapshot(const v1::SnapshotEnd& end) {
  if (!building_) {
    return absl::InvalidArgumentError("snapshot_end without snapshot_begin");
  }
  Building building = std::move(*building_);
  building_.reset();
  if (end.revision() != building.revision) {
    return absl::InvalidArgumentError(absl::StrCat("snapshot_end revision ", end.revision(),
                                                   " differs from snapshot_begin's ",
                                                   building.revision));
  }
  if (end.object_count() != building.count) {
    return absl::DataLossError(absl::StrCat("the snapshot at revision ", building.revision,
                                            " held ", building.count,
                                            " objects, the server counted ", end.object_count()));
  }
  state_ = std::move(building.state);
  has_state_ = true;
  resume_revision_ = end.revision();
  if (log_snapshots_) LogInfo("snapshot swapped in", {{"revision", absl::StrCat(resume_revision_)},
                                  {"objects", absl::StrCat(building.count)}});
  return Outcome::kSnapshotSwapped;
}

void StreamApplier::StreamEnded() {
  building_.reset();
  pending_.clear();
}

}  // namespace fleetca::sync_client
