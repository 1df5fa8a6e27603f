#include "plugin/cow_map.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"

namespace fleetca::plugin {
namespace {

using ::testing::UnorderedElementsAre;

// Enough keys that every shard holds several (about 16).
constexpr int kManyKeys = static_cast<int>(CowMap<int>::kShards) * 16;

std::string Key(int i) { return absl::StrCat("key-", i); }

CowMap<int> ManyKeys() {
  CowMap<int> map;
  for (int i = 0; i < kManyKeys; ++i) map.Put(Key(i), i);
  return map;
}

// SharedAddresses: how many of the kManyKeys keys both maps hold at the same address (the
// same shard object).
int SharedAddresses(const CowMap<int>& a, const CowMap<int>& b) {
  int shared = 0;
  for (int i = 0; i < kManyKeys; ++i) {
    const int* x = a.Find(Key(i));
    const int* y = b.Find(Key(i));
    if (x != nullptr && x == y) ++shared;
  }
  return shared;
}

TEST(CowMapTest, PutFindEraseSize) {
  CowMap<std::string> map;
  EXPECT_EQ(map.size(), 0u);
  EXPECT_EQ(map.Find("a"), nullptr);

  map.Put("a", "1");
  map.Put("b", "2");
  ASSERT_NE(map.Find("a"), nullptr);
  EXPECT_EQ(*map.Find("a"), "1");
  EXPECT_EQ(*map.Find("b"), "2");
  EXPECT_EQ(map.Find("c"), nullptr);
  EXPECT_EQ(map.size(), 2u);

  map.Put("a", "replaced");  // replaces, does not add
  EXPECT_EQ(*map.Find("a"), "replaced");
  EXPECT_EQ(map.size(), 2u);

  EXPECT_TRUE(map.Erase("a"));
  EXPECT_EQ(map.Find("a"), nullptr);
  EXPECT_EQ(map.size(), 1u);
  EXPECT_FALSE(map.Erase("a"));
  EXPECT_FALSE(map.Erase("never"));
  EXPECT_EQ(map.size(), 1u);
  EXPECT_EQ(*map.Find("b"), "2");
}

TEST(CowMapTest, KeysAreWholeStrings) {
  CowMap<int> map;
  map.Put("ab", 1);
  map.Put(std::string("a\0b", 3), 2);  // keys may hold NUL (the policy's keys do)
  map.Put("", 3);
  EXPECT_EQ(*map.Find("ab"), 1);
  EXPECT_EQ(*map.Find(std::string("a\0b", 3)), 2);
  EXPECT_EQ(*map.Find(""), 3);
  EXPECT_EQ(map.Find("a"), nullptr);
  EXPECT_EQ(map.size(), 3u);
}

TEST(CowMapTest, ManyKeysAllFound) {
  CowMap<int> map = ManyKeys();
  EXPECT_EQ(map.size(), static_cast<size_t>(kManyKeys));
  for (int i = 0; i < kManyKeys; ++i) {
    const int* v = map.Find(Key(i));
    ASSERT_NE(v, nullptr) << Key(i);
    EXPECT_EQ(*v, i);
  }
  for (int i = 0; i < kManyKeys; i += 2) EXPECT_TRUE(map.Erase(Key(i)));
  EXPECT_EQ(map.size(), static_cast<size_t>(kManyKeys / 2));
  for (int i = 0; i < kManyKeys; ++i) EXPECT_EQ(map.Find(Key(i)) != nullptr, i % 2 == 1) << i;
}

TEST(CowMapTest, ForEachVisitsEveryEntryOnce) {
  CowMap<int> map;
  map.Put("x", 1);
  map.Put("y", 2);
  map.Put("z", 3);
  map.Erase("y");
  std::vector<std::pair<std::string, int>> seen;
  map.ForEach([&](const std::string& key, int value) { seen.emplace_back(key, value); });
  EXPECT_THAT(seen, UnorderedElementsAre(std::pair<std::string, int>("x", 1),
                                         std::pair<std::string, int>("z", 3)));

  CowMap<int> many = ManyKeys();
  std::map<std::string, int> all;
  int calls = 0;
  many.ForEach([&](const std::string& key, int value) {
    ++calls;
    all[key] = value;
  });
  EXPECT_EQ(calls, kManyKeys);
  ASSERT_EQ(all.size(), static_cast<size_t>(kManyKeys));
  for (int i = 0; i < kManyKeys; ++i) EXPECT_EQ(all[Key(i)], i);
}

TEST(CowMapTest, CopySharesUntilWritten) {
  const CowMap<int> original = ManyKeys();
  CowMap<int> copy = original;
  // A copy shares every entry (same addresses: no shard was copied).
  EXPECT_EQ(SharedAddresses(original, copy), kManyKeys);
}

TEST(CowMapTest, CopyIsNotChangedByWritesToTheOriginal) {
  CowMap<int> original = ManyKeys();
  const CowMap<int> copy = original;
  original.Put(Key(1), 1000);       // replace
  original.Put("new", 7);           // add
  EXPECT_TRUE(original.Erase(Key(2)));  // erase

  EXPECT_EQ(*original.Find(Key(1)), 1000);
  EXPECT_EQ(*original.Find("new"), 7);
  EXPECT_EQ(original.Find(Key(2)), nullptr);
  EXPECT_EQ(original.size(), static_cast<size_t>(kManyKeys));

  EXPECT_EQ(*copy.Find(Key(1)), 1);
  EXPECT_EQ(copy.Find("new"), nullptr);
  ASSERT_NE(copy.Find(Key(2)), nullptr);
  EXPECT_EQ(*copy.Find(Key(2)), 2);
  EXPECT_EQ(copy.size(), static_cast<size_t>(kManyKeys));
  int visited = 0;
  copy.ForEach([&](const std::string& key, int value) {
    ++visited;
    EXPECT_EQ(key, Key(value));
  });
  EXPECT_EQ(visited, kManyKeys);
}

TEST(CowMapTest, OriginalIsNotChangedByWritesToTheCopy) {
  CowMap<int> original = ManyKeys();
  CowMap<int> copy = original;
  copy.Put(Key(3), -3);
  copy.Put("added", 1);
  EXPECT_TRUE(copy.Erase(Key(4)));

  EXPECT_EQ(*original.Find(Key(3)), 3);
  EXPECT_EQ(original.Find("added"), nullptr);
  ASSERT_NE(original.Find(Key(4)), nullptr);
  EXPECT_EQ(*original.Find(Key(4)), 4);
  EXPECT_EQ(original.size(), static_cast<size_t>(kManyKeys));

  EXPECT_EQ(*copy.Find(Key(3)), -3);
  EXPECT_EQ(*copy.Find("added"), 1);
  EXPECT_EQ(copy.Find(Key(4)), nullptr);
}

TEST(CowMapTest, AWriteCopiesOnlyTheShardItTouches) {
  CowMap<int> original = ManyKeys();
  CowMap<int> copy = original;
  copy.Put(Key(0), -1);
  // The written shard holds about 16 of the keys: only those moved, not the whole map.
  const int moved = kManyKeys - SharedAddresses(original, copy);
  EXPECT_GE(moved, 1);
  EXPECT_LT(moved, kManyKeys / 10);
  // A second write into the same shard of the (now sole owner) copy copies nothing more.
  const int* before = copy.Find(Key(0));
  copy.Put(Key(0), -2);
  EXPECT_EQ(copy.Find(Key(0)), before);
  EXPECT_EQ(*copy.Find(Key(0)), -2);
  EXPECT_EQ(*original.Find(Key(0)), 0);
}

TEST(CowMapTest, EraseOfAMissingKeyDoesNotCopy) {
  const CowMap<int> original = ManyKeys();
  CowMap<int> copy = original;
  for (int i = 0; i < 1000; ++i) EXPECT_FALSE(copy.Erase(absl::StrCat("missing-", i)));
  // Every shard is still shared.
  EXPECT_EQ(SharedAddresses(original, copy), kManyKeys);
  EXPECT_EQ(copy.size(), static_cast<size_t>(kManyKeys));
}

TEST(CowMapTest, EraseOfAPresentKeyInACopyCopiesItsShard) {
  const CowMap<int> original = ManyKeys();
  CowMap<int> copy = original;
  EXPECT_TRUE(copy.Erase(Key(10)));
  const int shared = SharedAddresses(original, copy);
  EXPECT_LT(shared, kManyKeys - 1);  // the other keys of that shard moved too
  EXPECT_GT(shared, kManyKeys - kManyKeys / 10);
  EXPECT_NE(original.Find(Key(10)), nullptr);
}

}  // namespace
}  // namespace fleetca::plugin
