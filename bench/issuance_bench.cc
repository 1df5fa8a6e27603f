// issuance_bench: SignDeviceCsr throughput and latency against a running fleetca-server,
// and, in the same run, the reference: a plain in-process OpenSSL loop doing the crypto and
// encoding part of an issuance (parse a PEM CSR, verify it, build a certificate with four
// extensions, sign it with a P-256 key, encode it to DER) on 1 and on 2 threads.
//
// Before the timed run it registers --devices devices (BatchRegisterDevices) and makes one
// P-256 key and PEM CSR per device in-process; the timed run then cycles through them, each
// call with a new request id (so every call issues and commits a new certificate). N clients
// are N HTTP/2 connections (a station each), each with one call in flight at a time, driven
// by gRPC's callback API (the paced mode below uses blocking stubs, a thread per client).
//
// Run it with bench/issuance.sh, which starts PostgreSQL and the server first.
//
// Paced (open-loop) mode, for bench/soak.sh: with --rate=N the clients no longer go as
// fast as they can; request k is due at start + k/N (N certificates/s across all clients,
// --clients bounding how many are in flight) and its latency counts from that scheduled
// time, as revocation_bench's paced client does, so a stall delays the requests after it
// and shows in their latency. --revoke_rate=M adds --revoke_clients threads revoking
// (RevokeCertificate, keyCompromise) M certificates/s, each one issued earlier in the same
// run (a random one not yet revoked), on the same schedule rule; what is still due when the
// window ends is not sent (counted). Every --progress_seconds a line gives the interval's
// counts and latencies. With --steady_after=S, from S seconds
// on the same rates create nothing: issuances replay requests issued earlier in the run
// and revocations revoke again what was revoked (the server's state stops growing, its
// request load does not). --request_ids=N makes a closed or paced load of replays from the
// start. Without --rate the behaviour is the closed loop above, unchanged.
//
// TLS: with --cacert (the bundle that verifies the server) and --credential (key,
// certificate and chain in one PEM file, as `fleetca-server init` writes the admin's), the
// calls go over mutual TLS; without them, plaintext (a server run with
// --insecure_plaintext).
#include <grpcpp/grpcpp.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "fleetca/v1/device_registry.grpc.pb.h"
#include "fleetca/v1/issuance.grpc.pb.h"
#include "fleetca/v1/revocation.grpc.pb.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "pki/certificate_builder.h"
#include "pki/csr.h"
#include "pki/key_store.h"

ABSL_FLAG(std::string, target, "127.0.0.1:50051", "fleetca-server address");
ABSL_FLAG(int, clients, 32, "concurrent clients (threads, one connection each)");
ABSL_FLAG(double, seconds, 60, "length of the timed run");
ABSL_FLAG(double, warmup_seconds, 3, "untimed load before the timed run");
ABSL_FLAG(int, devices, 10000, "devices registered and CSRs made before the run");
ABSL_FLAG(std::string, prefix, "", "comm-ID and request-id prefix (default: bench-<pid>)");
ABSL_FLAG(double, reference_seconds, 5, "length of each reference (OpenSSL loop) run");
ABSL_FLAG(bool, skip_server, false, "run only the in-process reference");
ABSL_FLAG(double, rate, 0,
          "paced (open-loop) mode: certificates per second across all clients, latency "
          "counted from each request's scheduled time (0: closed loop, as fast as they go)");
ABSL_FLAG(double, revoke_rate, 0,
          "paced mode: revocations per second (keyCompromise) of certificates issued earlier "
          "in the run (0: none)");
ABSL_FLAG(int, revoke_clients, 2, "paced mode: revoking threads (one connection each)");
ABSL_FLAG(double, progress_seconds, 15, "paced mode: a progress line this often (0: none)");
ABSL_FLAG(double, validity_seconds, 0, "requested certificate lifetime (0: the profile default)");
ABSL_FLAG(int, request_ids, 0,
          "cycle through this many request ids (0: a new one per call): after the first round "
          "every call is a replay (same request id, device and CSR), answered with the stored "
          "certificate, counted as done; a load that creates nothing (a per-call leak shows "
          "alone)");
ABSL_FLAG(double, steady_after, 0,
          "paced mode: after this many seconds (0: never) the load goes on at the same rates "
          "but creates nothing: each issuance replays a request issued earlier in the run "
          "(answered with the stored certificate) and each revocation revokes again a "
          "certificate revoked earlier (already_revoked); both counted as done");
ABSL_FLAG(double, floor_seconds, 0,
          "after the timed run, the same clients call grpc.health.v1.Health/Check in a closed "
          "loop this long (0: not): what a call costs in gRPC and TLS alone, on both sides, "
          "with nothing of fleetca's work in it");
ABSL_FLAG(int, server_pid, 0,
          "fleetca-server's process id (0: unknown): its CPU is read from /proc over each "
          "closed loop, for the CPU-per-call lines");
ABSL_FLAG(std::string, cacert, "", "TLS: the CA bundle verifying the server (empty: plaintext)");
ABSL_FLAG(std::string, credential, "",
          "TLS: the client credential, key then certificate and chain in one PEM file");

