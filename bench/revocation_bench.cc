// revocation_bench: RevokeCertificate latency against a running fleetca-server, and the
// time from a revocation to a CRL served over HTTP that lists it.
//
// It reads the serials of live certificates (hex, one per line) from --serials_file and:
//  1. revokes --warmup of them, untimed;
//  2. revokes --revocations more from --clients threads (blocking stubs, one HTTP/2
//     connection each), as fast as they go, and prints p50/p90/p99/max and the rate;
//  2b. revokes --paced more at a steady --rate (one client, each request sent on its
//     schedule; a latency counts from the scheduled time, so a stall delays the ones after
//     it and shows in them too), as a fleet's operators revoke, and prints the same;
//  3. --crl_samples times: waits for the served CRLs to settle, revokes one more, then polls
//     http://<--http>/crl/delta/<--issuer>.crl (the delta CRL, with --delta) and
//     /crl/<--issuer>.crl (the complete one) (If-None-Match, every --poll_ms) until one
//     lists that serial, and prints the median and the worst of those times (measured from
//     sending the revoke request) and which CRL listed it first. That CRL is then parsed by
//     OpenSSL, which must find the serial with reason keyCompromise;
//  4. with --delta, polls the complete CRL until it lists the last serial too, and prints
//     how long after the revocation it did (complete CRLs follow their cost: every few
//     minutes at a million entries), checked by OpenSSL the same way.
//
// Run it with bench/revocation.sh, which starts PostgreSQL and the server and fills the
// database with the revoked certificates first.
#include <grpcpp/grpcpp.h>
#include <httplib.h>
#include <openssl/asn1.h>
#include <openssl/bn.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "bench/bench_util.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "fleetca/v1/revocation.grpc.pb.h"

ABSL_FLAG(std::string, target, "127.0.0.1:50051", "fleetca-server gRPC address");
ABSL_FLAG(std::string, http, "127.0.0.1:8080", "fleetca-server HTTP address (--http_listen)");
ABSL_FLAG(std::string, issuer, "devices-1", "issuer of the certificates revoked");
ABSL_FLAG(std::string, serials_file, "", "serials (hex, one per line) of live certificates");
ABSL_FLAG(std::string, label, "", "printed before each figure");
ABSL_FLAG(int, clients, 4, "concurrent clients for the timed revocations");
ABSL_FLAG(int, warmup, 200, "untimed revocations first");
ABSL_FLAG(int, revocations, 4000, "timed revocations");
ABSL_FLAG(int, paced, 600, "revocations at a steady --rate after the timed ones");
ABSL_FLAG(double, rate, 20, "revocations per second of the paced run");
ABSL_FLAG(int, crl_samples, 5, "revocation-to-served-CRL measurements");
ABSL_FLAG(int, poll_ms, 10, "HTTP polling interval while waiting for the CRL");
ABSL_FLAG(bool, delta, true, "wait for the delta CRL (the server's --crl_deltas), then the complete");

namespace {

using Clock = std::chrono::steady_clock;
namespace v1 = fleetca::v1;

[[noreturn]] void Die(const std::string& what) { fleetca::bench::Die("revocation_bench", what); }

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

std::unique_ptr<v1::RevocationService::Stub> NewStub(int channel_id) {
  grpc::ChannelArguments args;
  args.SetInt("fleetca.bench.channel", channel_id);  // a connection of its own
  return v1::RevocationService::NewStub(grpc::CreateCustomChannel(
      absl::GetFlag(FLAGS_target), grpc::InsecureChannelCredentials(), args));
}

void Revoke(v1::RevocationService::Stub& stub, const std::string& serial) {
  v1::RevokeCertificateRequest req;
  req.set_serial(serial);
  req.set_reason(v1::REVOCATION_REASON_KEY_COMPROMISE);
  req.set_comment("revocation_bench");
  v1::RevokeCertificateResponse resp;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  const grpc::Status st = stub.RevokeCertificate(&ctx, req, &resp);
  if (!st.ok()) Die(absl::StrCat("RevokeCertificate ", serial, ": ", st.error_message()));
  if (resp.already_revoked()) Die(absl::StrCat("serial ", serial, " was revoked already"));
}

using fleetca::bench::Percentile;

// The DER INTEGER of a serial given in hex, as a CRL entry holds it.
std::string SerialDer(const std::string& hex) {
  BIGNUM* bn = nullptr;
  if (BN_hex2bn(&bn, hex.c_str()) == 0) Die("bad serial " + hex);
  ASN1_INTEGER* i = BN_to_ASN1_INTEGER(bn, nullptr);
  BN_free(bn);
  unsigned char* der = nullptr;
  const int n = i2d_ASN1_INTEGER(i, &der);
  ASN1_INTEGER_free(i);
  if (n <= 0) Die("serial encoding");
  std::string out(reinterpret_cast<char*>(der), static_cast<size_t>(n));
  OPENSSL_free(der);
  return out;
}

class CrlPoller {
 public:
  explicit CrlPoller(bool delta) {
    const std::string http = absl::GetFlag(FLAGS_http);
    const size_t colon = http.rfind(':');
    client_ = std::make_unique<httplib::Client>(http.substr(0, colon),
                                                std::stoi(http.substr(colon + 1)));
    client_->set_read_timeout(60, 0);
    path_ = absl::StrCat(delta ? "/crl/delta/" : "/crl/", absl::GetFlag(FLAGS_issuer), ".crl");
  }
  // Fetch: true when a new CRL came (the body is then in body()).
  bool Fetch() {
    httplib::Headers headers;
    if (!etag_.empty()) headers.emplace("If-None-Match", etag_);
    auto res = client_->Get(path_.c_str(), headers);
    if (!res) Die(absl::StrCat("GET ", path_, ": ", httplib::to_string(res.error())));
    if (res->status == 304) return false;
    if (res->status != 200) Die(absl::StrCat("GET ", path_, ": HTTP ", res->status));
    etag_ = res->get_header_value("ETag");
    body_ = std::move(res->body);
    return true;
  }
  const std::string& body() const { return body_; }

