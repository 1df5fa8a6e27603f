#pragma once

// Child processes for tests that drive real programs (mosquitto, mosquitto_pub/sub):
// started with posix_spawn (safe in a process that has threads), output to a file, killed
// when the test is done with them.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/file_util.h"

extern char** environ;

namespace fleetca::sync_agent::testing {

class Process {
 public:
  // Start runs argv (argv[0] a path) with stdin from /dev/null and stdout and stderr
  // appended to output_path. Null when it cannot be started.
  static std::unique_ptr<Process> Start(const std::vector<std::string>& argv,
                                        const std::string& output_path) {
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 1, output_path.c_str(),
                                     O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t none;
    sigemptyset(&none);
    sigset_t all;
    sigfillset(&all);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    pid_t pid = -1;
    const int rc = posix_spawn(&pid, args[0], &actions, &attr, args.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    if (rc != 0) return nullptr;
    return std::unique_ptr<Process>(new Process(pid));
  }

  ~Process() {
    if (Running()) {
      kill(pid_, SIGKILL);
      Reap(true);
    }
  }

  pid_t pid() const { return pid_; }

  bool Running() { return exit_code_ == kRunning && !Reap(false); }

  // Wait waits up to timeout for the exit; the exit code, 128 + signal when killed, or
  // -1 when it was still running (it is then killed).
  int Wait(absl::Duration timeout) {
    const absl::Time deadline = absl::Now() + timeout;
    while (Running()) {
      if (absl::Now() >= deadline) {
        kill(pid_, SIGKILL);
        Reap(true);
        return -1;
      }
      absl::SleepFor(absl::Milliseconds(5));
    }
    return exit_code_;
  }

  void Signal(int sig) { kill(pid_, sig); }

 private:
  static constexpr int kRunning = -1000;
  explicit Process(pid_t pid) : pid_(pid) {}

  // Reap collects the exit status: true once the process has exited.
  bool Reap(bool block) {
    if (exit_code_ != kRunning) return true;
    int status = 0;
    const pid_t r = waitpid(pid_, &status, block ? 0 : WNOHANG);
    if (r != pid_) return false;
    exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return true;
  }

  pid_t pid_;
  int exit_code_ = kRunning;
};

struct RunResult {
  int exit_code = -1;  // -1: timed out
  std::string output;
};

// RunProgram runs argv to its end (killed after timeout), collecting its output through a file
// in scratch_dir.
inline RunResult RunProgram(const std::vector<std::string>& argv, absl::Duration timeout,
                            const std::string& scratch_dir) {
  static int counter = 0;
  const std::string out = scratch_dir + "/run-" + std::to_string(++counter) + ".out";
  RunResult result;
  std::unique_ptr<Process> p = Process::Start(argv, out);
  if (p == nullptr) {
    result.output = "cannot start " + argv[0];
    return result;
  }
  result.exit_code = p->Wait(timeout);
  auto text = ReadFileToString(out);
  if (text.ok()) result.output = *text;
  unlink(out.c_str());
  return result;
}

}  // namespace fleetca::sync_agent::testing
