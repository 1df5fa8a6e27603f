#include "plugin/cache.h"

#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/util/delimited_message_util.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "pki/openssl_util.h"
#include "tests/plugin/plugin_test_util.h"

namespace fleetca::plugin {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;
using testing::ApplyAll;
using testing::AssignmentChange;
using testing::Cert;
using testing::CertificateChange;
using testing::DeviceChange;
using testing::Dump;
using testing::Fleet;
using testing::IdentityChange;
using testing::kDev1;
using testing::kDev2;
using testing::kWatcher;
using testing::Pairs;
using testing::ProfileChange;

constexpr char kFormatLine[] = "fleetca-plugin-cache 1\n";

std::string MakeTempDir() {
  std::string tmpl = ::testing::TempDir() + "plugin_cache_test_XXXXXX";
  const char* dir = mkdtemp(tmpl.data());
  EXPECT_NE(dir, nullptr);
  return tmpl;
}

void WriteFile(const std::string& path, const std::string& data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << data;
  ASSERT_TRUE(out.good()) << path;
}

// Frame: a cache file around hand-made messages, with a correct checksum, so that what is
// checked past the checksum can be tested.
class Frame {
 public:
  Frame() : body_(kFormatLine) {}
  Frame& Add(const v1::WatchResponse& message) {
    google::protobuf::io::StringOutputStream stream(&body_);
    EXPECT_TRUE(google::protobuf::util::SerializeDelimitedToZeroCopyStream(message, &stream));
    return *this;
  }
  Frame& Raw(const std::string& bytes) {
    body_ += bytes;
    return *this;
  }
  std::string Sealed() const { return body_ + pki::Sha256(body_); }

 private:
  std::string body_;
};

v1::WatchResponse Begin(int64_t revision) {
  v1::WatchResponse m;
  m.mutable_snapshot_begin()->set_revision(revision);
  m.mutable_snapshot_begin()->set_reason(v1::SNAPSHOT_REASON_REQUESTED);
  return m;
}
v1::WatchResponse Changes(int64_t revision, const std::vector<v1::SyncChange>& changes) {
  v1::WatchResponse m;
  m.mutable_changes()->set_revision(revision);
  for (const v1::SyncChange& c : changes) *m.mutable_changes()->add_changes() = c;
  return m;
}
v1::WatchResponse End(int64_t revision, int64_t count) {
  v1::WatchResponse m;
  m.mutable_snapshot_end()->set_revision(revision);
  m.mutable_snapshot_end()->set_object_count(count);
  return m;
}

class CacheTest : public ::testing::Test {
 protected:
  CacheTest() {
    ApplyAll(policy_, fleet_.Changes());
    ApplyAll(policy_,
             {DeviceChange(testing::kDev3, v1::DEVICE_STATUS_SUSPENDED, {"berlin", "lab"},
                           {{"site", "ber1"}, {"floor", "2"}}),
              IdentityChange("ops", v1::IDENTITY_STATUS_REVOKED, v1::IDENTITY_ROLE_VIEWER),
              CertificateChange("external", "0badc0de",
                                Cert("", v1::CERTIFICATE_STATUS_REVOKED,
                                     v1::REVOCATION_REASON_KEY_COMPROMISE)),
              ProfileChange("site", {{"sites/%{site}/#", v1::ACL_ACCESS_READ},
                                     {"sites/%{site}/secret", v1::ACL_ACCESS_DENY}}),
              AssignmentChange(v1::ACL_SUBJECT_TYPE_GROUP, "berlin", "site"),
              AssignmentChange(v1::ACL_SUBJECT_TYPE_DEVICE, kDev1, "site"),
              AssignmentChange(v1::ACL_SUBJECT_TYPE_IDENTITY, "ops", "watcher")});
  }

