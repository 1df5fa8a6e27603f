// fault_load: the issuance and revocation load of the fault tests (tests/faults), as many
// concurrent clients as --clients, each a thread on its own gRPC connection (TLS with a
// client certificate, the production path), that must survive the server being killed,
// PostgreSQL restarting or refusing connections, and must record every answer it got.
//
// Each issuing client loops: RegisterDevice (ALREADY_EXISTS after a retry counts as done),
// a new P-256 key and CSR (OpenSSL), SignDeviceCsr with a request id of its own. A call that
// fails with a transient code (UNAVAILABLE, DEADLINE_EXCEEDED, ABORTED, CANCELLED, UNKNOWN,
// INTERNAL, RESOURCE_EXHAUSTED) is retried with the SAME request id, until it succeeds or
// --request_give_up_seconds pass: what the idempotency of request ids promises is tested by
// exactly these retries. The revoking clients revoke certificates already received, each
// retried with the same serial until acknowledged.
//
// Output, in --out_dir, one JSON object per line, flushed line by line (a killed driver
// still leaves everything it acknowledged):
//   certificates.jsonl  every certificate received: request_id, comm_id, serial,
//                       fingerprint, replayed, attempts, errors (codes seen before success),
//                       t_first (wall clock of the first attempt), t_ok, pem, key (PEM)
//   revocations.jsonl   every acknowledged revocation: serial, already_revoked, attempts,
//                       t_first, t_ok
//   failures.jsonl      requests given up, or refused with a non-transient code
//   replays.jsonl       after the stop: every certificate's request sent once more (same
//                       request id and CSR): the answer must be the same certificate
//   summary.json        counts (also printed on stdout)
//
// It runs until --stop_file exists (or --max_seconds pass), then lets each client finish
// the request it holds, then replays every request once (--replay), then exits 0 (1 when a
// replay returned another certificate, 2 on usage errors).
#include <grpcpp/grpcpp.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "fleetca/v1/device_registry.grpc.pb.h"
#include "fleetca/v1/issuance.grpc.pb.h"
#include "fleetca/v1/revocation.grpc.pb.h"

ABSL_FLAG(std::string, target, "127.0.0.1:50051", "fleetca-server address");
ABSL_FLAG(std::string, server_name, "localhost", "name the server's certificate must carry");
ABSL_FLAG(std::string, cacert, "", "PEM bundle that verifies the server");
ABSL_FLAG(std::string, credential, "", "PEM file: the client's private key, certificate, chain");
ABSL_FLAG(int, clients, 16, "issuing clients (threads, one connection each)");
ABSL_FLAG(int, revokers, 2, "revoking clients (threads, one connection each)");
ABSL_FLAG(double, revoke_interval_ms, 40, "pause of each revoking client between revocations");
ABSL_FLAG(std::string, prefix, "", "comm-ID and request-id prefix (default fl<pid>)");
ABSL_FLAG(std::string, out_dir, ".", "where the JSONL files go");
ABSL_FLAG(std::string, stop_file, "", "stop once this file exists");
ABSL_FLAG(double, max_seconds, 600, "stop after this long whatever happens");
ABSL_FLAG(double, call_timeout_seconds, 15, "deadline of each attempt");
ABSL_FLAG(double, request_give_up_seconds, 180, "give a request up after retrying this long");
ABSL_FLAG(bool, replay, true, "after the stop, send every request once more");

namespace {

using Clock = std::chrono::steady_clock;
namespace v1 = fleetca::v1;

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "fault_load: %s\n", what.c_str());
  ERR_print_errors_fp(stderr);
  std::exit(2);
}