namespace {

using Clock = std::chrono::steady_clock;

struct PkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct X509Free {
  void operator()(X509* p) const { X509_free(p); }
};
struct ReqFree {
  void operator()(X509_REQ* p) const { X509_REQ_free(p); }
};
struct BioFree {
  void operator()(BIO* p) const { BIO_free(p); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;
using X509Ptr = std::unique_ptr<X509, X509Free>;
using ReqPtr = std::unique_ptr<X509_REQ, ReqFree>;
using BioPtr = std::unique_ptr<BIO, BioFree>;

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "issuance_bench: %s\n", what.c_str());
  ERR_print_errors_fp(stderr);
  std::exit(1);
}

PkeyPtr NewP256Key() {
  PkeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  if (key == nullptr) Die("P-256 key generation failed");
  return key;
}

X509_NAME* NameWithCn(const std::string& cn) {
  X509_NAME* name = X509_NAME_new();
  if (name == nullptr ||
      X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1,
                                 0) != 1) {
    Die("X509_NAME");
  }
  return name;
}

std::string BioToString(BIO* bio) {
  char* data = nullptr;
  const long n = BIO_ctrl(bio, BIO_CTRL_INFO, 0, &data);  // BIO_get_mem_data
  return n > 0 ? std::string(data, static_cast<size_t>(n)) : std::string();
}

// A PEM PKCS#10 CSR with subject CN=cn for a new P-256 key.
std::string MakeCsrPem(const std::string& cn) {
  PkeyPtr key = NewP256Key();
  ReqPtr req(X509_REQ_new());
  X509_NAME* name = NameWithCn(cn);
  if (req == nullptr || X509_REQ_set_version(req.get(), X509_REQ_VERSION_1) != 1 ||
      X509_REQ_set_subject_name(req.get(), name) != 1 ||
      X509_REQ_set_pubkey(req.get(), key.get()) != 1 ||
      X509_REQ_sign(req.get(), key.get(), EVP_sha256()) <= 0) {
    Die("CSR");
  }
  X509_NAME_free(name);
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (bio == nullptr || PEM_write_bio_X509_REQ(bio.get(), req.get()) != 1) Die("CSR PEM");
  return BioToString(bio.get());
}

// ---- The reference: what an issuance costs in OpenSSL alone. ----

struct ReferenceCa {
  PkeyPtr key;
  X509Ptr cert;
};

void AddExtension(X509* cert, X509V3_CTX* ctx, int nid, const char* value) {
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, ctx, nid, value);
  if (ext == nullptr || X509_add_ext(cert, ext, -1) != 1) Die(absl::StrCat("extension ", nid));
  X509_EXTENSION_free(ext);
}

ReferenceCa MakeReferenceCa() {
  ReferenceCa ca;
  ca.key = NewP256Key();
  ca.cert.reset(X509_new());
  X509* c = ca.cert.get();
  X509_NAME* name = NameWithCn("bench reference CA");
  X509_set_version(c, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(c), 1);
  X509_set_subject_name(c, name);
  X509_set_issuer_name(c, name);
  X509_NAME_free(name);
  X509_gmtime_adj(X509_getm_notBefore(c), 0);
  X509_gmtime_adj(X509_getm_notAfter(c), 10L * 365 * 86400);
  X509_set_pubkey(c, ca.key.get());
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, c, c, nullptr, nullptr, 0);
  AddExtension(c, &ctx, NID_basic_constraints, "critical,CA:TRUE");
  AddExtension(c, &ctx, NID_key_usage, "critical,keyCertSign,cRLSign");
  AddExtension(c, &ctx, NID_subject_key_identifier, "hash");
  if (X509_sign(c, ca.key.get(), EVP_sha256()) <= 0) Die("reference CA");
  return ca;
}

// One issuance, OpenSSL only: parse the PEM CSR, verify it, build the certificate (random
// 128-bit serial, CN from the CSR, 1 year, basicConstraints, keyUsage, EKU, SKI), sign it,
// encode it. Returns the DER size (so nothing is optimised away).
size_t ReferenceIssue(const ReferenceCa& ca, const std::string& csr_pem) {
  BioPtr in(BIO_new_mem_buf(csr_pem.data(), static_cast<int>(csr_pem.size())));
  ReqPtr req(PEM_read_bio_X509_REQ(in.get(), nullptr, nullptr, nullptr));
  if (req == nullptr) Die("reference: CSR parse");
  EVP_PKEY* pub = X509_REQ_get0_pubkey(req.get());
  if (pub == nullptr || X509_REQ_verify(req.get(), pub) != 1) Die("reference: CSR verify");

  X509Ptr cert(X509_new());
  X509* c = cert.get();
  X509_set_version(c, 2);
  BIGNUM* bn = BN_new();
  if (bn == nullptr || BN_rand(bn, 128, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) != 1 ||
      BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(c)) == nullptr) {
    Die("reference: serial");
  }
  BN_free(bn);
  X509_set_issuer_name(c, X509_get_subject_name(ca.cert.get()));
  X509_set_subject_name(c, X509_REQ_get_subject_name(req.get()));
  X509_gmtime_adj(X509_getm_notBefore(c), -300);
  X509_gmtime_adj(X509_getm_notAfter(c), 365L * 86400);
  X509_set_pubkey(c, pub);
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, ca.cert.get(), c, nullptr, nullptr, 0);
  AddExtension(c, &ctx, NID_basic_constraints, "critical,CA:FALSE");
  AddExtension(c, &ctx, NID_key_usage, "critical,digitalSignature");
  AddExtension(c, &ctx, NID_ext_key_usage, "clientAuth");
  AddExtension(c, &ctx, NID_subject_key_identifier, "hash");
  if (X509_sign(c, ca.key.get(), EVP_sha256()) <= 0) Die("reference: sign");
  unsigned char* der = nullptr;
  const int len = i2d_X509(c, &der);
  if (len <= 0) Die("reference: encode");
  OPENSSL_free(der);
  return static_cast<size_t>(len);
}

