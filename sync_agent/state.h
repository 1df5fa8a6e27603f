#pragma once

// The policy a broker enforces, as fleetca-sync holds it in memory: the objects of
// BrokerSyncService.Watch, applied by sync_client::StreamApplier.
//
// Nothing here is persisted: an agent that starts asks for a snapshot (since_revision 0).

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "fleetca/v1/broker_sync.pb.h"
#include "sync_client/stream_applier.h"

namespace fleetca::sync_agent {

// PolicyState: every object of the stream, keyed as SyncChange says. Plain maps (ordered):
// rendering walks them in key order, so its output is deterministic.
struct PolicyState final : sync_client::SyncState {
  bool Apply(const v1::SyncChange& change) override;

  std::map<std::string, v1::SyncIssuer> issuers;       // issuer_id
  std::map<std::string, v1::SyncCrl> crls;             // issuer_id
  std::map<std::string, v1::SyncDevice> devices;       // comm_id
  std::map<std::string, v1::SyncIdentity> identities;  // name
  std::map<std::pair<std::string, std::string>, v1::SyncCertificate>
      certificates;                                        // (issuer_id, serial)
  std::map<std::string, v1::SyncAclProfile> acl_profiles;  // name
  // (subject_type, subject_id, profile_name)
  std::map<std::tuple<int, std::string, std::string>, v1::AclAssignment> acl_assignments;

  // ObjectCount is the number of objects held, all kinds together.
  size_t ObjectCount() const;
};

// ApplyChange upserts the change's object into state, or removes it when `deleted`. The
// change must have passed sync_client::ValidateChange. Returns false when the object's
// kind is unknown to this build (nothing applied).
bool ApplyChange(const v1::SyncChange& change, PolicyState* state);

using sync_client::ValidateChange;

// StreamApplier: sync_client's, over PolicyState.
class StreamApplier : public sync_client::StreamApplier {
 public:
  StreamApplier()
      : sync_client::StreamApplier([] { return std::make_unique<PolicyState>(); }) {}
  // state is the current policy (the last snapshot with the deltas applied since).
  const PolicyState& state() const {
    return static_cast<const PolicyState&>(*sync_client::StreamApplier::state());
  }
};

}  // namespace fleetca::sync_agent