double WallNow() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) Die("cannot read " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The PEM blocks of a file, split into the private key and the certificates.
void SplitCredential(const std::string& pem, std::string* key, std::string* certs) {
  size_t pos = 0;
  while ((pos = pem.find("-----BEGIN ", pos)) != std::string::npos) {
    const size_t end_marker = pem.find("-----END ", pos);
    if (end_marker == std::string::npos) break;
    size_t end = pem.find("-----", end_marker + 9);
    if (end == std::string::npos) break;
    end += 5;
    const std::string block = pem.substr(pos, end - pos) + "\n";
    if (block.find("PRIVATE KEY-----") != std::string::npos) {
      *key += block;
    } else {
      *certs += block;
    }
    pos = end;
  }
  if (key->empty() || certs->empty()) Die("the credential needs a private key and a certificate");
}

std::string JsonString(const std::string& s) {
  std::string out = "\"";
  for (const char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out.push_back(c);
        }
    }
  }
  return out + "\"";
}

// One JSONL file, a line per call, flushed at once.
class JsonlFile {
 public:
  explicit JsonlFile(const std::string& path) : f_(std::fopen(path.c_str(), "a")) {
    if (f_ == nullptr) Die("cannot open " + path);
  }
  ~JsonlFile() { std::fclose(f_); }
  void Write(const std::string& line) {
    std::lock_guard<std::mutex> lock(mu_);
    std::fputs(line.c_str(), f_);
    std::fputc('\n', f_);
    std::fflush(f_);
  }

 private:
  std::mutex mu_;
  std::FILE* f_;
};

struct KeyAndCsr {
  std::string key_pem, csr_pem;
};

KeyAndCsr MakeKeyAndCsr(const std::string& cn) {
  EVP_PKEY* key = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
  X509_REQ* req = X509_REQ_new();
  X509_NAME* name = X509_NAME_new();
  if (key == nullptr || req == nullptr || name == nullptr ||
      X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1,
                                 0) != 1 ||
      X509_REQ_set_version(req, X509_REQ_VERSION_1) != 1 ||
      X509_REQ_set_subject_name(req, name) != 1 || X509_REQ_set_pubkey(req, key) != 1 ||
      X509_REQ_sign(req, key, EVP_sha256()) <= 0) {
    Die("CSR");
  }
  KeyAndCsr out;
  BIO* bio = BIO_new(BIO_s_mem());
  char* data = nullptr;
  if (PEM_write_bio_X509_REQ(bio, req) != 1) Die("CSR PEM");
  long n = BIO_get_mem_data(bio, &data);
  out.csr_pem.assign(data, static_cast<size_t>(n));
  BIO_free(bio);
  bio = BIO_new(BIO_s_mem());
  if (PEM_write_bio_PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr) != 1) Die("key");
  n = BIO_get_mem_data(bio, &data);
  out.key_pem.assign(data, static_cast<size_t>(n));
  BIO_free(bio);
  X509_NAME_free(name);
  X509_REQ_free(req);
  EVP_PKEY_free(key);
  return out;
}

bool Transient(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
    case grpc::StatusCode::ABORTED:
    case grpc::StatusCode::CANCELLED:
    case grpc::StatusCode::UNKNOWN:
    case grpc::StatusCode::INTERNAL:
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return true;
    default:
      return false;
  }
}

struct Received {
  std::string request_id, comm_id, csr_pem, serial, fingerprint;
};

struct Shared {
  std::atomic<bool> stop{false};
  std::mutex mu;
  std::vector<Received> received;     // every certificate received
  std::vector<std::string> revocable;  // serials not yet picked by a revoker
  std::map<std::string, long> errors;  // "<method> <code>" -> attempts that failed so
  long requests = 0, retried_requests = 0, replayed_on_retry = 0, attempts = 0;
  long given_up = 0, refused = 0, registered = 0;
  long revocations = 0, revocation_attempts = 0, revocations_already = 0;
  std::unique_ptr<JsonlFile> certs, revs, failures, replays;
  Clock::time_point give_up_after_stop;  // a request still failing at this point is given up

  void Error(const std::string& method, const grpc::Status& st) {
    std::lock_guard<std::mutex> lock(mu);
    ++errors[absl::StrCat(method, " ", static_cast<int>(st.error_code()))];
    last_error = absl::StrCat(method, ": ", static_cast<int>(st.error_code()), " ",
                              st.error_message());
  }
  std::string last_error;
};

