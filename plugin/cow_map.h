#pragma once

// CowMap: a string-keyed hash map split into 4,096 shards that copies share until one is
// written. The plugin's policy is an immutable snapshot that broker callbacks read while
// the sync thread prepares the next one: copying a CowMap copies one pointer, and the first
// change after a copy copies the shard directory and the one shard it touches (a 1M-entry
// map has about 250 entries a shard).

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
  static constexpr size_t kShards = 4096;

  // Find returns the value of key, or null. The pointer is valid while this map (or a copy
  // sharing the shard) is alive and unchanged.
  const V* Find(absl::string_view key) const {
    if (dir_ == nullptr) return nullptr;
    const Shard* shard = dir_->shards[ShardOf(key)].get();
    if (shard == nullptr) return nullptr;
    auto it = shard->find(key);
    return it == shard->end() ? nullptr : &it->second;
  }

  // Put inserts or replaces key's value.
  void Put(absl::string_view key, V value) {
    Mutable(ShardOf(key)).insert_or_assign(std::string(key), std::move(value));
  }

  // Erase removes key; false when it was not there (nothing copied then).
  bool Erase(absl::string_view key) {
    if (Find(key) == nullptr) return false;
    return Mutable(ShardOf(key)).erase(key) > 0;
  }

  size_t size() const {
    size_t n = 0;
    if (dir_ == nullptr) return 0;
    for (const auto& shard : dir_->shards) n += shard != nullptr ? shard->size() : 0;
    return n;
  }

  // ForEach calls f(key, value) for every entry, in no particular order.
  template <typename F>
  void ForEach(F&& f) const {
    if (dir_ == nullptr) return;
    for (const auto& shard : dir_->shards) {
      if (shard == nullptr) continue;
      for (const auto& [key, value] : *shard) f(key, value);
    }
  }

 private:
  using Shard = absl::flat_hash_map<std::string, V>;
  // The directory is shared too: copying a map copies one pointer, whatever its size. The
  // first change after a copy copies the directory (kShards pointers) and the shard.
  struct Directory {
    std::array<std::shared_ptr<Shard>, kShards> shards;  // null: an empty shard
  };

  // The shard is chosen by a hash other than the one inside the shard (absl's): with the
  // same hash, every key of a shard would share the low bits its table probes with.
  static size_t ShardOf(absl::string_view key) {
    return std::hash<std::string_view>{}(std::string_view(key.data(), key.size())) % kShards;
  }

  // Unshared: whether this map holds the only reference. Only the thread that owns this map
  // copies it, so a count of one cannot grow under us; the fence pairs with the release of
  // the last reader's reference.
  template <typename T>
  static bool Unshared(const std::shared_ptr<T>& p) {
    if (p.use_count() != 1) return false;
#if defined(__SANITIZE_THREAD__)
    // ThreadSanitizer does not model fences (GCC: -Wtsan) and would report our writes
    // against the last reader's reads. An acquire-release round trip on the count itself
    // (a copy, dropped at once) gives it the same edge: it comes after that reader's release
    // in the count's modification order. TSan builds only (tests/sanitizers).
    { const std::shared_ptr<T> probe = p; }
#else
    std::atomic_thread_fence(std::memory_order_acquire);
#endif
    return true;
  }

  // Mutable returns shard i for writing, copying the directory and the shard first when a
  // copy of this map shares them.
  Shard& Mutable(size_t i) {
    if (dir_ == nullptr) {
      dir_ = std::make_shared<Directory>();
    } else if (!Unshared(dir_)) {
      dir_ = std::make_shared<Directory>(*dir_);
    }
    std::shared_ptr<Shard>& shard = dir_->shards[i];
    if (shard == nullptr) {
      shard = std::make_shared<Shard>();
    } else if (!Unshared(shard)) {
      shard = std::make_shared<Shard>(*shard);
    }
    return *shard;
  }

  std::shared_ptr<Directory> dir_;
};

}  // namespace fleetca::plugin