  // WaitFor polls until the CRL lists the serial (hex); returns the milliseconds since s.
  double WaitFor(const std::string& serial_hex, Clock::time_point s, std::chrono::milliseconds poll,
                 std::chrono::seconds timeout) {
    const std::string needle = SerialDer(serial_hex);
    for (;;) {
      Fetch();  // (the body held may list it already)
      if (body_.find(needle) != std::string::npos) return Ms(Clock::now() - s);
      if (Clock::now() - s > timeout) Die(absl::StrCat("no CRL at ", path_, " lists the serial"));
      std::this_thread::sleep_for(poll);
    }
  }

  // Check: OpenSSL parses the CRL and finds the serial with reason keyCompromise; returns
  // how many entries it lists.
  int Check(const std::string& serial_hex) const {
    const auto* p = reinterpret_cast<const unsigned char*>(body_.data());
    X509_CRL* crl = d2i_X509_CRL(nullptr, &p, static_cast<long>(body_.size()));
    if (crl == nullptr) Die(absl::StrCat("the CRL at ", path_, " does not parse"));
    BIGNUM* bn = nullptr;
    BN_hex2bn(&bn, serial_hex.c_str());
    ASN1_INTEGER* serial = BN_to_ASN1_INTEGER(bn, nullptr);
    X509_REVOKED* entry = nullptr;
    if (X509_CRL_get0_by_serial(crl, &entry, serial) != 1) Die("OpenSSL does not find the serial");
    auto* reason = static_cast<ASN1_ENUMERATED*>(
        X509_REVOKED_get_ext_d2i(entry, NID_crl_reason, nullptr, nullptr));
    if (reason == nullptr || ASN1_ENUMERATED_get(reason) != 1) Die("the entry is not keyCompromise");
    const int entries = sk_X509_REVOKED_num(X509_CRL_get_REVOKED(crl));
    ASN1_ENUMERATED_free(reason);
    ASN1_INTEGER_free(serial);
    BN_free(bn);
    X509_CRL_free(crl);
    return entries;
  }

 private:
  std::unique_ptr<httplib::Client> client_;
  std::string path_, etag_, body_;
};

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const std::string label = absl::GetFlag(FLAGS_label);
  std::vector<std::string> serials;
  {
    std::ifstream f(absl::GetFlag(FLAGS_serials_file));
    for (std::string line; std::getline(f, line);) {
      if (!line.empty()) serials.push_back(line);
    }
  }
  const int clients = std::max(1, absl::GetFlag(FLAGS_clients));
  const size_t warmup = static_cast<size_t>(absl::GetFlag(FLAGS_warmup));
  const size_t timed = static_cast<size_t>(absl::GetFlag(FLAGS_revocations));
  const size_t paced = static_cast<size_t>(absl::GetFlag(FLAGS_paced));
  const size_t samples = static_cast<size_t>(absl::GetFlag(FLAGS_crl_samples));
  if (serials.size() < warmup + timed + paced + samples) {
    Die(absl::StrCat("need ", warmup + timed + paced + samples,
                     " serials in --serials_file, have ", serials.size()));
  }

  std::vector<std::unique_ptr<v1::RevocationService::Stub>> stubs;
  for (int c = 0; c < clients; ++c) stubs.push_back(NewStub(c));
  for (size_t i = 0; i < warmup; ++i) Revoke(*stubs[i % stubs.size()], serials[i]);

