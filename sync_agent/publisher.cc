#include "sync_agent/publisher.h"

#include <signal.h>

#include <cerrno>
#include <cstring>
#include <limits>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "pki/openssl_util.h"
#include "common/file_util.h"
#include "sync_agent/validate.h"

namespace fleetca::sync_agent {
namespace {

absl::Status SendHangup(pid_t pid) {
  if (::kill(pid, SIGHUP) == 0) return absl::OkStatus();
  const int err = errno;
  const std::string message = absl::StrCat("SIGHUP to process ", pid, ": ", std::strerror(err));
  if (err == ESRCH) return absl::NotFoundError(message);
  if (err == EPERM) return absl::PermissionDeniedError(message);
  return absl::InternalError(message);
}

}  // namespace

absl::Status PidSignaller::Reload() { return SendHangup(pid_); }

absl::Status PidFileSignaller::Reload() {
  absl::StatusOr<std::string> text = ReadFileToString(path_);
  if (!text.ok()) return text.status();
  int64_t pid = 0;
  if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(*text), &pid) || pid <= 1 ||
      pid > std::numeric_limits<pid_t>::max()) {
    // Never 0, -1 or 1: kill() would signal a process group, every process, or init.
    return absl::FailedPreconditionError(absl::StrCat(path_, " does not hold a process id"));
  }
  return SendHangup(static_cast<pid_t>(pid));
}

void Publisher::Replace(const std::string& path, const std::string& content, bool* written,
                        PublishResult* result) {
  absl::StatusOr<bool> replaced = ReplaceFileIfChanged(path, content, 0644);
  if (!replaced.ok()) {
    result->errors.push_back(absl::StrCat("cannot write ", path,
                                          " (the old file stays): ", replaced.status().message()));
    return;
  }
  *written = *replaced;
}

PublishResult Publisher::Publish(const RenderedFiles& files) {
  PublishResult result;
  // 1. crlfile: every CRL verified with its issuer's key (any issuer of the state).
  std::vector<pki::X509Ptr> issuers;
  for (const std::string& pem : files.issuer_pems) {
    auto certs = pki::CertificatesFromPem(pem);
    if (!certs.ok()) continue;  // such an issuer is refused by ValidateCaFile below
    for (pki::X509Ptr& cert : *certs) issuers.push_back(std::move(cert));
  }
  std::vector<const X509*> issuer_ptrs;
  for (const pki::X509Ptr& cert : issuers) issuer_ptrs.push_back(cert.get());
  if (absl::Status status = ValidateCrlFile(files.crlfile, issuer_ptrs, clock_(), &result.warnings);
      !status.ok()) {
    result.errors.push_back(
        absl::StrCat("crlfile refused (the old ", paths_.crlfile, " stays): ", status.message()));
  } else {
    Replace(paths_.crlfile, files.crlfile, &result.crlfile_written, &result);
  }
  // 2. cafile.
  if (auto certs = ValidateCaFile(files.cafile); !certs.ok()) {
    result.errors.push_back(absl::StrCat("cafile refused (the old ", paths_.cafile,
                                         " stays): ", certs.status().message()));
  } else {
    Replace(paths_.cafile, files.cafile, &result.cafile_written, &result);
  }
  // 3. acl_file.
  if (absl::Status status = CheckAclFile(files.acl_file); !status.ok()) {
    result.errors.push_back(
        absl::StrCat("acl_file refused (the old ", paths_.acl_file, " stays): ", status.message()));
  } else {
    Replace(paths_.acl_file, files.acl_file, &result.acl_file_written, &result);
  }
  // 4. The signal, once for all files.
  if (result.any_written()) reload_pending_ = true;
  result.signalled = RetryReload(&result.errors);
  return result;
}

bool Publisher::RetryReload(std::vector<std::string>* errors) {
  if (!reload_pending_) return false;
  if (signaller_ == nullptr) {
    reload_pending_ = false;  // nobody to tell: the broker reloads when its operator says
    return false;
  }
  if (absl::Status status = signaller_->Reload(); !status.ok()) {
    if (errors != nullptr) {
      errors->push_back(
          absl::StrCat("the broker was not told to reload (retried later): ", status.message()));
    }
    return false;
  }
  reload_pending_ = false;
  return true;
}

}  // namespace fleetca::sync_agent