  // ExpectSame: the loaded policy holds what policy_ holds.
  void ExpectSame(const Policy& loaded) {
    EXPECT_EQ(loaded.ObjectCount(), policy_.ObjectCount());
    EXPECT_EQ(Dump(loaded), Dump(policy_));
    ASSERT_NE(loaded.FindIssuer("devices"), nullptr);
    EXPECT_NE(loaded.FindIssuer("devices")->certificate, nullptr);
    EXPECT_TRUE(loaded.FindIssuer("external")->external);
    ASSERT_NE(loaded.FindDevice(testing::kDev3), nullptr);
    EXPECT_EQ(loaded.FindDevice(testing::kDev3)->status, v1::DEVICE_STATUS_SUSPENDED);
    ASSERT_NE(loaded.FindIdentity(kWatcher), nullptr);
    const Certificate* c = loaded.FindCertificate("devices", fleet_.dev1.serial_hex);
    ASSERT_NE(c, nullptr);
    EXPECT_EQ(c->principal_id, kDev1);
    EXPECT_EQ(c->fingerprint, policy_.FindCertificate("devices", fleet_.dev1.serial_hex)->fingerprint);
    EXPECT_EQ(loaded.FindCertificate("external", "0badc0de")->status,
              v1::CERTIFICATE_STATUS_REVOKED);
    for (const char* id : {kDev1, kDev2, testing::kDev3}) {
      EXPECT_EQ(Pairs(loaded.ResolveRules(v1::PRINCIPAL_TYPE_DEVICE, id, loaded.FindDevice(id))),
                Pairs(policy_.ResolveRules(v1::PRINCIPAL_TYPE_DEVICE, id, policy_.FindDevice(id))))
          << id;
    }
    EXPECT_EQ(Pairs(loaded.ResolveRules(v1::PRINCIPAL_TYPE_IDENTITY, "ops", nullptr)),
              Pairs(policy_.ResolveRules(v1::PRINCIPAL_TYPE_IDENTITY, "ops", nullptr)));
  }

  Fleet fleet_;
  Policy policy_;
};

TEST_F(CacheTest, RoundTrip) {
  const std::string content = SerializeCache(policy_, 4242);
  EXPECT_EQ(content.rfind(kFormatLine, 0), 0u);
  absl::StatusOr<LoadedCache> loaded = ParseCache(content);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->revision, 4242);
  EXPECT_EQ(loaded->objects, static_cast<int64_t>(policy_.ObjectCount()));
  ASSERT_NE(loaded->policy, nullptr);
  ExpectSame(*loaded->policy);
  // Rules resolve through the loaded profiles (not merely the same lines).
  EXPECT_THAT(Pairs(loaded->policy->ResolveRules(v1::PRINCIPAL_TYPE_DEVICE, testing::kDev3,
                                                  loaded->policy->FindDevice(testing::kDev3))),
              ElementsAre(Pair("sites/ber1/secret", static_cast<int>(acl::Access::kDeny)),
                          Pair(std::string("devices/") + testing::kDev3 + "/#",
                               static_cast<int>(acl::Access::kReadWrite)),
                          Pair("fleet/broadcast", static_cast<int>(acl::Access::kRead)),
                          Pair("sites/ber1/#", static_cast<int>(acl::Access::kRead))));
  // Serialising the loaded policy again gives a cache that loads the same.
  absl::StatusOr<LoadedCache> again = ParseCache(SerializeCache(*loaded->policy, 4242));
  ASSERT_TRUE(again.ok()) << again.status();
  ExpectSame(*again->policy);
}

TEST_F(CacheTest, EmptyPolicyRoundTrip) {
  absl::StatusOr<LoadedCache> loaded = ParseCache(SerializeCache(Policy(), 1));
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->revision, 1);
  EXPECT_EQ(loaded->objects, 0);
  ASSERT_NE(loaded->policy, nullptr);
  EXPECT_EQ(loaded->policy->ObjectCount(), 0u);
}

TEST_F(CacheTest, ExactlyOneFullMessage) {
  // 1,024 objects: one full `changes` message (the most that loads as one message).
  Policy full;
  for (int i = 0; i < 1024; ++i) {
    ASSERT_TRUE(full.Apply(DeviceChange(absl::StrCat("3569380356", 10000 + i))));
  }
  absl::StatusOr<LoadedCache> loaded = ParseCache(SerializeCache(full, 3));
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->objects, 1024);
}

TEST_F(CacheTest, ManyObjectsSpanSeveralMessages) {
  // More than 1,024 objects are written as several `changes` messages.
  Policy big;
  for (int i = 0; i < 3000; ++i) {
    ASSERT_TRUE(big.Apply(DeviceChange(absl::StrCat("3569380356", 10000 + i),
                                       v1::DEVICE_STATUS_ACTIVE, {"g"}, {{"i", absl::StrCat(i)}})));
  }
  absl::StatusOr<LoadedCache> loaded = ParseCache(SerializeCache(big, 9));
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->objects, 3000);
  EXPECT_EQ(loaded->policy->ObjectCount(), 3000u);
  EXPECT_EQ(Dump(*loaded->policy), Dump(big));
}

TEST_F(CacheTest, SaveWritesMode0600AndLoadReadsItBack) {
  const std::string dir = MakeTempDir();
  const std::string path = dir + "/fleetca-policy.cache";
  ASSERT_TRUE(SaveCache(path, policy_, 77).ok());
  struct stat st;
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  absl::StatusOr<LoadedCache> loaded = LoadCache(path);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->revision, 77);
  ExpectSame(*loaded->policy);

  // Saving a newer policy replaces it (still 0600).
  Policy newer(policy_);
  ASSERT_TRUE(newer.Apply(DeviceChange(kDev2, v1::DEVICE_STATUS_SUSPENDED)));
  ASSERT_TRUE(SaveCache(path, newer, 78).ok());
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  loaded = LoadCache(path);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->revision, 78);
  EXPECT_EQ(loaded->policy->FindDevice(kDev2)->status, v1::DEVICE_STATUS_SUSPENDED);
}

