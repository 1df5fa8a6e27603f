#pragma once

// BrokerStore: the MQTT brokers fleetca serves, with the names and addresses their server
// certificates may carry.

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/request_context.h"

namespace fleetca::storage {

// What the replicas recorded of a broker's Watch streams (broker_streams).
struct BrokerSyncRecord {
  int streams = 0;                     // open streams, over the replicas alive
  int64_t sent_revision = 0;           // the highest revision any replica sent it
  std::optional<absl::Time> last_seen;  // when a replica last sent it something
};

struct Broker {
  std::string name;
  std::string display_name;
  std::vector<std::string> allowed_dns_names;     // may hold one leading "*." wildcard each
  std::vector<std::string> allowed_ip_addresses;  // textual, canonical
  int64_t version = 0;
  absl::Time create_time, update_time;
  BrokerSyncRecord sync;  // read only (ignored by Create and Update)
};

// One replica's streams to one broker, as it records them.
struct BrokerStreams {
  std::string broker;
  int streams = 0;
  int64_t sent_revision = 0;
  absl::Time last_seen;
};

struct BrokerUpdate {
  std::optional<std::string> display_name;
  std::optional<std::vector<std::string>> allowed_dns_names;
  std::optional<std::vector<std::string>> allowed_ip_addresses;
};

class BrokerStore {
 public:
  virtual ~BrokerStore() = default;
  // Create: ALREADY_EXISTS when the name is taken.
  virtual absl::StatusOr<Broker> Create(const Broker& broker, const RequestContext& ctx) = 0;
  // Get: NOT_FOUND when unknown.
  virtual absl::StatusOr<Broker> Get(const std::string& name) = 0;
  // List: up to limit brokers with name > after, by name.
  virtual absl::StatusOr<std::vector<Broker>> List(const std::string& after, int limit) = 0;
  // Update: NOT_FOUND; ABORTED when expected_version is set and stale.
  virtual absl::StatusOr<Broker> Update(const std::string& name, const BrokerUpdate& update,
                                        std::optional<int64_t> expected_version,
                                        const RequestContext& ctx) = 0;
  // Delete: NOT_FOUND; ABORTED as Update; FAILED_PRECONDITION when certificates name it.
  virtual absl::Status Delete(const std::string& name, std::optional<int64_t> expected_version,
                              const RequestContext& ctx) = 0;
  // RecordStreams upserts this replica's rows (brokers deleted meanwhile are skipped).
  virtual absl::Status RecordStreams(const std::string& replica_id,
                                     const std::vector<BrokerStreams>& states) = 0;
};

}  // namespace fleetca::storage