// The same issuance with fleetca's own code, as the server runs it: pki::ParseCsr (PEM, the
// strict DER reader, proof of possession) and pki::BuildCertificateDer (the certificate's
// DER assembled from a template with the server's extensions, CRL distribution point and
// AIA included, signed through a SoftwareKeyStore), without gRPC or the database: the
// server's crypto-and-encoding floor per certificate.
class FleetcaPkiIssuer {
 public:
  explicit FleetcaPkiIssuer(const ReferenceCa& ca) : ca_(ca) {
    EVP_PKEY_up_ref(ca.key.get());
    keys_.Add("reference", fleetca::pki::EvpPkeyPtr(ca.key.get()));
  }

  size_t Issue(const std::string& csr_pem) {
    auto csr = fleetca::pki::ParseCsr("csr_pem", csr_pem, /*is_pem=*/true);
    if (!csr.ok() || csr->common_names.size() != 1) Die("fleetca pki reference: CSR");
    fleetca::pki::CertificateTemplate t;
    t.profile = fleetca::pki::CertificateProfile::kClient;
    t.serial = fleetca::pki::RandomSerial();
    t.subject.common_name = csr->common_names[0];
    const absl::Time now = absl::Now();
    t.not_before = now - absl::Minutes(5);
    t.not_after = now + absl::Hours(24 * 365);
    t.public_key_der = std::move(csr->public_key_der);
    t.crl_url = "http://127.0.0.1:8080/crl/devices-1.crl";
    t.ca_issuers_url = "http://127.0.0.1:8080/ca/devices-1.crt";
    auto der = fleetca::pki::BuildCertificateDer(t, ca_.cert.get(), keys_, "reference");
    if (!der.ok()) Die(absl::StrCat("fleetca pki reference: ", der.status().message()));
    return der->size();
  }

 private:
  const ReferenceCa& ca_;
  fleetca::pki::SoftwareKeyStore keys_;
};

// RunLoop issues with issue() on `threads` threads for `seconds`, cycling through the CSRs;
// certificates per second.
double RunLoop(const std::function<size_t(const std::string&)>& issue,
               const std::vector<std::string>& csrs, int threads, double seconds) {
  std::atomic<bool> stop{false};
  std::vector<long> counts(static_cast<size_t>(threads), 0);
  std::vector<std::thread> workers;
  const Clock::time_point start = Clock::now();
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      size_t i = static_cast<size_t>(t);
      long n = 0;
      size_t bytes = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        bytes += issue(csrs[i % csrs.size()]);
        i += static_cast<size_t>(threads);
        ++n;
      }
      counts[static_cast<size_t>(t)] = bytes > 0 ? n : 0;
    });
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  for (auto& w : workers) w.join();
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  long total = 0;
  for (long n : counts) total += n;
  return static_cast<double>(total) / elapsed;
}

// ---- The server run. ----

struct ClientResult {
  std::vector<double> latencies_ms;  // of the timed window's successful calls
  long ok = 0;
  std::map<int, long> errors;  // gRPC code -> count (timed window)
  std::string first_error;
};

double Percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  const size_t i = std::min(sorted.size() - 1, static_cast<size_t>(p * static_cast<double>(sorted.size())));
  return sorted[i];
}

std::string ReadWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) Die("cannot read " + path);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

// Plaintext, or mutual TLS with --cacert and --credential (gRPC takes the key block and the
// certificate blocks it needs out of the one file).
std::shared_ptr<grpc::ChannelCredentials> Credentials() {
  const std::string cacert = absl::GetFlag(FLAGS_cacert);
  if (cacert.empty()) return grpc::InsecureChannelCredentials();
  grpc::SslCredentialsOptions options;
  options.pem_root_certs = ReadWholeFile(cacert);
  const std::string credential = absl::GetFlag(FLAGS_credential);
  if (!credential.empty()) {
    options.pem_cert_chain = ReadWholeFile(credential);
    options.pem_private_key = options.pem_cert_chain;
  }
  return grpc::SslCredentials(options);
}

std::shared_ptr<grpc::Channel> NewConnection(const std::string& target, int id) {
  grpc::ChannelArguments args;
  args.SetInt("fleetca.bench.client", id);  // a distinct argument: a connection of its own
  auto ch = grpc::CreateCustomChannel(target, Credentials(), args);
  if (!ch->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(30))) {
    Die(absl::StrCat("connection ", id, " cannot connect to ", target));
  }
  return ch;
}

// ---- Closed loop. ----

// CpuSecondsOf: user + system CPU seconds of process pid (its threads included), from
// /proc/<pid>/stat; -1 when it cannot be read.
double CpuSecondsOf(int pid) {
  if (pid <= 0) return -1;
  std::ifstream file(absl::StrCat("/proc/", pid, "/stat"));
  std::string stat;
  std::getline(file, stat);
  const size_t paren = stat.rfind(')');  // the command name may hold spaces
  if (paren == std::string::npos) return -1;
  std::istringstream in(stat.substr(paren + 2));
  std::string field;
  unsigned long long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && in >> field; ++i) {  // fields 3.. after the name
    if (i == 14) utime = std::stoull(field);
    if (i == 15) stime = std::stoull(field);
  }
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