TEST_F(CacheTest, LoadMissingFileIsNotFound) {
  const std::string dir = MakeTempDir();
  absl::StatusOr<LoadedCache> loaded = LoadCache(dir + "/nothing-here.cache");
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kNotFound) << loaded.status();
}

// ---- Corruption: always DATA_LOSS, never a policy -------------------------------------------

void ExpectDataLoss(const std::string& content, const std::string& what) {
  absl::StatusOr<LoadedCache> loaded = ParseCache(content);
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kDataLoss)
      << what << ": " << loaded.status();
}

TEST_F(CacheTest, EmptyFile) {
  ExpectDataLoss("", "empty");
  const std::string dir = MakeTempDir();
  WriteFile(dir + "/empty.cache", "");
  EXPECT_EQ(LoadCache(dir + "/empty.cache").status().code(), absl::StatusCode::kDataLoss);
}

TEST_F(CacheTest, WrongFormatLine) {
  const std::string content = SerializeCache(policy_, 5);
  const std::string rest = content.substr(sizeof(kFormatLine) - 1);
  for (const std::string& line :
       {std::string("fleetca-plugin-cache 2\n"), std::string("fleetca-plugin-cache 1\r\n"),
        std::string("fleetca-plugin-cache  1\n"), std::string("FLEETCA-PLUGIN-CACHE 1\n"),
        std::string("")}) {
    ExpectDataLoss(line + rest, "format line " + line);
  }
  // A valid checksum over another format line does not help.
  std::string other = "fleetca-plugin-cache 2\n" + content.substr(sizeof(kFormatLine) - 1);
  other.resize(other.size() - 32);
  ExpectDataLoss(other + pki::Sha256(other), "version 2, resealed");
  absl::StatusOr<LoadedCache> loaded = ParseCache("fleetca-plugin-cache 2\n" + rest);
  EXPECT_THAT(loaded.status().message(), HasSubstr("not a fleetca plugin cache"));
}

TEST_F(CacheTest, TruncatedAnywhere) {
  const std::string content = SerializeCache(policy_, 5);
  ASSERT_GT(content.size(), 1000u);
  std::vector<size_t> cuts;
  for (size_t n = 0; n < content.size(); n += 97) cuts.push_back(n);
  // And the places most likely to be mistaken for an end.
  for (size_t n : {sizeof(kFormatLine) - 1, sizeof(kFormatLine), sizeof(kFormatLine) - 1 + 32,
                   content.size() - 33, content.size() - 32, content.size() - 31,
                   content.size() - 1}) {
    cuts.push_back(n);
  }
  for (size_t n : cuts) ExpectDataLoss(content.substr(0, n), absl::StrCat("cut at ", n));

  // Also when the truncated content is resealed with a checksum of its own: the snapshot is
  // incomplete, or a message is cut.
  const std::string body = content.substr(0, content.size() - 32);
  for (size_t n = sizeof(kFormatLine) - 1; n < body.size(); n += 97) {
    const std::string cut = body.substr(0, n);
    ExpectDataLoss(cut + pki::Sha256(cut), absl::StrCat("cut and resealed at ", n));
  }
  ExpectDataLoss(std::string(kFormatLine) + pki::Sha256(kFormatLine), "format line only");
}

TEST_F(CacheTest, TruncatedFileOnDisk) {
  const std::string dir = MakeTempDir();
  const std::string path = dir + "/fleetca-policy.cache";
  const std::string content = SerializeCache(policy_, 5);
  WriteFile(path, content.substr(0, content.size() / 2));
  EXPECT_EQ(LoadCache(path).status().code(), absl::StatusCode::kDataLoss);
}

TEST_F(CacheTest, OneByteFlipped) {
  const std::string content = SerializeCache(policy_, 5);
  for (size_t at : {content.size() / 2, sizeof(kFormatLine) + 3, content.size() - 40,
                    content.size() - 1}) {
    std::string flipped = content;
    flipped[at] = static_cast<char>(flipped[at] ^ 0x20);
    ExpectDataLoss(flipped, absl::StrCat("flipped at ", at));
  }
  std::string flipped = content;
  flipped[content.size() / 2] = static_cast<char>(flipped[content.size() / 2] ^ 0x01);
  absl::StatusOr<LoadedCache> loaded = ParseCache(flipped);
  EXPECT_THAT(loaded.status().message(), HasSubstr("checksum"));
}