std::shared_ptr<grpc::Channel> NewChannel(int index) {
  static const std::string cacert = ReadFile(absl::GetFlag(FLAGS_cacert));
  static std::string key, chain;
  static std::once_flag once;
  std::call_once(once, [] { SplitCredential(ReadFile(absl::GetFlag(FLAGS_credential)), &key, &chain); });
  grpc::SslCredentialsOptions opts;
  opts.pem_root_certs = cacert;
  opts.pem_private_key = key;
  opts.pem_cert_chain = chain;
  grpc::ChannelArguments args;
  args.SetInt("fleetca.fault_load.client", index);  // a connection of its own
  args.SetSslTargetNameOverride(absl::GetFlag(FLAGS_server_name));
  // Reconnect fast once the server is back (the default backoff grows to two minutes).
  // Not GRPC_ARG_MIN_RECONNECT_BACKOFF_MS: gRPC also takes it as the timeout of a
  // connection attempt (default 20 s), which TLS handshakes on a loaded machine need.
  // And re-resolve at once: after a lost connection the channel asks its resolver again
  // before it reconnects, and the DNS resolver waits 30 s between resolutions by default
  // (the clients then stayed away from a restarted server for 30 to 40 s).
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  args.SetInt(GRPC_ARG_DNS_MIN_TIME_BETWEEN_RESOLUTIONS_MS, 100);
  return grpc::CreateCustomChannel(absl::GetFlag(FLAGS_target), grpc::SslCredentials(opts), args);
}

void Deadline(grpc::ClientContext* ctx) {
  ctx->set_deadline(std::chrono::system_clock::now() +
                    std::chrono::milliseconds(static_cast<long>(
                        absl::GetFlag(FLAGS_call_timeout_seconds) * 1000)));
}

