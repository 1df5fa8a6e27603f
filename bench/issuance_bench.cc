// issuance_bench: SignDeviceCsr throughput and latency against a running fleetca-server,
// and, in the same run, the reference: a plain in-process OpenSSL loop doing the crypto and
// encoding part of an issuance (parse a PEM CSR, verify it, build a certificate with four
// extensions, sign it with a P-256 key, encode it to DER) on 1 and on 2 threads.
//
// Before the timed run it registers --devices devices (BatchRegisterDevices) and makes one
// P-256 key and PEM CSR per device in-process; the timed run then cycles through them, each
// call with a new request id (so every call issues and commits a new certificate). N clients
// are N threads with blocking stubs, each on its own HTTP/2 connection (a station each).
//
// Run it with bench/issuance.sh, which starts PostgreSQL and the server first.
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
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "fleetca/v1/device_registry.grpc.pb.h"
#include "fleetca/v1/issuance.grpc.pb.h"

ABSL_FLAG(std::string, target, "127.0.0.1:50051", "fleetca-server address");
ABSL_FLAG(int, clients, 32, "concurrent clients (threads, one connection each)");
ABSL_FLAG(double, seconds, 60, "length of the timed run");
ABSL_FLAG(double, warmup_seconds, 3, "untimed load before the timed run");
ABSL_FLAG(int, devices, 10000, "devices registered and CSRs made before the run");
ABSL_FLAG(std::string, prefix, "", "comm-ID and request-id prefix (default: bench-<pid>)");
ABSL_FLAG(double, reference_seconds, 5, "length of each reference (OpenSSL loop) run");
ABSL_FLAG(bool, skip_server, false, "run only the in-process reference");

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

double RunReference(const ReferenceCa& ca, const std::vector<std::string>& csrs, int threads,
                    double seconds) {
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
        bytes += ReferenceIssue(ca, csrs[i % csrs.size()]);
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

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
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
    auto channel = grpc::CreateChannel(target, grpc::InsecureChannelCredentials());
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

    // 3. The load: each client its own connection; calls during the warm-up are not counted.
    std::vector<std::unique_ptr<fleetca::v1::IssuanceService::Stub>> stubs;
    for (int c = 0; c < clients; ++c) {
      grpc::ChannelArguments args;
      args.SetInt("fleetca.bench.client", c);  // a distinct argument: a connection of its own
      auto ch = grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
      if (!ch->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(30))) {
        std::fprintf(stderr, "client %d cannot connect to %s\n", c, target.c_str());
        return 1;
      }
      stubs.push_back(fleetca::v1::IssuanceService::NewStub(ch));
    }
    std::atomic<long> next_request{0};
    std::atomic<int> phase{0};  // 0 warm-up, 1 timed, 2 stop
    std::vector<ClientResult> results(static_cast<size_t>(clients));
    std::vector<std::thread> threads;
    for (int c = 0; c < clients; ++c) {
      threads.emplace_back([&, c] {
        ClientResult& r = results[static_cast<size_t>(c)];
        r.latencies_ms.reserve(200000);
        while (true) {
          const int ph = phase.load(std::memory_order_relaxed);
          if (ph == 2) break;
          const long n = next_request.fetch_add(1, std::memory_order_relaxed);
          const size_t d = static_cast<size_t>(n % devices);
          fleetca::v1::SignDeviceCsrRequest req;
          req.set_comm_id(comm_ids[d]);
          req.set_csr_pem(csrs[d]);
          req.set_request_id(absl::StrCat(prefix, "-r", n));
          fleetca::v1::SignDeviceCsrResponse resp;
          grpc::ClientContext ctx;
          ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
          const Clock::time_point t0 = Clock::now();
          const grpc::Status st = stubs[static_cast<size_t>(c)]->SignDeviceCsr(&ctx, req, &resp);
          const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
          // Only calls that started and ended inside the timed window count.
          if (ph != 1 || phase.load(std::memory_order_relaxed) != 1) continue;
          if (st.ok() && !resp.replayed() && !resp.certificate().serial().empty()) {
            ++r.ok;
            r.latencies_ms.push_back(ms);
          } else {
            ++r.errors[st.ok() ? -1 : static_cast<int>(st.error_code())];
            if (r.first_error.empty()) {
              r.first_error = st.ok() ? "replayed or empty response" : st.error_message();
            }
          }
        }
      });
    }
    std::this_thread::sleep_for(std::chrono::duration<double>(warmup));
    const long before = next_request.load();
    phase = 1;
    const Clock::time_point start = Clock::now();
    std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
    phase = 2;
    const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
    for (auto& t : threads) t.join();

    std::vector<double> all;
    long ok = 0;
    std::map<int, long> errors;
    std::string first_error;
    for (const ClientResult& r : results) {
      all.insert(all.end(), r.latencies_ms.begin(), r.latencies_ms.end());
      ok += r.ok;
      for (const auto& [code, n] : r.errors) errors[code] += n;
      if (first_error.empty()) first_error = r.first_error;
    }
    std::sort(all.begin(), all.end());
    long error_count = 0;
    for (const auto& [code, n] : errors) error_count += n;
    std::printf("requests sent before the timed window (warm-up): %ld; in all: %ld\n", before,
                next_request.load());
    std::printf("fleetca SignDeviceCsr, %d clients, %.1f s: %ld certificates = %.0f certs/s; "
                "latency p50 %.1f ms, p99 %.1f ms, max %.1f ms; errors %ld\n",
                clients, elapsed, ok, static_cast<double>(ok) / elapsed, Percentile(all, 0.50),
                Percentile(all, 0.99), all.empty() ? 0.0 : all.back(), error_count);
    for (const auto& [code, n] : errors) {
      std::printf("  errors with code %d: %ld\n", code, n);
    }
    if (!first_error.empty()) std::printf("  first error: %s\n", first_error.c_str());
    struct rusage usage;
    getrusage(RUSAGE_SELF, &usage);
    const double cpu = static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
                       static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
    std::printf("load generator CPU (keys, CSRs and all requests): %.0f us per request\n",
                cpu * 1e6 / static_cast<double>(next_request.load()));
    if (ok == 0) return 1;
  }

  // 4. The reference, on the same machine, after the load (the server is idle then).
  const ReferenceCa ca = MakeReferenceCa();
  const double reference_seconds = absl::GetFlag(FLAGS_reference_seconds);
  for (int threads : {1, 2}) {
    const double rate = RunReference(ca, csrs, threads, reference_seconds);
    std::printf("reference OpenSSL loop (parse PEM CSR, verify, build with 4 extensions, sign "
                "P-256, DER), %d thread%s: %.0f certs/s\n",
                threads, threads == 1 ? "" : "s", rate);
  }
  return 0;
}
