// SyncFeed and RunWatch against a real PostgreSQL, with a window small enough to leave: a
// stream inside the window, one behind it (caught up from the database), one too far
// behind (a FELL_BEHIND snapshot), a revision older than the retained change log
// (REVISION_TOO_OLD) and a revision ahead of the log (REVISION_AHEAD), each checked against
// the change log itself.
#include "server/api/sync_feed.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "storage/pg_acl_store.h"
#include "storage/pg_change_log.h"
#include "storage/pg_device_store.h"
#include "storage/pg_sync_store.h"
#include "tests/testing/test_database.h"

namespace fleetca::api {
namespace {

// A sink that keeps what it is sent, and stops the stream once a predicate holds.
class RecordingSink final : public WatchSink {
 public:
  explicit RecordingSink(std::function<bool(const std::vector<v1::WatchResponse>&)> done)
      : done_(std::move(done)) {}
  bool Write(const v1::WatchResponse& message) override {
    absl::MutexLock lock(&mu_);
    messages_.push_back(message);
    return true;
  }
  bool Cancelled() override {
    absl::MutexLock lock(&mu_);
    return done_(messages_);
  }
  std::vector<v1::WatchResponse> messages() {
    absl::MutexLock lock(&mu_);
    return messages_;
  }

 private:
  absl::Mutex mu_;
  std::vector<v1::WatchResponse> messages_;
  std::function<bool(const std::vector<v1::WatchResponse>&)> done_;
};

// Device comm-IDs of the changes (not snapshot contents) in messages, in order.
std::vector<std::string> DeviceChanges(const std::vector<v1::WatchResponse>& messages) {
  std::vector<std::string> out;
  bool in_snapshot = false;
  for (const v1::WatchResponse& m : messages) {
    if (m.has_snapshot_begin()) in_snapshot = true;
    if (m.has_snapshot_end()) in_snapshot = false;
    if (!m.has_changes() || in_snapshot) continue;
    for (const v1::SyncChange& c : m.changes().changes()) {
      if (c.has_device()) out.push_back(c.device().comm_id());
    }
  }
  return out;
}

bool HeartbeatAt(const std::vector<v1::WatchResponse>& messages, int64_t revision) {
  return !messages.empty() && messages.back().has_heartbeat() &&
         messages.back().heartbeat().revision() >= revision;
}

class SyncFeedTest : public ::testing::Test {
 protected:
  void Register(int from, int to) {
    for (int i = from; i < to; ++i) {
      storage::Device d;
      d.comm_id = absl::StrCat("d-", i);
      ASSERT_TRUE(devices_.Create(d, ctx_).ok());
    }
  }
  int64_t Head() { return std::stoll(db_.Exec("SELECT max(revision) FROM change_log")); }

  // Runs a Watch from `since` until a heartbeat reports `until`; returns its messages.
  std::vector<v1::WatchResponse> Watch(int64_t since, int64_t until, WatchOptions options = {}) {
    options.since_revision = since;
    options.heartbeat_interval = absl::Seconds(1);
    RecordingSink sink([until](const std::vector<v1::WatchResponse>& m) {
      return HeartbeatAt(m, until);
    });
    const absl::Status st = RunWatch(feed_, options, sink);
    EXPECT_TRUE(st.ok()) << st;
    return sink.messages();
  }