// Retries call() while it fails with a transient code and the request is not given up.
// Returns the last status; *attempts counts the calls made, *codes the codes seen.
template <typename Call>
grpc::Status WithRetries(Shared& shared, const std::string& method, Call call, int* attempts,
                         std::string* codes) {
  const Clock::time_point started = Clock::now();
  const auto give_up = std::chrono::duration<double>(absl::GetFlag(FLAGS_request_give_up_seconds));
  while (true) {
    ++*attempts;
    const grpc::Status st = call();
    if (st.ok() || !Transient(st.error_code())) return st;
    shared.Error(method, st);
    if (!codes->empty()) codes->push_back(',');
    absl::StrAppend(codes, static_cast<int>(st.error_code()));
    if (Clock::now() - started > give_up) return st;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

void IssuingClient(Shared& shared, int index, const std::string& prefix) {
  auto channel = NewChannel(index);
  auto registry = v1::DeviceRegistryService::NewStub(channel);
  auto issuance = v1::IssuanceService::NewStub(channel);
  for (long n = 0; !shared.stop.load(); ++n) {
    const std::string id = absl::StrCat(prefix, "-c", index, "-", n);
    // 1. The device (ALREADY_EXISTS: an earlier attempt of this very call committed).
    int reg_attempts = 0;
    std::string reg_codes;
    const grpc::Status reg = WithRetries(shared, "RegisterDevice", [&] {
      v1::RegisterDeviceRequest req;
      req.mutable_device()->set_comm_id(id);
      v1::RegisterDeviceResponse resp;
      grpc::ClientContext ctx;
      Deadline(&ctx);
      return registry->RegisterDevice(&ctx, req, &resp);
    }, &reg_attempts, &reg_codes);
    if (!reg.ok() && reg.error_code() != grpc::StatusCode::ALREADY_EXISTS) {
      shared.failures->Write(absl::StrCat("{\"method\":\"RegisterDevice\",\"comm_id\":",
                                          JsonString(id), ",\"code\":",
                                          static_cast<int>(reg.error_code()), ",\"message\":",
                                          JsonString(reg.error_message()), "}"));
      std::lock_guard<std::mutex> lock(shared.mu);
      ++shared.given_up;
      continue;
    }
    {
      std::lock_guard<std::mutex> lock(shared.mu);
      ++shared.registered;
    }
    // 2. Key, CSR, certificate: every attempt with the same request id and CSR.
    const KeyAndCsr kc = MakeKeyAndCsr(id);
    const std::string request_id = absl::StrCat(id, "-r");
    const double t_first = WallNow();
    int attempts = 0;
    std::string codes;
    v1::SignDeviceCsrResponse resp;
    const grpc::Status st = WithRetries(shared, "SignDeviceCsr", [&] {
      v1::SignDeviceCsrRequest req;
      req.set_comm_id(id);
      req.set_csr_pem(kc.csr_pem);
      req.set_request_id(request_id);
      resp.Clear();
      grpc::ClientContext ctx;
      Deadline(&ctx);
      return issuance->SignDeviceCsr(&ctx, req, &resp);
    }, &attempts, &codes);
    {
      std::lock_guard<std::mutex> lock(shared.mu);
      ++shared.requests;
      shared.attempts += attempts;
      if (attempts > 1) ++shared.retried_requests;
      if (attempts > 1 && st.ok() && resp.replayed()) ++shared.replayed_on_retry;
    }
    if (!st.ok()) {
      shared.failures->Write(absl::StrCat(
          "{\"method\":\"SignDeviceCsr\",\"request_id\":", JsonString(request_id),
          ",\"code\":", static_cast<int>(st.error_code()), ",\"message\":",
          JsonString(st.error_message()), ",\"attempts\":", attempts, "}"));
      std::lock_guard<std::mutex> lock(shared.mu);
      if (Transient(st.error_code())) ++shared.given_up; else ++shared.refused;
      continue;
    }
    const v1::Certificate& c = resp.certificate();
    shared.certs->Write(absl::StrCat(
        "{\"request_id\":", JsonString(request_id), ",\"comm_id\":", JsonString(id),
        ",\"serial\":", JsonString(c.serial()), ",\"fingerprint\":",
        JsonString(c.sha256_fingerprint()), ",\"replayed\":", resp.replayed() ? "true" : "false",
        ",\"attempts\":", attempts, ",\"errors\":", JsonString(codes),
        ",\"t_first\":", absl::StrFormat("%.3f", t_first), ",\"t_ok\":",
        absl::StrFormat("%.3f", WallNow()), ",\"pem\":", JsonString(c.certificate_pem()),
        ",\"key\":", JsonString(kc.key_pem), "}"));
    std::lock_guard<std::mutex> lock(shared.mu);
    shared.received.push_back({request_id, id, kc.csr_pem, c.serial(), c.sha256_fingerprint()});
    shared.revocable.push_back(c.serial());
  }
}

void RevokingClient(Shared& shared, int index) {
  auto channel = NewChannel(1000 + index);
  auto revocation = v1::RevocationService::NewStub(channel);
  std::mt19937_64 rng(static_cast<uint64_t>(getpid()) * 131 + static_cast<uint64_t>(index));
  const auto pause = std::chrono::microseconds(
      static_cast<long>(absl::GetFlag(FLAGS_revoke_interval_ms) * 1000));
  while (!shared.stop.load()) {
    std::string serial;
    {
      std::lock_guard<std::mutex> lock(shared.mu);
      // About one certificate in four is revoked.
      if (shared.revocable.size() >= 2 && shared.revocable.size() * 4 > shared.received.size() * 3) {
        const size_t i = static_cast<size_t>(rng() % shared.revocable.size());
        serial = shared.revocable[i];
        shared.revocable[i] = shared.revocable.back();
        shared.revocable.pop_back();
      }
    }
    if (serial.empty()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      continue;
    }
    const double t_first = WallNow();
    int attempts = 0;
    std::string codes;
    v1::RevokeCertificateResponse resp;
    const grpc::Status st = WithRetries(shared, "RevokeCertificate", [&] {
      v1::RevokeCertificateRequest req;
      req.set_serial(serial);
      req.set_reason(v1::REVOCATION_REASON_KEY_COMPROMISE);
      req.set_comment("fault test");
      resp.Clear();
      grpc::ClientContext ctx;
      Deadline(&ctx);
      return revocation->RevokeCertificate(&ctx, req, &resp);
    }, &attempts, &codes);
    {
      std::lock_guard<std::mutex> lock(shared.mu);
      shared.revocation_attempts += attempts;
    }
    if (!st.ok()) {
      shared.failures->Write(absl::StrCat(
          "{\"method\":\"RevokeCertificate\",\"serial\":", JsonString(serial), ",\"code\":",
          static_cast<int>(st.error_code()), ",\"message\":", JsonString(st.error_message()),
          ",\"attempts\":", attempts, "}"));
      std::lock_guard<std::mutex> lock(shared.mu);
      if (Transient(st.error_code())) ++shared.given_up; else ++shared.refused;
      continue;
    }
    shared.revs->Write(absl::StrCat(
        "{\"serial\":", JsonString(serial), ",\"already_revoked\":",
        resp.already_revoked() ? "true" : "false", ",\"attempts\":", attempts,
        ",\"errors\":", JsonString(codes), ",\"t_first\":", absl::StrFormat("%.3f", t_first),
        ",\"t_ok\":", absl::StrFormat("%.3f", WallNow()), "}"));
    {
      std::lock_guard<std::mutex> lock(shared.mu);
      ++shared.revocations;
      if (resp.already_revoked()) ++shared.revocations_already;
    }
    std::this_thread::sleep_for(pause);
  }
}

// Sends every received request once more: the same certificate must come back, replayed.
long Replay(Shared& shared, int threads) {
  std::atomic<size_t> next{0};
  std::atomic<long> mismatches{0};
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      auto issuance = v1::IssuanceService::NewStub(NewChannel(2000 + t));
      while (true) {
        const size_t i = next.fetch_add(1);
        if (i >= shared.received.size()) return;
        const Received& r = shared.received[i];
        int attempts = 0;
        std::string codes;
        v1::SignDeviceCsrResponse resp;
        const grpc::Status st = WithRetries(shared, "SignDeviceCsr(replay)", [&] {
          v1::SignDeviceCsrRequest req;
          req.set_comm_id(r.comm_id);
          req.set_csr_pem(r.csr_pem);
          req.set_request_id(r.request_id);
          resp.Clear();
          grpc::ClientContext ctx;
          Deadline(&ctx);
          return issuance->SignDeviceCsr(&ctx, req, &resp);
        }, &attempts, &codes);
        const bool same = st.ok() && resp.replayed() && resp.certificate().serial() == r.serial &&
                          resp.certificate().sha256_fingerprint() == r.fingerprint;
        if (!same) ++mismatches;
        shared.replays->Write(absl::StrCat(
            "{\"request_id\":", JsonString(r.request_id), ",\"same\":", same ? "true" : "false",
            ",\"code\":", static_cast<int>(st.error_code()), ",\"message\":",
            JsonString(st.error_message()), ",\"replayed\":", resp.replayed() ? "true" : "false",
            ",\"serial\":", JsonString(resp.certificate().serial()), ",\"expected_serial\":",
            JsonString(r.serial), "}"));
      }
    });
  }
  for (auto& w : workers) w.join();
  return mismatches.load();
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  if (absl::GetFlag(FLAGS_cacert).empty() || absl::GetFlag(FLAGS_credential).empty() ||
      absl::GetFlag(FLAGS_clients) < 1 || absl::GetFlag(FLAGS_revokers) < 0) {
    std::fprintf(stderr, "fault_load: --cacert and --credential are required; --clients >= 1\n");
    return 2;
  }
  std::string prefix = absl::GetFlag(FLAGS_prefix);
  if (prefix.empty()) prefix = absl::StrCat("fl", static_cast<long>(getpid()));
  const std::string dir = absl::GetFlag(FLAGS_out_dir);
  Shared shared;
  shared.certs = std::make_unique<JsonlFile>(dir + "/certificates.jsonl");
  shared.revs = std::make_unique<JsonlFile>(dir + "/revocations.jsonl");
  shared.failures = std::make_unique<JsonlFile>(dir + "/failures.jsonl");
  shared.replays = std::make_unique<JsonlFile>(dir + "/replays.jsonl");

  const Clock::time_point start = Clock::now();
  std::vector<std::thread> threads;
  for (int c = 0; c < absl::GetFlag(FLAGS_clients); ++c) {
    threads.emplace_back([&, c] { IssuingClient(shared, c, prefix); });
  }
  for (int r = 0; r < absl::GetFlag(FLAGS_revokers); ++r) {
    threads.emplace_back([&, r] { RevokingClient(shared, r); });
  }
  const std::string stop_file = absl::GetFlag(FLAGS_stop_file);
  const auto max = std::chrono::duration<double>(absl::GetFlag(FLAGS_max_seconds));
  Clock::time_point next_progress = start + std::chrono::seconds(5);
  while (true) {
    if (Clock::now() >= next_progress) {
      // Progress, so that a stalled run explains itself.
      std::lock_guard<std::mutex> lock(shared.mu);
      long failed = 0;
      for (const auto& [what, n] : shared.errors) failed += n;
      std::printf("progress %.0fs: certificates %zu, revocations %ld, failed attempts %ld%s%s\n",
                  std::chrono::duration<double>(Clock::now() - start).count(),
                  shared.received.size(), shared.revocations, failed,
                  shared.last_error.empty() ? "" : "; last: ", shared.last_error.c_str());
      std::fflush(stdout);
      next_progress += std::chrono::seconds(5);
    }
    struct stat sb;
    if (!stop_file.empty() && stat(stop_file.c_str(), &sb) == 0) break;
    if (Clock::now() - start > max) {
      std::fprintf(stderr, "fault_load: --max_seconds passed, stopping\n");
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  shared.stop = true;
  for (auto& t : threads) t.join();
  const double load_seconds = std::chrono::duration<double>(Clock::now() - start).count();

  long mismatches = 0;
  double replay_seconds = 0;
  if (absl::GetFlag(FLAGS_replay)) {
    const Clock::time_point r0 = Clock::now();
    mismatches = Replay(shared, absl::GetFlag(FLAGS_clients));
    replay_seconds = std::chrono::duration<double>(Clock::now() - r0).count();
  }

  std::string errors = "{";
  for (const auto& [what, n] : shared.errors) {
    if (errors.size() > 1) errors += ",";
    absl::StrAppend(&errors, JsonString(what), ":", n);
  }
  errors += "}";
  const std::string summary = absl::StrCat(
      "{\"clients\":", absl::GetFlag(FLAGS_clients), ",\"revokers\":",
      absl::GetFlag(FLAGS_revokers), ",\"load_seconds\":", absl::StrFormat("%.1f", load_seconds),
      ",\"registered\":", shared.registered, ",\"requests\":", shared.requests,
      ",\"certificates\":", shared.received.size(), ",\"attempts\":", shared.attempts,
      ",\"retried_requests\":", shared.retried_requests, ",\"replayed_on_retry\":",
      shared.replayed_on_retry, ",\"given_up\":", shared.given_up, ",\"refused\":",
      shared.refused, ",\"revocations\":", shared.revocations, ",\"revocation_attempts\":",
      shared.revocation_attempts, ",\"revocations_already\":", shared.revocations_already,
      ",\"replay_mismatches\":", mismatches, ",\"replay_seconds\":",
      absl::StrFormat("%.1f", replay_seconds), ",\"failed_attempts\":", errors, "}");
  std::printf("%s\n", summary.c_str());
  std::ofstream(dir + "/summary.json") << summary << "\n";
  return mismatches == 0 ? 0 : 1;
}