TEST_F(CacheTest, ExtraBytesAppended) {
  const std::string content = SerializeCache(policy_, 5);
  ExpectDataLoss(content + "x", "one byte appended");
  ExpectDataLoss(content + std::string(32, '\0'), "32 zero bytes appended");
  ExpectDataLoss(content + content, "the cache twice");
}

// Past the checksum: a file whose checksum is right but whose content is not a snapshot.
TEST_F(CacheTest, HandMadeValidFrameLoads) {
  // The control for the cases below: the same framing, correct.
  const std::string ok = Frame()
                             .Add(Begin(7))
                             .Add(Changes(7, {DeviceChange(kDev1), IdentityChange(kWatcher)}))
                             .Add(End(7, 2))
                             .Sealed();
  absl::StatusOr<LoadedCache> loaded = ParseCache(ok);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->revision, 7);
  EXPECT_EQ(loaded->objects, 2);
  EXPECT_NE(loaded->policy->FindDevice(kDev1), nullptr);
  EXPECT_NE(loaded->policy->FindIdentity(kWatcher), nullptr);
}

TEST_F(CacheTest, ASnapshotInSeveralChangesMessagesLoads) {
  // Two `changes` messages in a row, as SerializeCache writes for more than 1,024 objects
  // and as the stream sends a large snapshot: each message's changes counted once.
  const std::string content = Frame()
                                  .Add(Begin(7))
                                  .Add(Changes(7, {DeviceChange(kDev1)}))
                                  .Add(Changes(7, {DeviceChange(kDev2)}))
                                  .Add(End(7, 2))
                                  .Sealed();
  absl::StatusOr<LoadedCache> loaded = ParseCache(content);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->objects, 2);
  EXPECT_EQ(loaded->policy->ObjectCount(), 2u);
}

TEST_F(CacheTest, ResealedButInconsistent) {
  struct Case {
    const char* name;
    std::string content;
    const char* message_part;
  };
  const std::vector<Case> cases = {
      {"object_count_too_high",
       Frame().Add(Begin(7)).Add(Changes(7, {DeviceChange(kDev1)})).Add(End(7, 2)).Sealed(),
       "inconsistent"},
      {"object_count_too_low",
       Frame()
           .Add(Begin(7))
           .Add(Changes(7, {DeviceChange(kDev1), DeviceChange(kDev2)}))
           .Add(End(7, 1))
           .Sealed(),
       "inconsistent"},
      {"end_revision_differs",
       Frame().Add(Begin(7)).Add(Changes(7, {DeviceChange(kDev1)})).Add(End(8, 1)).Sealed(),
       "inconsistent"},
      {"no_snapshot_end",
       Frame().Add(Begin(7)).Add(Changes(7, {DeviceChange(kDev1)})).Sealed(),
       "ends before"},
      {"end_without_begin", Frame().Add(End(7, 0)).Sealed(), "inconsistent"},
      {"changes_before_the_snapshot",
       Frame().Add(Changes(6, {DeviceChange(kDev2)})).Add(Begin(7)).Add(End(7, 0)).Sealed(),
       "inconsistent"},
      {"a_change_without_its_key",
       Frame().Add(Begin(7)).Add(Changes(7, {DeviceChange("")})).Add(End(7, 1)).Sealed(),
       "inconsistent"},
      {"a_second_snapshot",
       Frame()
           .Add(Begin(7))
           .Add(End(7, 0))
           .Add(Begin(8))
           .Add(Changes(8, {DeviceChange(kDev1)}))
           .Add(End(8, 1))
           .Sealed(),
       "more than one snapshot"},
      {"deltas_after_the_snapshot",
       Frame()
           .Add(Begin(7))
           .Add(End(7, 0))
           .Add(Changes(9, {DeviceChange(kDev1)}))
           .Sealed(),
       "more than one snapshot"},
      {"garbage_after_the_snapshot",
       Frame().Add(Begin(7)).Add(End(7, 0)).Raw("\x05garbage").Sealed(), ""},
      {"a_message_that_does_not_parse",
       Frame().Add(Begin(7)).Raw(std::string("\x03\xff\xff\xff", 4)).Add(End(7, 0)).Sealed(),
       "does not parse"},
      {"a_message_without_an_event", Frame().Add(v1::WatchResponse()).Sealed(), "inconsistent"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    absl::StatusOr<LoadedCache> loaded = ParseCache(c.content);
    EXPECT_EQ(loaded.status().code(), absl::StatusCode::kDataLoss) << loaded.status();
    EXPECT_THAT(loaded.status().message(), HasSubstr(c.message_part));
  }
}

}  // namespace
}  // namespace fleetca::plugin
