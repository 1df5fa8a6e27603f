#pragma once

// Checks shared by the plugin's fuzz targets (cache_fuzz, stream_fuzz): whatever Policy
// the stream or a cache file produced must answer lookups, copy, and survive the cache
// round trip (a state the plugin holds must always be persistable and loadable again).

#include <string>
#include <vector>

#include "acl/topic.h"
#include "fuzz/fuzz_util.h"
#include "plugin/cache.h"
#include "plugin/policy.h"

namespace fleetca::fuzz {

inline void CheckPolicy(const plugin::Policy& policy, int64_t revision) {
  // Lookups and rule resolution for a few of the principals it holds.
  std::vector<std::string> devices, identities;
  std::vector<std::pair<std::string, std::string>> certificates;
  size_t objects = 0;
  policy.ForEachObject([&](const v1::SyncChange& change) {
    ++objects;
    if (change.has_device() && devices.size() < 8) devices.push_back(change.device().comm_id());
    if (change.has_identity() && identities.size() < 8) {
      identities.push_back(change.identity().name());
    }
    if (change.has_certificate() && certificates.size() < 8) {
      certificates.emplace_back(change.certificate().issuer_id(), change.certificate().serial());
    }
  });
  FUZZ_CHECK(objects == policy.ObjectCount(), "ForEachObject disagrees with ObjectCount");
  for (const std::string& d : devices) {
    const plugin::Device* device = policy.FindDevice(d);
    FUZZ_CHECK(device != nullptr, "a listed device is not found");
    for (const acl::ResolvedRule& r : policy.ResolveRules(v1::PRINCIPAL_TYPE_DEVICE, d, device)) {
      FUZZ_CHECK(acl::IsValidTopicFilter(r.filter), "a resolved rule is not a valid filter");
    }
  }
  for (const std::string& i : identities) {
    FUZZ_CHECK(policy.FindIdentity(i) != nullptr, "a listed identity is not found");
    for (const acl::ResolvedRule& r : policy.ResolveRules(v1::PRINCIPAL_TYPE_IDENTITY, i, nullptr)) {
      FUZZ_CHECK(acl::IsValidTopicFilter(r.filter), "a resolved rule is not a valid filter");
    }
  }
  for (const auto& [issuer, serial] : certificates) {
    FUZZ_CHECK(policy.FindCertificate(issuer, serial) != nullptr, "a listed certificate is not found");
  }
  for (const auto& issuer : policy.issuers()) {
    FUZZ_CHECK(policy.FindIssuer(issuer->id) != nullptr, "a listed issuer is not found");
  }

  // A copy shares its tables and holds the same objects.
  plugin::Policy copy(policy);
  FUZZ_CHECK(copy.ObjectCount() == policy.ObjectCount(), "a copy differs");

  // The cache round trip: every state the stream can build saves and loads back. (A NUL
  // inside a key part once broke it: sync_client::ValidateChange refuses such keys now.)
  const std::string content = plugin::SerializeCache(policy, revision);
  absl::StatusOr<plugin::LoadedCache> loaded = plugin::ParseCache(content);
  FUZZ_CHECK(loaded.ok(), std::string(loaded.status().message()).c_str());
  FUZZ_CHECK(loaded->revision == revision, "the cache's revision changed");
  FUZZ_CHECK(loaded->objects == static_cast<int64_t>(policy.ObjectCount()),
             "the cache's object count changed");
  FUZZ_CHECK(loaded->policy->ObjectCount() == policy.ObjectCount(),
             "the reloaded policy holds another number of objects");
}

}  // namespace fleetca::fuzz