  testing::TestDatabase db_;
  RequestContext ctx_ = RequestContext::Local("tester", "req-1");
  storage::PgDeviceStore devices_{db_.pool()};
  storage::PgAclStore acls_{db_.pool()};
  storage::PgChangeLogReader log_{db_.pool()};
  storage::PgSyncStore store_{db_.pool(), acls_};
  SyncFeed feed_{log_, store_, SyncFeed::Options{/*max_changes=*/5, /*max_bytes=*/1 << 20,
                                                 /*revisions_per_read=*/3}};
};

TEST_F(SyncFeedTest, ReadChangesSendsEveryKeyAtItsRevision) {
  const int64_t start = Head();
  Register(0, 3);
  auto batch = ReadChanges(log_, store_, start, 100);
  ASSERT_TRUE(batch.ok()) << batch.status();
  ASSERT_EQ(batch->changes.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(batch->changes[i]->revision, start + 1 + static_cast<int64_t>(i));
    EXPECT_EQ(batch->changes[i]->message.device().comm_id(), absl::StrCat("d-", i));
    EXPECT_EQ(batch->changes[i]->message.device().status(), v1::DEVICE_STATUS_ACTIVE);
  }
  EXPECT_EQ(batch->revision, start + 3);
  // A deletion is read as such.
  ASSERT_TRUE(devices_.Delete("d-1", std::nullopt, ctx_).ok());
  batch = ReadChanges(log_, store_, start + 3, 100);
  ASSERT_TRUE(batch.ok()) << batch.status();
  ASSERT_EQ(batch->changes.size(), 1u);
  EXPECT_TRUE(batch->changes[0]->message.deleted());
  EXPECT_EQ(batch->changes[0]->message.device().comm_id(), "d-1");
}

TEST_F(SyncFeedTest, TheWindowThenTheDatabaseThenASnapshot) {
  ASSERT_TRUE(feed_.Poll().ok());  // the window starts at the head
  const int64_t start = Head();
  Register(0, 12);
  ASSERT_TRUE(feed_.Poll().ok());
  const int64_t head = Head();
  ASSERT_EQ(feed_.head(), head);
  std::vector<std::string> all;
  for (int i = 0; i < 12; ++i) all.push_back(absl::StrCat("d-", i));

  // The window holds the last 5 changes only.
  std::vector<FeedChangePtr> window;
  int64_t reached = 0;
  EXPECT_FALSE(feed_.Read(start, 100, &window, &reached)) << "the window kept everything";
  ASSERT_TRUE(feed_.Read(head - 3, 100, &window, &reached));
  EXPECT_EQ(window.size(), 3u);
  EXPECT_EQ(reached, head);

  // Inside the window, and behind it (read from the database): the same changes, no
  // snapshot.
  EXPECT_EQ(DeviceChanges(Watch(head - 3, head)),
            std::vector<std::string>(all.end() - 3, all.end()));
  auto behind = Watch(start, head);
  EXPECT_FALSE(behind.front().has_snapshot_begin());
  EXPECT_EQ(DeviceChanges(behind), all);

  // Too far behind to catch up: a snapshot, then nothing more to send.
  WatchOptions tight;
  tight.max_catch_up_revisions = 4;
  auto snapshot = Watch(start, head, tight);
  ASSERT_TRUE(snapshot.front().has_snapshot_begin());
  EXPECT_EQ(snapshot.front().snapshot_begin().reason(), v1::SNAPSHOT_REASON_REVISION_TOO_OLD);
  EXPECT_EQ(snapshot.front().snapshot_begin().revision(), head);
  EXPECT_TRUE(DeviceChanges(snapshot).empty());
}

TEST_F(SyncFeedTest, AStreamThatFallsBehindTheWindowGetsASnapshot) {
  ASSERT_TRUE(feed_.Poll().ok());
  Register(0, 2);
  ASSERT_TRUE(feed_.Poll().ok());
  const int64_t first = Head();
  // A slow broker: the stream, in the window at first, blocks writing its first change
  // while 12 more go through the feed (which keeps 5): it is then more than 4 revisions
  // behind the window's start.
  absl::Mutex mu;
  bool first_change_written = false, released = false;
  int64_t final_head = 0;
  class SlowSink final : public WatchSink {
   public:
    SlowSink(absl::Mutex* mu, bool* written, bool* released, int64_t* head)
        : mu_(mu), written_(written), released_(released), head_(head) {}
    bool Write(const v1::WatchResponse& message) override {
      absl::MutexLock lock(mu_);
      messages.push_back(message);
      if (message.has_changes() && !*written_) {
        *written_ = true;
        mu_->Await(absl::Condition(released_));
      }
      return true;
    }
    bool Cancelled() override {
      absl::MutexLock lock(mu_);
      return *head_ > 0 && HeartbeatAt(messages, *head_);
    }
    std::vector<v1::WatchResponse> messages;

   private:
    absl::Mutex* mu_;
    bool* written_;
    bool* released_;
    int64_t* head_;
  } sink(&mu, &first_change_written, &released, &final_head);
  WatchOptions options;
  options.since_revision = first;
  options.heartbeat_interval = absl::Seconds(1);
  options.max_catch_up_revisions = 4;
  absl::Status st;
  std::thread stream([&] { st = RunWatch(feed_, options, sink); });
  Register(2, 3);
  ASSERT_TRUE(feed_.Poll().ok());
  {
    absl::MutexLock lock(&mu);
    mu.Await(absl::Condition(&first_change_written));
  }
  Register(3, 15);
  ASSERT_TRUE(feed_.Poll().ok());
  {
    absl::MutexLock lock(&mu);
    final_head = Head();
    released = true;
  }
  stream.join();
  ASSERT_TRUE(st.ok()) << st;
  absl::MutexLock lock(&mu);
  std::vector<std::string> before_snapshot;
  size_t i = 0;
  for (; i < sink.messages.size() && !sink.messages[i].has_snapshot_begin(); ++i) {
    for (const auto& c : sink.messages[i].changes().changes()) {
      before_snapshot.push_back(c.device().comm_id());
    }
  }
  EXPECT_EQ(before_snapshot, std::vector<std::string>{"d-2"});
  ASSERT_LT(i, sink.messages.size()) << "no snapshot";
  EXPECT_EQ(sink.messages[i].snapshot_begin().reason(), v1::SNAPSHOT_REASON_FELL_BEHIND);
  // The snapshot holds all 15 devices.
  int devices = 0;
  for (; i < sink.messages.size() && !sink.messages[i].has_snapshot_end(); ++i) {
    for (const auto& c : sink.messages[i].changes().changes()) devices += c.has_device() ? 1 : 0;
  }
  EXPECT_EQ(devices, 15);
}

TEST_F(SyncFeedTest, RevisionsOlderThanTheLogOrAheadOfItGetASnapshot) {
  Register(0, 3);
  const int64_t head = Head();
  // The log pruned up to head - 1 (as a future retention job would).
  db_.Exec(absl::StrCat("DELETE FROM change_log WHERE revision < ", head - 1));
  auto old = Watch(1, head);
  ASSERT_TRUE(old.front().has_snapshot_begin());
  EXPECT_EQ(old.front().snapshot_begin().reason(), v1::SNAPSHOT_REASON_REVISION_TOO_OLD);
  auto ahead = Watch(head + 100, head);
  ASSERT_TRUE(ahead.front().has_snapshot_begin());
  EXPECT_EQ(ahead.front().snapshot_begin().reason(), v1::SNAPSHOT_REASON_REVISION_AHEAD);
  // The oldest retained revision minus one is still a resume point.
  auto fine = Watch(head - 2, head);
  EXPECT_FALSE(fine.front().has_snapshot_begin());
  EXPECT_EQ(DeviceChanges(fine), (std::vector<std::string>{"d-1", "d-2"}));
}

TEST_F(SyncFeedTest, ShutdownEndsStreamsWithUnavailable) {
  ASSERT_TRUE(feed_.Poll().ok());
  WatchOptions options;
  options.since_revision = Head();
  options.heartbeat_interval = absl::Seconds(60);
  RecordingSink sink([](const std::vector<v1::WatchResponse>&) { return false; });
  absl::Status st;
  std::thread stream([&] { st = RunWatch(feed_, options, sink); });
  absl::SleepFor(absl::Milliseconds(200));
  feed_.Shutdown();
  stream.join();
  EXPECT_EQ(st.code(), absl::StatusCode::kUnavailable) << st;
}

}  // namespace
}  // namespace fleetca::api