double ProcessCpuSeconds() {
  struct rusage u;
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

// A call's end: code 0 when it did what was asked, -1 for an OK status with a wrong answer,
// else the gRPC status code.
using CallDone = std::function<void(int code, const std::string& error)>;
// A Sender starts client c's call number n (counted across all clients from 0) and calls
// done when it has ended.
using Sender = std::function<void(int c, long n, CallDone done)>;

struct LoopResult {
  double elapsed = 0;                // the timed window, seconds
  long sent_before = 0, sent = 0;    // calls started before the window (warm-up); in all
  std::vector<double> latencies_ms;  // the window's successful calls, sorted
  long ok = 0;
  std::map<int, long> errors;  // code -> count (window)
  std::string first_error;
  double cpu = 0;              // this process's CPU seconds over the loop, warm-up included
  double server_cpu = -1;      // --server_pid's over the same span (-1: unknown)
};

// ClosedLoop: each of `clients` clients keeps one call in flight (started by send) from
// the start of the warm-up to the end of the timed window; a call's completion, on one of
// gRPC's few callback threads, records it and starts that client's next call (no thread per
// client blocked in a call, which cost the load generator as much CPU per request as the
// server's gRPC work). Only calls that start and end inside the timed window are counted.
// The loop's state is shared with the completions: the last one may still be returning
// when ClosedLoop does.
LoopResult ClosedLoop(int clients, double warmup, double seconds, const Sender& send) {
  struct State {
    Sender send;
    std::atomic<long> next{0};
    std::atomic<int> phase{0};  // 0 warm-up, 1 timed, 2 stop
    std::vector<ClientResult> results;
    std::mutex idle_mu;
    std::condition_variable idle_cv;
    int busy_clients = 0;
    std::function<void(int)> start;  // holds a weak reference: no cycle
  };
  auto state = std::make_shared<State>();
  state->send = send;
  state->results.resize(static_cast<size_t>(clients));
  for (ClientResult& r : state->results) r.latencies_ms.reserve(200000);
  state->busy_clients = clients;
  state->start = [weak = std::weak_ptr<State>(state)](int c) {
    std::shared_ptr<State> st = weak.lock();
    if (st == nullptr) return;  // never: ClosedLoop or a completion holds it
    const int call_phase = st->phase.load(std::memory_order_relaxed);
    if (call_phase == 2) {
      std::lock_guard<std::mutex> lock(st->idle_mu);
      if (--st->busy_clients == 0) st->idle_cv.notify_all();
      return;
    }
    const long n = st->next.fetch_add(1, std::memory_order_relaxed);
    const Clock::time_point t0 = Clock::now();
    st->send(c, n, [st, c, t0, call_phase](int code, const std::string& error) {
      const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
      if (call_phase == 1 && st->phase.load(std::memory_order_relaxed) == 1) {
        ClientResult& r = st->results[static_cast<size_t>(c)];
        if (code == 0) {
          ++r.ok;
          r.latencies_ms.push_back(ms);
        } else {
          ++r.errors[code];
          if (r.first_error.empty()) r.first_error = error;
        }
      }
      st->start(c);
    });
  };
  LoopResult out;
  const double cpu0 = ProcessCpuSeconds();
  const double server_cpu0 = CpuSecondsOf(absl::GetFlag(FLAGS_server_pid));
  for (int c = 0; c < clients; ++c) state->start(c);
  std::this_thread::sleep_for(std::chrono::duration<double>(warmup));
  out.sent_before = state->next.load();
  state->phase = 1;
  const Clock::time_point started = Clock::now();
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  state->phase = 2;
  out.elapsed = std::chrono::duration<double>(Clock::now() - started).count();
  {
    std::unique_lock<std::mutex> lock(state->idle_mu);
    state->idle_cv.wait(lock, [&] { return state->busy_clients == 0; });
  }
  out.cpu = ProcessCpuSeconds() - cpu0;
  const double server_cpu1 = CpuSecondsOf(absl::GetFlag(FLAGS_server_pid));
  if (server_cpu0 >= 0 && server_cpu1 >= 0) out.server_cpu = server_cpu1 - server_cpu0;
  out.sent = state->next.load();
  for (const ClientResult& r : state->results) {
    out.latencies_ms.insert(out.latencies_ms.end(), r.latencies_ms.begin(), r.latencies_ms.end());
    out.ok += r.ok;
    for (const auto& [code, n] : r.errors) out.errors[code] += n;
    if (out.first_error.empty()) out.first_error = r.first_error;
  }
  std::sort(out.latencies_ms.begin(), out.latencies_ms.end());
  return out;
}

// Microseconds per call of `cpu_seconds` over a closed loop's calls (warm-up included).
double MicrosPerCall(const LoopResult& r, double cpu_seconds) {
  return cpu_seconds * 1e6 / static_cast<double>(std::max(1L, r.sent));
}

// The CPU-per-call line of a closed loop: this process's and (when known) the server's.
std::string CpuPerCall(const LoopResult& r) {
  std::string line = absl::StrCat(static_cast<long>(MicrosPerCall(r, r.cpu)), " us");
  if (r.server_cpu >= 0) {
    absl::StrAppend(&line, "; fleetca-server ", static_cast<long>(MicrosPerCall(r, r.server_cpu)),
                    " us");
  }
  return line;
}

// ---- Paced (open-loop) mode. ----

// Latencies and counts of one kind of call, for the current progress interval and for the
// whole measured window.
class Tally {
 public:
  void Add(bool ok, double ms, int code, bool measured, const std::string& error) {
    std::lock_guard<std::mutex> lock(mu_);
    if (ok) {
      ++interval_ok_;
      interval_ms_.push_back(ms);
      if (measured) {
        ++ok_;
        all_ms_.push_back(ms);
      }
    } else {
      ++interval_errors_;
      if (measured) ++errors_[code];
      if (first_error_.empty()) first_error_ = absl::StrCat("code ", code, ": ", error);
    }
    if (ok) ++total_ok_;
  }
  void Skip() {
    std::lock_guard<std::mutex> lock(mu_);
    ++skipped_;
  }

  struct Interval {
    long ok = 0, errors = 0, total_ok = 0;
    double p50 = 0, p99 = 0, max = 0;
  };
  Interval TakeInterval() {
    std::vector<double> ms;
    Interval out;
    {
      std::lock_guard<std::mutex> lock(mu_);
      ms.swap(interval_ms_);
      out.ok = interval_ok_;
      out.errors = interval_errors_;
      out.total_ok = total_ok_;
      interval_ok_ = interval_errors_ = 0;
    }
    std::sort(ms.begin(), ms.end());
    out.p50 = Percentile(ms, 0.50);
    out.p99 = Percentile(ms, 0.99);
    out.max = ms.empty() ? 0 : ms.back();
    return out;
  }

  // The measured window's figures (call once, at the end).
  std::vector<double> SortedAll() {
    std::lock_guard<std::mutex> lock(mu_);
    std::sort(all_ms_.begin(), all_ms_.end());
    return all_ms_;
  }
  long ok() {
    std::lock_guard<std::mutex> lock(mu_);
    return ok_;
  }
  std::map<int, long> errors() {
    std::lock_guard<std::mutex> lock(mu_);
    return errors_;
  }
  long skipped() {
    std::lock_guard<std::mutex> lock(mu_);
    return skipped_;
  }
  long total_ok() {
    std::lock_guard<std::mutex> lock(mu_);
    return total_ok_;
  }
  std::string first_error() {
    std::lock_guard<std::mutex> lock(mu_);
    return first_error_;
  }

 private:
  std::mutex mu_;
  std::vector<double> interval_ms_, all_ms_;
  long interval_ok_ = 0, interval_errors_ = 0, ok_ = 0, total_ok_ = 0, skipped_ = 0;
  std::map<int, long> errors_;
  std::string first_error_;
};

// What the steady phase replays: request ids issued and serials revoked earlier in the run.
class Replayable {
 public:
  void AddIssued(long id) {
    std::lock_guard<std::mutex> lock(mu_);
    issued_.push_back(id);
  }
  void AddRevoked(const std::string& serial) {
    std::lock_guard<std::mutex> lock(mu_);
    revoked_.push_back(serial);
  }
  // The k-th (cyclically) of each; false when there is none yet.
  bool Issued(long k, long* id) {
    std::lock_guard<std::mutex> lock(mu_);
    if (issued_.empty()) return false;
    *id = issued_[static_cast<size_t>(k) % issued_.size()];
    return true;
  }
  bool Revoked(long k, std::string* serial) {
    std::lock_guard<std::mutex> lock(mu_);
    if (revoked_.empty()) return false;
    *serial = revoked_[static_cast<size_t>(k) % revoked_.size()];
    return true;
  }

 private:
  std::mutex mu_;
  std::vector<long> issued_;
  std::vector<std::string> revoked_;
};

// Serials issued in this run and not yet revoked; a revoker takes a random one. Bounded:
// past kMax a new serial replaces a random one (each stays revocable at most once).
class RevocablePool {
 public:
  void Put(std::string serial) {
    std::lock_guard<std::mutex> lock(mu_);
    if (serials_.size() < kMax) {
      serials_.push_back(std::move(serial));
    } else {
      serials_[rng_() % serials_.size()] = std::move(serial);
    }
  }
  bool Take(std::string* serial) {
    std::lock_guard<std::mutex> lock(mu_);
    if (serials_.empty()) return false;
    const size_t i = rng_() % serials_.size();
    *serial = std::move(serials_[i]);
    serials_[i] = std::move(serials_.back());
    serials_.pop_back();
    return true;
  }

 private:
  static constexpr size_t kMax = 200000;
  std::mutex mu_;
  std::vector<std::string> serials_;
  std::mt19937_64 rng_{12345};
};

void PrintSummary(const char* what, double rate, int clients, double seconds, Tally& t) {
  const std::vector<double> all = t.SortedAll();
  long error_count = 0;
  const std::map<int, long> errors = t.errors();
  for (const auto& [code, n] : errors) error_count += n;
  std::printf("fleetca %s, paced at %.1f/s (%d clients), %.1f s: %ld done = %.1f/s; latency from "
              "the scheduled time p50 %.1f ms, p99 %.1f ms, max %.1f ms; errors %ld",
              what, rate, clients, seconds, t.ok(), static_cast<double>(t.ok()) / seconds,
              Percentile(all, 0.50), Percentile(all, 0.99), all.empty() ? 0.0 : all.back(),
              error_count);
  if (t.skipped() > 0) std::printf("; skipped (nothing to revoke or replay yet) %ld", t.skipped());
  std::printf("\n");
  for (const auto& [code, n] : errors) std::printf("  %s errors with code %d: %ld\n", what, code, n);
  if (!t.first_error().empty()) std::printf("  %s first error: %s\n", what, t.first_error().c_str());
}

// The paced run: issuing clients and revokers on their schedules, progress lines, the
// summary. Returns the number of certificates issued in the measured window.
long RunPaced(const std::string& target, const std::string& prefix,
              const std::vector<std::string>& comm_ids, const std::vector<std::string>& csrs,
              int clients, double warmup, double seconds) {
  const double rate = absl::GetFlag(FLAGS_rate);
  const double revoke_rate = absl::GetFlag(FLAGS_revoke_rate);
  const int revoke_clients = revoke_rate > 0 ? std::max(1, absl::GetFlag(FLAGS_revoke_clients)) : 0;
  const double progress = absl::GetFlag(FLAGS_progress_seconds);
  const double validity = absl::GetFlag(FLAGS_validity_seconds);
  const long request_ids = absl::GetFlag(FLAGS_request_ids);
  const double steady_after = absl::GetFlag(FLAGS_steady_after);
  std::vector<std::unique_ptr<fleetca::v1::IssuanceService::Stub>> issuers;
  for (int c = 0; c < clients; ++c) {
    issuers.push_back(fleetca::v1::IssuanceService::NewStub(NewConnection(target, c)));
  }
  std::vector<std::unique_ptr<fleetca::v1::RevocationService::Stub>> revokers;
  for (int c = 0; c < revoke_clients; ++c) {
    revokers.push_back(fleetca::v1::RevocationService::NewStub(NewConnection(target, 1000 + c)));
  }
  const auto dur = [](double s) {
    return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
  };
  const Clock::time_point t0 = Clock::now();
  const Clock::time_point measure_from = t0 + dur(warmup);
  const Clock::time_point end = measure_from + dur(seconds);
  const Clock::time_point steady_from = steady_after > 0 ? t0 + dur(steady_after) : end;
  Tally issued, revoked;
  RevocablePool pool;
  Replayable done;
  std::atomic<long> next_issue{0}, next_revoke{0}, sent{0}, late{0};
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      for (;;) {
        const long k = next_issue.fetch_add(1, std::memory_order_relaxed);
        const Clock::time_point due = t0 + dur(static_cast<double>(k) / rate);
        if (due >= end) break;
        std::this_thread::sleep_until(due);
        if (Clock::now() >= end) {  // behind the schedule at the end: not sent
          late.fetch_add(1, std::memory_order_relaxed);
          continue;
        }
        const bool steady = due >= steady_from;
        long id = request_ids > 0 ? k % request_ids : k;
        if (steady && !done.Issued(k, &id)) {
          issued.Skip();
          continue;
        }
        const size_t d = static_cast<size_t>(id % static_cast<long>(comm_ids.size()));
        fleetca::v1::SignDeviceCsrRequest req;
        req.set_comm_id(comm_ids[d]);
        req.set_csr_pem(csrs[d]);
        req.set_request_id(absl::StrCat(prefix, "-r", id));
        if (validity > 0) {
          req.mutable_validity()->set_seconds(static_cast<int64_t>(validity));
        }
        fleetca::v1::SignDeviceCsrResponse resp;
        grpc::ClientContext ctx;
        ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
        sent.fetch_add(1, std::memory_order_relaxed);
        const grpc::Status st = issuers[static_cast<size_t>(c)]->SignDeviceCsr(&ctx, req, &resp);
        const double ms = std::chrono::duration<double, std::milli>(Clock::now() - due).count();
        const bool ok = st.ok() && (request_ids > 0 || resp.replayed() == steady) &&
                        !resp.certificate().serial().empty();
        issued.Add(ok, ms, st.ok() ? -1 : static_cast<int>(st.error_code()), due >= measure_from,
                   st.ok() ? (steady ? "not replayed, or empty" : "replayed or empty response")
                           : st.error_message());
        if (ok && !resp.replayed()) {
          done.AddIssued(id);
          if (revoke_clients > 0) pool.Put(resp.certificate().serial());
        }
      }
    });
  }
  // Revocations start with the measured window (the warm-up fills the pool).
  for (int c = 0; c < revoke_clients; ++c) {
    threads.emplace_back([&, c] {
      for (;;) {
        const long k = next_revoke.fetch_add(1, std::memory_order_relaxed);
        const Clock::time_point due = measure_from + dur(static_cast<double>(k) / revoke_rate);
        if (due >= end) break;
        std::this_thread::sleep_until(due);
        if (Clock::now() >= end) {
          late.fetch_add(1, std::memory_order_relaxed);
          continue;
        }
        const bool steady = due >= steady_from;
        std::string serial;
        if (steady ? !done.Revoked(k, &serial) : !pool.Take(&serial)) {
          revoked.Skip();
          continue;
        }
        fleetca::v1::RevokeCertificateRequest req;
        req.set_serial(serial);
        req.set_reason(fleetca::v1::REVOCATION_REASON_KEY_COMPROMISE);
        req.set_comment("soak");
        fleetca::v1::RevokeCertificateResponse resp;
        grpc::ClientContext ctx;
        ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
        const grpc::Status st = revokers[static_cast<size_t>(c)]->RevokeCertificate(&ctx, req, &resp);
        const double ms = std::chrono::duration<double, std::milli>(Clock::now() - due).count();
        const bool ok = st.ok() && resp.already_revoked() == steady;
        revoked.Add(ok, ms, st.ok() ? -1 : static_cast<int>(st.error_code()), true,
                    st.ok() ? (steady ? "not already revoked" : "already revoked") : st.error_message());
        if (ok && !steady) done.AddRevoked(serial);
      }
    });
  }
  // Progress lines until the end of the window.
  for (Clock::time_point last = t0;;) {
    const Clock::time_point next = progress > 0 ? std::min(end, last + dur(progress)) : end;
    std::this_thread::sleep_until(next);
    if (progress > 0) {
      const Tally::Interval i = issued.TakeInterval();
      const Tally::Interval r = revoked.TakeInterval();
      const double span = std::chrono::duration<double>(next - last).count();
      std::printf("[progress %6.0f s] issued %ld (+%ld, %.1f/s, errors +%ld; p50 %.1f ms, p99 "
                  "%.1f ms, max %.1f ms) revoked %ld (+%ld, errors +%ld; p99 %.1f ms)%s\n",
                  std::chrono::duration<double>(next - t0).count(), i.total_ok, i.ok,
                  static_cast<double>(i.ok) / span, i.errors, i.p50, i.p99, i.max, r.total_ok, r.ok,
                  r.errors, r.p99, next > steady_from ? " [steady: replays]" : "");
      std::fflush(stdout);
    }
    last = next;
    if (next >= end) break;
  }
  for (auto& t : threads) t.join();
  std::printf("requests sent in all (warm-up included): %ld\n", sent.load());
  if (late.load() > 0) {
    std::printf("not sent: %ld requests (issuances and revocations) still due when the window "
                "ended: the load was behind its schedule\n",
                late.load());
  }
  PrintSummary("SignDeviceCsr", rate, clients, seconds, issued);
  if (revoke_clients > 0) PrintSummary("RevokeCertificate", revoke_rate, revoke_clients, seconds, revoked);
  std::fflush(stdout);
  return issued.ok();
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  // As fleetca-server does: no lock-order graph kept for every absl::Mutex (gRPC's).
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  const int clients = absl::GetFlag(FLAGS_clients);
  const double seconds = absl::GetFlag(FLAGS_seconds);
  const double warmup = absl::GetFlag(FLAGS_warmup_seconds);
  const int devices = absl::GetFlag(FLAGS_devices);
  const std::string target = absl::GetFlag(FLAGS_target);
  std::string prefix = absl::GetFlag(FLAGS_prefix);
  if (prefix.empty()) prefix = absl::StrCat("bench-", static_cast<long>(getpid()));
  if (clients < 1 || seconds <= 0 || warmup < 0 || devices < 1) {
    std::fprintf(stderr, "--clients, --seconds and --devices must be positive\n");
    return 2;
  }
  if (absl::GetFlag(FLAGS_rate) < 0 || absl::GetFlag(FLAGS_revoke_rate) < 0 ||
      (absl::GetFlag(FLAGS_revoke_rate) > 0 && absl::GetFlag(FLAGS_rate) <= 0)) {
    std::fprintf(stderr, "--rate and --revoke_rate must not be negative; --revoke_rate needs --rate\n");
    return 2;
  }

  // 1. CSRs, made before anything is timed.
  std::vector<std::string> comm_ids, csrs;
  comm_ids.reserve(static_cast<size_t>(devices));
  csrs.reserve(static_cast<size_t>(devices));
  const Clock::time_point gen_start = Clock::now();
  for (int i = 0; i < devices; ++i) {
    comm_ids.push_back(absl::StrCat(prefix, "-", 350000000000000L + i));
    csrs.push_back(MakeCsrPem(comm_ids.back()));
  }
  std::printf("made %d P-256 keys and PEM CSRs in %.2f s\n", devices,
              std::chrono::duration<double>(Clock::now() - gen_start).count());

  if (!absl::GetFlag(FLAGS_skip_server)) {
    // 2. Devices, registered in batches of up to 10,000.
    auto channel = grpc::CreateChannel(target, Credentials());
    if (!channel->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(30))) {
      std::fprintf(stderr, "cannot connect to %s\n", target.c_str());
      return 1;
    }
    auto registry = fleetca::v1::DeviceRegistryService::NewStub(channel);
    for (int first = 0; first < devices; first += 10000) {
      fleetca::v1::BatchRegisterDevicesRequest req;
      for (int i = first; i < std::min(devices, first + 10000); ++i) {
        req.add_devices()->set_comm_id(comm_ids[static_cast<size_t>(i)]);
      }
      fleetca::v1::BatchRegisterDevicesResponse resp;
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
      const grpc::Status st = registry->BatchRegisterDevices(&ctx, req, &resp);
      if (!st.ok() || resp.registered_count() != req.devices_size()) {
        std::fprintf(stderr, "BatchRegisterDevices failed: %s (registered %d of %d)\n",
                     st.error_message().c_str(), resp.registered_count(), req.devices_size());
        return 1;
      }
    }
    std::printf("registered %d devices\n", devices);
    std::fflush(stdout);

    if (absl::GetFlag(FLAGS_rate) > 0) {
      // 3'. The paced (open-loop) run instead of the closed loop.
      if (RunPaced(target, prefix, comm_ids, csrs, clients, warmup, seconds) == 0) return 1;
    } else {
      // 3. The load: each client its own connection with one call in flight at a time;
      //    calls during the warm-up are not counted. The calls are driven by gRPC's callback
      //    API: a call's completion, on one of gRPC's few threads, records it and starts the
      //    client's next call (no thread per client blocked in a call, which cost the load
      //    generator as much CPU per request as the server's gRPC work).
      std::vector<std::shared_ptr<grpc::Channel>> connections;
      std::vector<std::unique_ptr<fleetca::v1::IssuanceService::Stub>> stubs;
      for (int c = 0; c < clients; ++c) {
        connections.push_back(NewConnection(target, c));
        stubs.push_back(fleetca::v1::IssuanceService::NewStub(connections.back()));
      }
      const long request_ids = absl::GetFlag(FLAGS_request_ids);
      const double validity_seconds = absl::GetFlag(FLAGS_validity_seconds);
      struct SignCall {
        grpc::ClientContext ctx;
        fleetca::v1::SignDeviceCsrRequest req;
        fleetca::v1::SignDeviceCsrResponse resp;
      };
      const Sender sign = [&](int c, long n0, CallDone done) {
        auto* call = new SignCall;
        const long n = request_ids > 0 ? n0 % request_ids : n0;
        const size_t d = static_cast<size_t>(n % devices);
        call->req.set_comm_id(comm_ids[d]);
        call->req.set_csr_pem(csrs[d]);
        call->req.set_request_id(absl::StrCat(prefix, "-r", n));
        if (validity_seconds > 0) {
          call->req.mutable_validity()->set_seconds(static_cast<int64_t>(validity_seconds));
        }
        call->ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
        stubs[static_cast<size_t>(c)]->async()->SignDeviceCsr(
            &call->ctx, &call->req, &call->resp,
            [call, request_ids, done = std::move(done)](grpc::Status st) {
              int code = 0;
              std::string error;
              if (!st.ok()) {
                code = static_cast<int>(st.error_code());
                error = st.error_message();
              } else if ((request_ids == 0 && call->resp.replayed()) ||
                         call->resp.certificate().serial().empty()) {
                code = -1;
                error = "replayed or empty response";
              }
              delete call;
              done(code, error);
            });
      };
      const LoopResult run = ClosedLoop(clients, warmup, seconds, sign);
      long error_count = 0;
      for (const auto& [code, n] : run.errors) error_count += n;
      std::printf("requests sent before the timed window (warm-up): %ld; in all: %ld\n",
                  run.sent_before, run.sent);
      std::printf("fleetca SignDeviceCsr, %d clients, %.1f s: %ld certificates = %.0f certs/s; "
                  "latency p50 %.1f ms, p99 %.1f ms, max %.1f ms; errors %ld\n",
                  clients, run.elapsed, run.ok, static_cast<double>(run.ok) / run.elapsed,
                  Percentile(run.latencies_ms, 0.50), Percentile(run.latencies_ms, 0.99),
                  run.latencies_ms.empty() ? 0.0 : run.latencies_ms.back(), error_count);
      for (const auto& [code, n] : run.errors) {
        std::printf("  errors with code %d: %ld\n", code, n);
      }
      if (!run.first_error.empty()) std::printf("  first error: %s\n", run.first_error.c_str());
      std::printf("load generator CPU (the requests, warm-up included; keys and CSRs made "
                  "before): %.0f us per request\n",
                  MicrosPerCall(run, run.cpu));
      if (run.server_cpu >= 0) {
        std::printf("fleetca-server CPU over the same span: %.0f us per request\n",
                    MicrosPerCall(run, run.server_cpu));
      }
      std::fflush(stdout);

      // 3''. The floor: the same connections, an RPC that does nothing of fleetca's
      //      (grpc.health.v1.Health/Check, answered by gRPC's own health service), so its CPU
      //      per call is what gRPC and TLS cost on each side.
      const double floor_seconds = absl::GetFlag(FLAGS_floor_seconds);
      if (floor_seconds > 0) {
        std::vector<std::unique_ptr<grpc::health::v1::Health::Stub>> health;
        for (const auto& ch : connections) health.push_back(grpc::health::v1::Health::NewStub(ch));
        struct HealthCall {
          grpc::ClientContext ctx;
          grpc::health::v1::HealthCheckRequest req;
          grpc::health::v1::HealthCheckResponse resp;
        };
        const Sender check = [&](int c, long, CallDone done) {
          auto* call = new HealthCall;
          call->ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
          health[static_cast<size_t>(c)]->async()->Check(
              &call->ctx, &call->req, &call->resp, [call, done = std::move(done)](grpc::Status st) {
                const bool serving =
                    call->resp.status() == grpc::health::v1::HealthCheckResponse::SERVING;
                const int code = !st.ok() ? static_cast<int>(st.error_code()) : serving ? 0 : -1;
                const std::string error = !st.ok() ? st.error_message() : "not SERVING";
                delete call;
                done(code, error);
              });
        };
        const LoopResult f = ClosedLoop(clients, warmup, floor_seconds, check);
        long floor_errors = 0;
        for (const auto& [code, n] : f.errors) floor_errors += n;
        std::printf("floor: grpc.health.v1.Health/Check on the same %d connections, %.1f s: "
                    "%.0f calls/s, p50 %.2f ms, p99 %.2f ms, errors %ld; CPU per call: load "
                    "generator %s\n",
                    clients, f.elapsed, static_cast<double>(f.ok) / f.elapsed,
                    Percentile(f.latencies_ms, 0.50), Percentile(f.latencies_ms, 0.99),
                    floor_errors, CpuPerCall(f).c_str());
        if (!f.first_error.empty()) std::printf("  floor first error: %s\n", f.first_error.c_str());
      }
      if (run.ok == 0) return 1;
    }
  }

  // 4. The reference, on the same machine, after the load (the server is idle then).
  const double reference_seconds = absl::GetFlag(FLAGS_reference_seconds);
  if (reference_seconds <= 0) return 0;  // --reference_seconds=0: none
  const ReferenceCa ca = MakeReferenceCa();
  for (int threads : {1, 2}) {
    const double rate = RunLoop([&](const std::string& csr) { return ReferenceIssue(ca, csr); },
                                csrs, threads, reference_seconds);
    std::printf("reference OpenSSL loop (parse PEM CSR, verify, build with 4 extensions, sign "
                "P-256, DER), %d thread%s: %.0f certs/s\n",
                threads, threads == 1 ? "" : "s", rate);
  }
  FleetcaPkiIssuer fleetca_pki(ca);
  for (int threads : {1, 2}) {
    const double rate = RunLoop([&](const std::string& csr) { return fleetca_pki.Issue(csr); },
                                csrs, threads, reference_seconds);
    std::printf("reference fleetca pki loop (the server's own CSR check and certificate "
                "builder, no gRPC, no database), %d thread%s: %.0f certs/s\n",
                threads, threads == 1 ? "" : "s", rate);
  }
  return 0;
}
