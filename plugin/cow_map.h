#pragma once

// CowMap: a string-keyed hash map split into 256 shards that copies share until one is
// written. The plugin's policy is an immutable snapshot that broker callbacks read while
// the sync thread prepares the next one: copying a CowMap copies 256 pointers, and a
// change copies only the shard it touches (a 1M-entry map has about 4k entries a shard).

#include <array>
#include <atomic>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"

namespace fleetca::plugin {

template <typename V>
class CowMap {
 public:
  static constexpr size_t kShards = 256;

  CowMap() {
    for (auto& shard : shards_) shard = std::make_shared<Shard>();
  }

  // Find returns the value of key, or null. The pointer is valid while this map (or a copy
  // sharing the shard) is alive and unchanged.
  const V* Find(absl::string_view key) const {
    const Shard& shard = *shards_[ShardOf(key)];
    auto it = shard.find(key);
    return it == shard.end() ? nullptr : &it->second;
  }

  // Put inserts or replaces key's value.
  void Put(absl::string_view key, V value) {
    Mutable(ShardOf(key)).insert_or_assign(std::string(key), std::move(value));
  }

  // Erase removes key; false when it was not there (nothing copied then).
  bool Erase(absl::string_view key) {
    const size_t i = ShardOf(key);
    if (!shards_[i]->contains(key)) return false;
    return Mutable(i).erase(key) > 0;
  }

  size_t size() const {
    size_t n = 0;
    for (const auto& shard : shards_) n += shard->size();
    return n;
  }

  // ForEach calls f(key, value) for every entry, in no particular order.
  template <typename F>
  void ForEach(F&& f) const {
    for (const auto& shard : shards_) {
      for (const auto& [key, value] : *shard) f(key, value);
    }
  }

 private:
  using Shard = absl::flat_hash_map<std::string, V>;

  // The shard is chosen by a hash other than the one inside the shard (absl's): with the
  // same hash, every key of a shard would share the low bits its table probes with.
  static size_t ShardOf(absl::string_view key) {
    return std::hash<std::string_view>{}(std::string_view(key.data(), key.size())) % kShards;
  }

  // Mutable returns shard i for writing, copying it first when a copy of this map shares
  // it. Only the thread that owns this map copies it, so a count of one cannot grow under
  // us; the fence pairs with the release of the last reader's reference.
  Shard& Mutable(size_t i) {
    if (shards_[i].use_count() != 1) {
      shards_[i] = std::make_shared<Shard>(*shards_[i]);
    } else {
      std::atomic_thread_fence(std::memory_order_acquire);
    }
    return *shards_[i];
  }

  std::array<std::shared_ptr<Shard>, kShards> shards_;
};

}  // namespace fleetca::plugin
