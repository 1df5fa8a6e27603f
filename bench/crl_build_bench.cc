// crl_build_bench: a full CRL of N entries (default 1,000,000) for one issuer, built by
// fleetca's pki::BuildCrlDer (DER assembled directly, signed through the KeyStore), and
// the reference measured in the same run: `openssl ca -gencrl` on the same entries (its
// index.txt database), as DESIGN.md quotes it. Prints both times and sizes, and checks
// that `openssl crl -verify` accepts fleetca's CRL.
//
//   build/bench/crl_build_bench [--entries=1000000] [--runs=3] [--skip_openssl]
#include <sys/wait.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "pki/certificate_builder.h"
#include "pki/crl_builder.h"
#include "pki/key_store.h"
#include "pki/keys.h"
#include "pki/openssl_util.h"

ABSL_FLAG(int, entries, 1000000, "revoked certificates in the CRL");
ABSL_FLAG(int, runs, 3, "builds by fleetca (the best and the median are printed)");
ABSL_FLAG(bool, skip_openssl, false, "do not run the openssl ca -gencrl reference");

namespace {

using fleetca::pki::CrlEntry;

void Die(const std::string& what) {
  std::fprintf(stderr, "crl_build_bench: %s\n", what.c_str());
  std::exit(1);
}

void Write(const std::string& path, const std::string& data) {
  std::ofstream f(path, std::ios::binary);
  f << data;
  if (!f) Die("cannot write " + path);
}

double TimeCommand(const std::string& command) {
  const absl::Time t0 = absl::Now();
  const int status = std::system(command.c_str());
  const double seconds = absl::ToDoubleSeconds(absl::Now() - t0);
  if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    Die("failed: " + command);
  }
  return seconds;
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const int n = absl::GetFlag(FLAGS_entries);
  const int runs = std::max(1, absl::GetFlag(FLAGS_runs));
  namespace pki = fleetca::pki;

  // A P-256 CA (fleetca's default), its key in a SoftwareKeyStore as the server's are.
  auto key = pki::GenerateKey(pki::KeyAlgorithm::kEcdsaP256);
  if (!key.ok()) Die(std::string(key.status().message()));
  pki::SoftwareKeyStore store;
  store.Add("ca", pki::EvpPkeyPtr(EVP_PKEY_dup(key->get())));
  const absl::Time now = absl::FromUnixSeconds(absl::ToUnixSeconds(absl::Now()));
  pki::CertificateTemplate t;
  t.profile = pki::CertificateProfile::kRootCa;
  t.serial = pki::RandomSerial();
  t.subject.common_name = "Bench Devices CA";
  t.not_before = now - absl::Hours(1);
  t.not_after = now + absl::Hours(24 * 365);
  t.public_key = key->get();
  auto ca = pki::BuildCertificate(t, nullptr, store, "ca");
  if (!ca.ok()) Die(std::string(ca.status().message()));

  // N entries: 16-byte random positive serials, a spread of dates and reasons.
  pki::CrlTemplate crl;
  crl.crl_number = 1;
  crl.this_update = now;
  crl.next_update = now + absl::Hours(24);
  crl.entries.reserve(static_cast<size_t>(n));
  // (openssl ca's index.txt cannot express privilegeWithdrawn: the reasons both take.)
  const int reasons[] = {0, 1, 3, 4, 5};
  for (int i = 0; i < n; ++i) {
    std::string serial = pki::RandomSerial().substr(0, 16);
    crl.entries.push_back(
        {serial, now - absl::Seconds(i % 86400), reasons[i % 5], std::nullopt});
  }
  std::sort(crl.entries.begin(), crl.entries.end(),
            [](const CrlEntry& a, const CrlEntry& b) { return a.serial < b.serial; });

  std::vector<double> times;
  std::string der;
  for (int r = 0; r < runs; ++r) {
    const absl::Time t0 = absl::Now();
    auto built = pki::BuildCrlDer(crl, ca->get(), store, "ca");
    times.push_back(absl::ToDoubleSeconds(absl::Now() - t0));
    if (!built.ok()) Die(std::string(built.status().message()));
    der = *std::move(built);
  }
  std::sort(times.begin(), times.end());
  std::printf("fleetca BuildCrlDer: %d entries, %.1f MiB DER: best %.3f s, median %.3f s (%d runs)\n",
              n, static_cast<double>(der.size()) / (1 << 20), times.front(), times[times.size() / 2],
              runs);

  // Check it, and the reference, with the openssl CLI in a scratch directory.
  char tmpl[] = "/tmp/crl-bench-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) Die("mkdtemp");
  const std::string dir = tmpl;
  auto ca_pem = pki::CertificateToPem(ca->get());
  if (!ca_pem.ok()) Die("CA PEM");
  Write(dir + "/ca.pem", *ca_pem);
  Write(dir + "/fleetca.crl", der);
  TimeCommand(absl::StrCat("openssl crl -inform DER -in ", dir, "/fleetca.crl -CAfile ", dir,
                           "/ca.pem -noout 2>&1 | grep -q 'verify OK'"));
  std::printf("openssl crl -verify: fleetca's CRL verifies\n");
  if (absl::GetFlag(FLAGS_skip_openssl)) return 0;

  auto key_der = pki::PrivateKeyToDer(key->get());
  if (!key_der.ok()) Die("key");
  Write(dir + "/ca.key", pki::DerToPem(*key_der, "PRIVATE KEY"));
  std::string index;
  index.reserve(static_cast<size_t>(n) * 80);
  const char* reason_names[] = {"unspecified", "keyCompromise", "", "affiliationChanged",
                                "superseded", "cessationOfOperation", "", "", "",
                                "privilegeWithdrawn"};
  const std::string expiry = absl::FormatTime("%y%m%d%H%M%SZ", now + absl::Hours(24 * 300),
                                              absl::UTCTimeZone());
  for (const CrlEntry& e : crl.entries) {
    absl::StrAppend(&index, "R\t", expiry, "\t",
                    absl::FormatTime("%y%m%d%H%M%SZ", e.revocation_date, absl::UTCTimeZone()),
                    e.reason != 0 ? absl::StrCat(",", reason_names[e.reason]) : "", "\t",
                    pki::SerialToHex(e.serial), "\tunknown\t/CN=x\n");
  }
  Write(dir + "/index.txt", index);
  Write(dir + "/crlnumber", "01\n");
  Write(dir + "/ca.cnf", absl::StrCat(
      "[ca]\ndefault_ca = bench\n[bench]\ndatabase = ", dir, "/index.txt\ncrlnumber = ", dir,
      "/crlnumber\ncertificate = ", dir, "/ca.pem\nprivate_key = ", dir,
      "/ca.key\ndefault_md = sha256\ndefault_crl_days = 1\n"));
  // Keep the scratch directory when it fails (openssl.err says why).
  const double openssl = TimeCommand(absl::StrCat("openssl ca -gencrl -config ", dir,
                                                  "/ca.cnf -out ", dir, "/openssl.crl 2>", dir, "/openssl.err"));
  std::printf("reference, same run: openssl ca -gencrl, same %d entries: %.3f s\n", n, openssl);
  if (std::system(absl::StrCat("rm -rf ", dir).c_str()) != 0) Die("rm " + dir);
  return 0;
}