  // The timed revocations: clients take the next serial until none is left.
  std::atomic<size_t> next{warmup};
  const size_t end = warmup + timed;
  std::vector<std::vector<double>> latencies(static_cast<size_t>(clients));
  const Clock::time_point t0 = Clock::now();
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      for (size_t i; (i = next.fetch_add(1)) < end;) {
        const Clock::time_point s = Clock::now();
        Revoke(*stubs[static_cast<size_t>(c)], serials[i]);
        latencies[static_cast<size_t>(c)].push_back(Ms(Clock::now() - s));
      }
    });
  }
  for (std::thread& t : threads) t.join();
  const double seconds = Ms(Clock::now() - t0) / 1000;
  std::vector<double> all;
  for (const auto& l : latencies) all.insert(all.end(), l.begin(), l.end());
  std::printf("%sRevokeCertificate, %d clients, %zu revocations in %.1f s (%.0f/s): p50 %.2f ms, "
              "p90 %.2f ms, p99 %.2f ms, max %.2f ms\n",
              label.c_str(), clients, all.size(), seconds, static_cast<double>(all.size()) / seconds,
              Percentile(all, 0.5), Percentile(all, 0.9), Percentile(all, 0.99),
              Percentile(all, 1.0));
  std::fflush(stdout);

  // Paced: one client on a schedule.
  if (paced > 0) {
    const auto interval = std::chrono::duration_cast<Clock::duration>(
        std::chrono::duration<double>(1.0 / absl::GetFlag(FLAGS_rate)));
    std::vector<double> lat;
    const Clock::time_point p0 = Clock::now();
    for (size_t k = 0; k < paced; ++k) {
      const Clock::time_point due = p0 + interval * static_cast<int64_t>(k);
      std::this_thread::sleep_until(due);
      Revoke(*stubs[0], serials[end + k]);
      lat.push_back(Ms(Clock::now() - due));
    }
    std::printf("%sRevokeCertificate, paced at %.0f/s (1 client), %zu revocations: p50 %.2f ms, "
                "p90 %.2f ms, p99 %.2f ms, max %.2f ms\n",
                label.c_str(), absl::GetFlag(FLAGS_rate), lat.size(), Percentile(lat, 0.5),
                Percentile(lat, 0.9), Percentile(lat, 0.99), Percentile(lat, 1.0));
    std::fflush(stdout);
  }

  // Revocation to served CRL: one revocation at a time, on settled CRLs. With delta CRLs
  // the revocation is served once the delta CRL or the complete CRL lists it (a complete
  // CRL built right after it lists it, and its delta then does not).
  const bool delta = absl::GetFlag(FLAGS_delta);
  CrlPoller complete(false);
  std::unique_ptr<CrlPoller> deltas;
  if (delta) deltas = std::make_unique<CrlPoller>(true);
  const auto poll = std::chrono::milliseconds(absl::GetFlag(FLAGS_poll_ms));
  std::vector<double> to_crl;
  int via_delta = 0;
  std::string last_serial;
  Clock::time_point last_revoked;
  CrlPoller* last_found = nullptr;
  for (size_t k = 0; k < samples; ++k) {
    // Settled: no new CRL for two seconds (the builder caught up with the timed run).
    for (Clock::time_point quiet = Clock::now(); Clock::now() - quiet < std::chrono::seconds(2);) {
      if (complete.Fetch()) quiet = Clock::now();
      if (deltas && deltas->Fetch()) quiet = Clock::now();
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    last_serial = serials[end + paced + k];
    const std::string needle = SerialDer(last_serial);
    last_revoked = Clock::now();
    Revoke(*stubs[0], last_serial);
    for (last_found = nullptr; last_found == nullptr;) {
      if (deltas && deltas->Fetch() && deltas->body().find(needle) != std::string::npos) {
        last_found = deltas.get();
        ++via_delta;
      } else if (complete.Fetch() && complete.body().find(needle) != std::string::npos) {
        last_found = &complete;
      } else if (Clock::now() - last_revoked > std::chrono::seconds(120)) {
        Die("no CRL lists the serial after 120 s");
      } else {
        std::this_thread::sleep_for(poll);
      }
    }
    to_crl.push_back(Ms(Clock::now() - last_revoked));
  }
  if (!to_crl.empty()) {
    std::printf("%srevocation to a served CRL listing it (HTTP, polled every %lld ms), %zu "
                "samples: median %.0f ms, max %.0f ms; %d of them first in the delta CRL "
                "(%.3f MiB), %zu in the complete CRL (%.1f MiB)\n",
                label.c_str(), static_cast<long long>(poll.count()), to_crl.size(),
                Percentile(to_crl, 0.5), Percentile(to_crl, 1.0), via_delta,
                deltas ? static_cast<double>(deltas->body().size()) / (1 << 20) : 0.0,
                to_crl.size() - static_cast<size_t>(via_delta),
                static_cast<double>(complete.body().size()) / (1 << 20));
    std::printf("%sOpenSSL finds the last serial in the %s CRL that listed it first (%d "
                "entries), reason keyCompromise\n",
                label.c_str(), last_found == &complete ? "complete" : "delta",
                last_found->Check(last_serial));
    std::fflush(stdout);
  }
  if (delta && !to_crl.empty()) {
    // The complete CRL follows at its own pace.
    const double ms = complete.WaitFor(last_serial, last_revoked, std::chrono::milliseconds(200),
                                       std::chrono::seconds(900));
    std::printf("%sthe complete CRL (%.1f MiB) lists the last serial %.1f s after its revocation; "
                "OpenSSL finds it there (%d entries), reason keyCompromise\n",
                label.c_str(), static_cast<double>(complete.body().size()) / (1 << 20), ms / 1000,
                complete.Check(last_serial));
  }
  return 0;
}
