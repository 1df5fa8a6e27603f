// Publisher and ReplaceFileIfChanged: validation before replacement, atomic writes with
// mode 0644, and SIGHUP only when something changed (to a fake, and to a real process).
#include "sync_agent/publisher.h"

#include <dirent.h>
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "tests/sync_agent/sync_test_util.h"

namespace fleetca::sync_agent {
namespace {

using namespace ::fleetca::sync_agent::testing;  // NOLINT
using ::testing::HasSubstr;

mode_t ModeOf(const std::string& path) {
  struct stat st;
  EXPECT_EQ(stat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

ino_t InodeOf(const std::string& path) {
  struct stat st;
  EXPECT_EQ(stat(path.c_str(), &st), 0) << path;
  return st.st_ino;
}

std::vector<std::string> ListDir(const std::string& dir) {
  std::vector<std::string> names;
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return names;
  while (dirent* e = readdir(d)) {
    const std::string name = e->d_name;
    if (name != "." && name != "..") names.push_back(name);
  }
  closedir(d);
  std::sort(names.begin(), names.end());
  return names;
}

TEST(ReplaceFileTest, NewFileIsWrittenWithMode0644WhateverTheUmask) {
  const std::string dir = MakeTempDir("replace");
  const std::string path = dir + "/acl";
  const mode_t old_umask = umask(077);
  auto written = ReplaceFileIfChanged(path, "user a\n");
  umask(old_umask);
  ASSERT_TRUE(written.ok()) << written.status();
  EXPECT_TRUE(*written);
  EXPECT_EQ(ReadOrEmpty(path), "user a\n");
  EXPECT_EQ(ModeOf(path), 0644u);
  EXPECT_EQ(ListDir(dir), std::vector<std::string>{"acl"});  // no temporary file left
}

TEST(ReplaceFileTest, ContentIsReplacedWholeAndOpenReadersKeepTheOldFile) {
  const std::string dir = MakeTempDir("replace");
  const std::string path = dir + "/crl.pem";
  const std::string old_content(100000, 'x');
  WriteFileOrDie(path, old_content, 0600);
  const int reader = open(path.c_str(), O_RDONLY);
  ASSERT_GE(reader, 0);

  auto written = ReplaceFileIfChanged(path, "short\n");
  ASSERT_TRUE(written.ok()) << written.status();
  EXPECT_TRUE(*written);
  EXPECT_EQ(ReadOrEmpty(path), "short\n");  // nothing of the longer old content remains
  EXPECT_EQ(ModeOf(path), 0644u);           // the mode is set, not inherited
  // A reader that opened the old file reads it whole: the new one is a new inode.
  std::string seen(old_content.size() + 10, '\0');
  EXPECT_EQ(read(reader, seen.data(), seen.size()), static_cast<ssize_t>(old_content.size()));
  close(reader);
  EXPECT_EQ(ListDir(dir), std::vector<std::string>{"crl.pem"});
}

TEST(ReplaceFileTest, UnchangedFileIsNotRewritten) {
  const std::string dir = MakeTempDir("replace");
  const std::string path = dir + "/ca.pem";
  WriteFileOrDie(path, "same\n");
  const ino_t inode = InodeOf(path);
  auto written = ReplaceFileIfChanged(path, "same\n");
  ASSERT_TRUE(written.ok());
  EXPECT_FALSE(*written);
  EXPECT_EQ(InodeOf(path), inode);
  // Same content, wrong mode: rewritten with the mode.
  ASSERT_EQ(chmod(path.c_str(), 0600), 0);
  written = ReplaceFileIfChanged(path, "same\n");
  ASSERT_TRUE(written.ok());
  EXPECT_TRUE(*written);
  EXPECT_EQ(ModeOf(path), 0644u);
}

TEST(ReplaceFileTest, MissingDirectoryIsNotFound) {
  auto written = ReplaceFileIfChanged(MakeTempDir("replace") + "/no/such/file", "x");
  EXPECT_EQ(written.status().code(), absl::StatusCode::kNotFound) << written.status();
}

// FakeSignaller counts reloads; fails while `fail` is set.
class FakeSignaller final : public BrokerSignaller {
 public:
  absl::Status Reload() override {
    if (fail) return absl::NotFoundError("no broker");
    ++reloads;
    return absl::OkStatus();
  }
  int reloads = 0;
  bool fail = false;
};

// HangupRecorder is a real child process that writes one byte to a pipe per SIGHUP.
class HangupRecorder {
 public:
  HangupRecorder() {
    int hups[2];
    int ready[2];
    EXPECT_EQ(pipe(hups), 0);
    EXPECT_EQ(pipe(ready), 0);
    pid_ = fork();
    if (pid_ == 0) {
      // The child: async-signal-safe calls only.
      hup_fd_ = hups[1];
      struct sigaction sa;
      memset(&sa, 0, sizeof(sa));
      sa.sa_handler = [](int) {
        const char c = 'H';
        (void)!write(hup_fd_, &c, 1);
      };
      sigaction(SIGHUP, &sa, nullptr);
      sigset_t set;
      sigemptyset(&set);
      sigaddset(&set, SIGHUP);
      sigprocmask(SIG_UNBLOCK, &set, nullptr);
      (void)!write(ready[1], "R", 1);
      for (;;) pause();
    }
    close(hups[1]);
    close(ready[1]);
    hups_ = hups[0];
    char c;
    EXPECT_EQ(read(ready[0], &c, 1), 1);
    close(ready[0]);
  }
  ~HangupRecorder() {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    close(hups_);
  }
  pid_t pid() const { return pid_; }

  // Hangups returns the SIGHUPs received, waiting up to `wait` for `expected` of them (and
  // the whole of `wait` when expected is 0, to see that none comes).
  int Hangups(absl::Duration wait, int expected = 1) {
    int count = 0;
    const absl::Time deadline = absl::Now() + wait;
    while (expected == 0 || count < expected) {
      const int ms = static_cast<int>(absl::ToInt64Milliseconds(deadline - absl::Now()));
      if (ms <= 0) break;
      pollfd p{hups_, POLLIN, 0};
      if (poll(&p, 1, ms) <= 0) break;
      char buf[16];
      const ssize_t n = read(hups_, buf, sizeof(buf));
      if (n <= 0) break;
      count += static_cast<int>(n);
    }
    return count;
  }

 private:
  static inline int hup_fd_ = -1;
  pid_t pid_ = -1;
  int hups_ = -1;
};

class PublisherTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    pki_ = new TestPki();
    pki_->AddCa("root", "Publish Root");
    pki_->AddCa("devices", "Publish Devices", "root");
    pki_->AddCa("impostor", "Publish Devices", "root");
  }
  static void TearDownTestSuite() {
    delete pki_;
    pki_ = nullptr;
  }

  void SetUp() override {
    dir_ = MakeTempDir("publish");
    paths_ = {dir_ + "/ca.pem", dir_ + "/crl.pem", dir_ + "/acl"};
  }

  std::vector<v1::SyncChange> Policy() {
    return {Change(Issuer("root", v1::ISSUER_PURPOSE_ROOT, pki_->ca("root").pem)),
            Change(Issuer("devices", v1::ISSUER_PURPOSE_DEVICES, pki_->ca("devices").pem)),
            Change(Crl("root", root_crl_)),
            Change(Crl("devices", devices_crl_)),
            Change(Device("dev-1")),
            Change(Profile("device", {{"devices/%c/#", v1::ACL_ACCESS_READWRITE}})),
            Change(Assignment(v1::ACL_SUBJECT_TYPE_ALL_DEVICES, "", "device"))};
  }
  static RenderedFiles RenderChanges(const std::vector<v1::SyncChange>& changes) {
    PolicyState state;
    for (const v1::SyncChange& c : changes) ApplyChange(c, &state);
    return Render(state);
  }

  static TestPki* pki_;
  std::string root_crl_ = pki_->CrlDer("root", {});
  std::string devices_crl_ = pki_->CrlDer("devices", {});
  std::string dir_;
  OutputPaths paths_;
};
TestPki* PublisherTest::pki_ = nullptr;

TEST_F(PublisherTest, FirstPublishWritesTheThreeFilesAndSignalsOnce) {
  FakeSignaller signaller;
  Publisher publisher(paths_, &signaller);
  const RenderedFiles files = RenderChanges(Policy());
  const PublishResult result = publisher.Publish(files);
  EXPECT_TRUE(result.errors.empty()) << result.errors[0];
  EXPECT_TRUE(result.cafile_written && result.crlfile_written && result.acl_file_written);
  EXPECT_TRUE(result.signalled);
  EXPECT_EQ(signaller.reloads, 1);
  EXPECT_EQ(ReadOrEmpty(paths_.cafile), files.cafile);
  EXPECT_EQ(ReadOrEmpty(paths_.crlfile), files.crlfile);
  EXPECT_EQ(ReadOrEmpty(paths_.acl_file), files.acl_file);
  for (const std::string& p : {paths_.cafile, paths_.crlfile, paths_.acl_file}) {
    EXPECT_EQ(ModeOf(p), 0644u) << p;
  }
}

TEST_F(PublisherTest, UnchangedStateWritesNothingAndSignalsNobody) {
  FakeSignaller signaller;
  Publisher publisher(paths_, &signaller);
  publisher.Publish(RenderChanges(Policy()));
  const ino_t inode = InodeOf(paths_.acl_file);
  const PublishResult again = publisher.Publish(RenderChanges(Policy()));
  EXPECT_FALSE(again.any_written());
  EXPECT_FALSE(again.signalled);
  EXPECT_EQ(signaller.reloads, 1);
  EXPECT_EQ(InodeOf(paths_.acl_file), inode);
  // One file changing is enough for one signal.
  std::vector<v1::SyncChange> changes = Policy();
  changes.push_back(Change(Device("dev-2")));
  const PublishResult changed = publisher.Publish(RenderChanges(changes));
  EXPECT_TRUE(changed.acl_file_written);
  EXPECT_FALSE(changed.cafile_written || changed.crlfile_written);
  EXPECT_TRUE(changed.signalled);
  EXPECT_EQ(signaller.reloads, 2);
}

TEST_F(PublisherTest, RealProcessGetsSighupOnlyWhenAFileChanged) {
  HangupRecorder broker;
  PidSignaller signaller(broker.pid());
  Publisher publisher(paths_, &signaller);
  EXPECT_TRUE(publisher.Publish(RenderChanges(Policy())).signalled);
  EXPECT_EQ(broker.Hangups(absl::Seconds(5)), 1);
  EXPECT_FALSE(publisher.Publish(RenderChanges(Policy())).signalled);
  EXPECT_EQ(broker.Hangups(absl::Milliseconds(300), 0), 0);
  std::vector<v1::SyncChange> changes = Policy();
  changes.push_back(Change(Device("dev-1", v1::DEVICE_STATUS_SUSPENDED)));
  EXPECT_TRUE(publisher.Publish(RenderChanges(changes)).signalled);
  EXPECT_EQ(broker.Hangups(absl::Seconds(5)), 1);

  // The same through a pid file, read at each reload.
  const std::string pid_file = dir_ + "/mosquitto.pid";
  WriteFileOrDie(pid_file, absl::StrCat(broker.pid(), "\n"));
  PidFileSignaller from_file(pid_file);
  EXPECT_TRUE(from_file.Reload().ok());
  EXPECT_EQ(broker.Hangups(absl::Seconds(5)), 1);
}

TEST_F(PublisherTest, CrlSignedByAnotherKeyIsRefusedAndTheOldFileKept) {
  FakeSignaller signaller;
  Publisher publisher(paths_, &signaller);
  publisher.Publish(RenderChanges(Policy()));
  const std::string good_crlfile = ReadOrEmpty(paths_.crlfile);

  std::vector<v1::SyncChange> changes = Policy();
  changes.push_back(Change(Crl("devices", pki_->CrlDerSignedBy("devices", "impostor"), 2)));
  const PublishResult result = publisher.Publish(RenderChanges(changes));
  ASSERT_EQ(result.errors.size(), 1u);
  EXPECT_THAT(result.errors[0], HasSubstr("crlfile refused"));
  EXPECT_THAT(result.errors[0], HasSubstr("not signed by its issuer's key"));
  EXPECT_FALSE(result.crlfile_written);
  EXPECT_FALSE(result.signalled);  // nothing else changed
  EXPECT_EQ(signaller.reloads, 1);
  EXPECT_EQ(ReadOrEmpty(paths_.crlfile), good_crlfile);
}

TEST_F(PublisherTest, TruncatedCafileIsRefusedWhileOtherFilesGoOn) {
  FakeSignaller signaller;
  Publisher publisher(paths_, &signaller);
  publisher.Publish(RenderChanges(Policy()));
  const std::string good_cafile = ReadOrEmpty(paths_.cafile);

  std::vector<v1::SyncChange> changes = Policy();
  changes.push_back(Change(Device("dev-2")));
  RenderedFiles files = RenderChanges(changes);
  files.cafile = files.cafile.substr(0, files.cafile.size() - 40);
  const PublishResult result = publisher.Publish(files);
  ASSERT_EQ(result.errors.size(), 1u);
  EXPECT_THAT(result.errors[0], HasSubstr("cafile refused"));
  EXPECT_EQ(ReadOrEmpty(paths_.cafile), good_cafile);
  EXPECT_TRUE(result.acl_file_written);
  EXPECT_TRUE(result.signalled);
}

TEST_F(PublisherTest, BadAclFileIsRefused) {
  FakeSignaller signaller;
  Publisher publisher(paths_, &signaller);
  publisher.Publish(RenderChanges(Policy()));
  RenderedFiles files = RenderChanges(Policy());
  files.acl_file += "topic bogus x\n";
  const PublishResult result = publisher.Publish(files);
  ASSERT_EQ(result.errors.size(), 1u);
  EXPECT_THAT(result.errors[0], HasSubstr("acl_file refused"));
  EXPECT_FALSE(result.signalled);
  EXPECT_EQ(ReadOrEmpty(paths_.acl_file), RenderChanges(Policy()).acl_file);
}

TEST_F(PublisherTest, ExpiredCrlIsWrittenWithAWarning) {
  Publisher publisher(paths_, nullptr);
  std::vector<v1::SyncChange> changes = Policy();
  changes.push_back(
      Change(Crl("devices", pki_->CrlDer("devices", {}, 3, absl::Now() - absl::Hours(48),
                                         absl::Now() - absl::Hours(1)))));
  const PublishResult result = publisher.Publish(RenderChanges(changes));
  EXPECT_TRUE(result.errors.empty());
  EXPECT_TRUE(result.crlfile_written);
  ASSERT_EQ(result.warnings.size(), 1u);
  EXPECT_THAT(result.warnings[0], HasSubstr("past its nextUpdate"));
}

TEST_F(PublisherTest, FailedSignalIsRetriedUntilTheBrokerHearsIt) {
  FakeSignaller signaller;
  signaller.fail = true;
  Publisher publisher(paths_, &signaller);
  const PublishResult result = publisher.Publish(RenderChanges(Policy()));
  EXPECT_TRUE(result.any_written());
  EXPECT_FALSE(result.signalled);
  ASSERT_EQ(result.errors.size(), 1u);
  EXPECT_THAT(result.errors[0], HasSubstr("not told to reload"));
  EXPECT_TRUE(publisher.reload_pending());
  // Nothing changed since, but the broker still has to reload.
  signaller.fail = false;
  EXPECT_TRUE(publisher.Publish(RenderChanges(Policy())).signalled);
  EXPECT_FALSE(publisher.reload_pending());
  EXPECT_FALSE(publisher.RetryReload(nullptr));
  EXPECT_EQ(signaller.reloads, 1);
}

TEST_F(PublisherTest, PendingReloadAtStartSignalsEvenWhenFilesAreCurrent) {
  FakeSignaller first_signaller;
  Publisher(paths_, &first_signaller).Publish(RenderChanges(Policy()));
  FakeSignaller signaller;
  Publisher restarted(paths_, &signaller, absl::Now, /*reload_pending=*/true);
  const PublishResult result = restarted.Publish(RenderChanges(Policy()));
  EXPECT_FALSE(result.any_written());
  EXPECT_TRUE(result.signalled);
}

TEST(PidFileSignallerTest, RefusesWhatIsNotABrokerPid) {
  const std::string dir = MakeTempDir("pidfile");
  EXPECT_EQ(PidFileSignaller(dir + "/none").Reload().code(), absl::StatusCode::kNotFound);
  for (const char* text : {"", "abc", "1", "0", "-1", "12 13"}) {
    WriteFileOrDie(dir + "/pid", text);
    EXPECT_EQ(PidFileSignaller(dir + "/pid").Reload().code(), absl::StatusCode::kFailedPrecondition)
        << text;
  }
}

}  // namespace
}  // namespace fleetca::sync_agent
