#include "common/file_util.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace fleetca {
namespace {

absl::Status ErrnoError(int err, absl::string_view step, const std::string& path) {
  const std::string message = absl::StrCat(step, " ", path, ": ", std::strerror(err));
  switch (err) {
    case EACCES:
    case EPERM:
    case EROFS:
      return absl::PermissionDeniedError(message);
    case ENOENT:
    case ENOTDIR:
      return absl::NotFoundError(message);
    default:
      return absl::UnavailableError(message);
  }
}

// Directory and base name of a path ("a/b" -> "a", "b"; "b" -> ".", "b").
std::pair<std::string, std::string> SplitPath(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return {".", path};
  if (slash == 0) return {"/", path.substr(1)};
  return {path.substr(0, slash), path.substr(slash + 1)};
}

absl::Status WriteAll(int fd, absl::string_view content, const std::string& path) {
  size_t done = 0;
  while (done < content.size()) {
    const ssize_t n = ::write(fd, content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return ErrnoError(n < 0 ? errno : EIO, "write", path);
    done += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::string> ReadFileToString(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoError(errno, "open", path);
  std::string out;
  char buf[65536];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      return ErrnoError(err, "read", path);
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

absl::StatusOr<bool> ReplaceFileIfChanged(const std::string& path, absl::string_view content,
                                          mode_t mode) {
  // Unchanged (content and mode): nothing to do.
  struct stat st;
  if (::stat(path.c_str(), &st) == 0 && (st.st_mode & 07777) == mode &&
      static_cast<size_t>(st.st_size) == content.size()) {
    absl::StatusOr<std::string> current = ReadFileToString(path);
    if (current.ok() && *current == content) return false;
  }
  if (absl::Status status = ReplaceFile(path, content, mode); !status.ok()) return status;
  return true;
}

absl::Status ReplaceFile(const std::string& path, absl::string_view content, mode_t mode) {
  const auto [dir, base] = SplitPath(path);

  // 1. A temporary file beside the target, written whole, with its mode, on disk.
  std::string tmp = absl::StrCat(dir, "/.", base, ".tmp-XXXXXX");
  const int fd = ::mkostemp(tmp.data(), O_CLOEXEC);
  if (fd < 0) return ErrnoError(errno, "create a temporary file for", path);
  auto fail = [&](absl::Status status) {
    ::close(fd);
    ::unlink(tmp.c_str());
    return status;
  };
  if (absl::Status status = WriteAll(fd, content, tmp); !status.ok()) return fail(status);
  if (::fchmod(fd, mode) != 0) return fail(ErrnoError(errno, "chmod", tmp));
  if (::fsync(fd) != 0) return fail(ErrnoError(errno, "fsync", tmp));
  if (::close(fd) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    return ErrnoError(err, "close", tmp);
  }

  // 2. The rename: readers see the old file or the new one.
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    return ErrnoError(err, "rename onto", path);
  }

  // 3. The directory entry on disk too.
  const int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd < 0) return ErrnoError(errno, "open the directory of", path);
  const int rc = ::fsync(dir_fd);
  const int err = errno;
  ::close(dir_fd);
  if (rc != 0) return ErrnoError(err, "fsync the directory of", path);
  return absl::OkStatus();
}


absl::Status WriteFileAtomically(const std::string& path, const std::string& content, int mode) {
  return ReplaceFileIfChanged(path, content, static_cast<mode_t>(mode)).status();
}

absl::StatusOr<std::string> ReadSecretFile(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    const int err = errno;
    const std::string why = absl::StrCat(path, ": ", std::strerror(err));
    return err == EACCES ? absl::PermissionDeniedError(why) : absl::NotFoundError(why);
  }
  if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        path, ": holds a secret but is readable by group or others; chmod 600 it"));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::PermissionDeniedError(absl::StrCat(path, ": cannot be read"));
  std::stringstream buf;
  buf << in.rdbuf();
  return std::string(absl::StripAsciiWhitespace(buf.str()));
}

}  // namespace fleetca
