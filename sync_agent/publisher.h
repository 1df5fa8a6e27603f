#pragma once

// Publisher: validates rendered files, replaces those that changed, and asks the broker to
// reload them (SIGHUP) when at least one did.

#include <sys/types.h>

#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "sync_agent/render.h"

namespace fleetca::sync_agent {

// BrokerSignaller asks the broker to reload its files.
class BrokerSignaller {
 public:
  virtual ~BrokerSignaller() = default;
  // Reload asks for the reload; the status says why it could not (the files stay written).
  virtual absl::Status Reload() = 0;
};

// PidSignaller sends SIGHUP to a fixed process id. Reload: NOT_FOUND when the process does
// not exist, PERMISSION_DENIED when it may not be signalled.
class PidSignaller final : public BrokerSignaller {
 public:
  explicit PidSignaller(pid_t pid) : pid_(pid) {}
  absl::Status Reload() override;

 private:
  pid_t pid_;
};

// PidFileSignaller reads the broker's pid from a file (mosquitto's `pid_file`) at every
// Reload, so a restarted broker is found, and sends it SIGHUP. Reload: NOT_FOUND when the
// file or the process does not exist, FAILED_PRECONDITION when the file does not hold a
// process id (> 1), PERMISSION_DENIED when the process may not be signalled.
class PidFileSignaller final : public BrokerSignaller {
 public:
  explicit PidFileSignaller(std::string path) : path_(std::move(path)) {}
  absl::Status Reload() override;

 private:
  std::string path_;
};

// The files the broker reads.
struct OutputPaths {
  std::string cafile;
  std::string crlfile;
  std::string acl_file;
};

// PublishResult says what one Publish did.
struct PublishResult {
  // Which files were replaced (their content changed and passed validation).
  bool cafile_written = false;
  bool crlfile_written = false;
  bool acl_file_written = false;
  // signalled: the broker was sent SIGHUP.
  bool signalled = false;
  // errors: files refused (the old file kept), writes and signals that failed.
  std::vector<std::string> errors;
  // warnings: accepted but doubtful (an expired CRL).
  std::vector<std::string> warnings;

  bool any_written() const { return cafile_written || crlfile_written || acl_file_written; }
};

class Publisher {
 public:
  // signaller: borrowed, may be null (files are only written). clock: the time CRLs are
  // checked against. reload_pending: signal at the first Publish even when nothing
  // changed (an agent that starts cannot know whether the broker read the current files:
  // a previous run may have died between a rename and its signal).
  Publisher(OutputPaths paths, BrokerSignaller* signaller,
            std::function<absl::Time()> clock = absl::Now, bool reload_pending = false)
      : paths_(std::move(paths)),
        signaller_(signaller),
        clock_(std::move(clock)),
        reload_pending_(reload_pending) {}

  // Publish validates each file (ValidateCaFile, ValidateCrlFile against files.issuer_pems,
  // CheckAclFile) and replaces the ones that changed (ReplaceFileIfChanged, mode 0644),
  // crlfile first, then cafile, then acl_file. A file that fails validation or cannot be
  // written keeps its old content, and the reason goes to `errors`. The broker is signalled
  // when at least one file was replaced, or a signal failed earlier (reload_pending). Not
  // thread-safe.
  PublishResult Publish(const RenderedFiles& files);

  // reload_pending is true while files were replaced but the broker could not be told.
  bool reload_pending() const { return reload_pending_; }
  // RetryReload signals the broker again if reload_pending; true when it was signalled.
  bool RetryReload(std::vector<std::string>* errors);

 private:
  void Replace(const std::string& path, const std::string& content, bool* written,
               PublishResult* result);

  OutputPaths paths_;
  BrokerSignaller* signaller_;
  std::function<absl::Time()> clock_;
  bool reload_pending_;
};

}  // namespace fleetca::sync_agent
