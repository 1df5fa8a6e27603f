// plugin_policy_bench: the mosquitto plugin's policy code (fleetca_plugin) with a fleet of
// --devices devices loaded (default 1,000,000), in process: no broker, no server.
//
// What it builds, as the Watch stream would deliver it (plugin::Policy::Apply of SyncChange
// objects, one reused message per kind):
//  - two issuers with real certificates made here with OpenSSL (P-256): devices-1
//    (ISSUER_PURPOSE_DEVICES) and operators-1 (ISSUER_PURPOSE_OPERATORS);
//  - the built-in profiles "device" (devices/%c/# READWRITE), "watcher" (# READ) and
//    "controller" (# READWRITE), a DENY profile "no-firmware" (devices/%c/firmware/# DENY)
//    and "site-alerts" (sites/%{site}/alerts/# READ);
//  - assignments: ALL_DEVICES -> device and no-firmware; GROUP line-0..line-9 ->
//    site-alerts;
//  - --devices ACTIVE devices bench-<i>; one in five (i % 5 == 0) is in group
//    line-<(i / 5) % 10> with attribute site=s<(i / 5) % 10>, the others have neither;
//  - one ACTIVE certificate per device (issuer devices-1, a 20-byte serial as fleetca makes
//    them, SHA-256 fingerprint, principal DEVICE bench-<i>, not_after in a year). For the
//    --connected devices that connect (bench-<k * stride + k % 5>) the certificate is a
//    real one signed by devices-1 (one shared P-256 leaf key, a CA signature each); the
//    others' serials and fingerprints are made up (the plugin never parses them).
//
// What it prints:
//  1. build time and memory: heap bytes (glibc mallinfo2: uordblks + hblkhd, i.e. the
//     allocator's in-use bytes including mmapped blocks) before and after the devices, and
//     after their certificates, per device; VmRSS/VmHWM from /proc/self/status.
//  2. --connected clients connected through plugin::Enforcer::OnConnect (X509 issuer check
//     and signature verification, fingerprint, Decide), the heap they take per client.
//  3. Google Benchmark means (the BM_ lines) of Enforcer::Allowed for publish on the own
//     topic (allowed), on a foreign topic (denied), on a topic a DENY rule covers (denied),
//     subscribe with a wildcard filter (own subtree: allowed; devices/+/up: denied), receive
//     on the own topic and on the site topic of a grouped device; the offline path
//     (a client id not connected: a device lookup plus ResolveRules per call); and the
//     connect-time work: Policy::FindDevice, Policy::ResolveRules, plugin::Decide,
//     Enforcer::OnConnect; the snapshot copy (Policy's copy constructor).
//  4. Percentiles Google Benchmark does not give: each operation timed over --samples calls
//     (default 1,048,576) in two ways, std::chrono::steady_clock around every single call
//     (the clock's own cost, measured with nothing in between, is printed and included) and
//     around batches of 16 calls divided by 16 (amortizes the clock; but a batch's mean
//     spreads one slow call over 16, and a batch is 16 times as likely to be hit by an
//     interrupt or a preemption, so its far tail is not the single call's); p50/p99/p99.9/max
//     in ns. Clients are
//     visited in a random order (so the lookups miss the caches as a broker's would).
//  5. What the sync thread pays per delta with this fleet: Policy::Apply of one change on
//     the live policy (copying the one CowMap shard that the previous snapshot shares),
//     TakeTouched, a snapshot copy and SnapshotBox::Publish, for --deltas deltas
//     (device suspended, certificate revoked, device re-activated, ...), p50/p99/max; and
//     what the broker thread then pays in Enforcer::OnTick (take the snapshot, recheck the
//     clients the delta concerns among --connected, found through its indexes); and one
//     change that concerns everyone (a profile, an issuer: every connected client decided
//     again).
//
// Every answer is checked against what the policy says it must be: a wrong answer stops
// the run (exit 1). Figures only: nothing is asserted about time.
//
//   build/bench/plugin_policy_bench [--devices=N] [--connected=N] [--samples=N]
//                                   [--deltas=N] [Google Benchmark flags]
//
// Environment: PLUGIN_BENCH_DEVICES (default of --devices).
#include <benchmark/benchmark.h>
#include <malloc.h>
#include <unistd.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <random>
#include <string>
#include <unordered_set>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "bench/bench_util.h"
#include "fleetca/v1/broker_sync.pb.h"
#include "plugin/authorizer.h"
#include "plugin/cache.h"
#include "plugin/enforcer.h"
#include "plugin/policy.h"

namespace {

namespace v1 = fleetca::v1;
namespace plugin = fleetca::plugin;
namespace acl = fleetca::acl;
using Clock = std::chrono::steady_clock;
using fleetca::bench::Percentile;

[[noreturn]] void Die(const std::string& what) {
  fleetca::bench::Die("plugin_policy_bench", what);
}

// ---- Settings (own flags, taken out of argv before Google Benchmark reads it) ----

struct Settings {
  int64_t devices = 1000000;
  int connected = 10000;
  int64_t samples = 1 << 20;
  int deltas = 200;
};
Settings g_settings;

bool TakeFlag(const char* arg, const char* name, int64_t* out) {
  const size_t n = std::strlen(name);
  if (std::strncmp(arg, name, n) != 0 || arg[n] != '=') return false;
  char* end = nullptr;
  const long long v = std::strtoll(arg + n + 1, &end, 10);
  if (end == arg + n + 1 || *end != '\0' || v <= 0) Die(absl::StrCat("bad value: ", arg));
  *out = v;
  return true;
}

void ParseSettings(int* argc, char** argv) {
  if (const char* env = std::getenv("PLUGIN_BENCH_DEVICES"); env != nullptr && *env != '\0') {
    g_settings.devices = std::atoll(env);
  }
  int kept = 1;
  for (int i = 1; i < *argc; ++i) {
    int64_t v = 0;
    if (TakeFlag(argv[i], "--devices", &v)) {
      g_settings.devices = v;
    } else if (TakeFlag(argv[i], "--connected", &v)) {
      g_settings.connected = static_cast<int>(v);
    } else if (TakeFlag(argv[i], "--samples", &v)) {
      g_settings.samples = v;
    } else if (TakeFlag(argv[i], "--deltas", &v)) {
      g_settings.deltas = static_cast<int>(v);
    } else {
      argv[kept++] = argv[i];
    }
  }
  *argc = kept;
  if (g_settings.connected > g_settings.devices) g_settings.connected = static_cast<int>(g_settings.devices);
  if (g_settings.devices < 5) Die("--devices must be at least 5");
}

// ---- Memory ----

size_t HeapInUse() {
  const struct mallinfo2 m = mallinfo2();
  return m.uordblks + m.hblkhd;
}

std::string ProcStatus() {
  std::ifstream in("/proc/self/status");
  std::string line;
  std::string out;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0 || line.rfind("VmHWM:", 0) == 0) {
      long kb = std::atol(line.c_str() + 6);
      absl::StrAppend(&out, line.substr(0, 5), " ", kb / 1024, " MiB  ");
    }
  }
  return out;
}

double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// ---- Certificates (OpenSSL) ----

struct PkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;
using X509Shared = std::shared_ptr<X509>;

PkeyPtr NewP256Key() {
  PkeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  if (key == nullptr) Die("P-256 key generation failed");
  return key;
}

void AddExtension(X509* cert, X509V3_CTX* ctx, int nid, const char* value) {
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, ctx, nid, value);
  if (ext == nullptr || X509_add_ext(cert, ext, -1) != 1) Die(absl::StrCat("extension ", nid));
  X509_EXTENSION_free(ext);
}

void SetName(X509_NAME* name, const std::string& cn) {
  if (X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1,
                                 0) != 1) {
    Die("X509_NAME");
  }
}

// SerialBytes: 20 bytes, positive, as pki::RandomSerial makes them (here from the index).
uint64_t SplitMix64(uint64_t* state) {
  uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

std::string SerialBytes(uint64_t i, uint8_t tag) {
  std::string s(20, '\0');
  uint64_t state = i * 1000003u + tag;
  uint64_t bits = 0;
  for (size_t k = 0; k < s.size(); ++k) {
    if (k % 8 == 0) bits = SplitMix64(&state);
    s[k] = static_cast<char>(bits & 0xff);
    bits >>= 8;
  }
  s[0] = static_cast<char>((static_cast<uint8_t>(s[0]) & 0x7f) | 0x01);
  return s;
}

void SetSerial(X509* cert, const std::string& bytes) {
  BIGNUM* bn = BN_bin2bn(reinterpret_cast<const unsigned char*>(bytes.data()),
                         static_cast<int>(bytes.size()), nullptr);
  if (bn == nullptr || BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert)) == nullptr) {
    Die("serial");
  }
  BN_free(bn);
}

struct Ca {
  PkeyPtr key;
  X509Shared cert;
  std::string pem;
};

Ca MakeCa(const std::string& cn, uint8_t tag) {
  Ca ca;
  ca.key = NewP256Key();
  X509* c = X509_new();
  ca.cert.reset(c, X509_free);
  X509_set_version(c, 2);
  SetSerial(c, SerialBytes(0, tag));
  SetName(X509_get_subject_name(c), cn);
  SetName(X509_get_issuer_name(c), cn);
  X509_gmtime_adj(X509_getm_notBefore(c), -86400);
  X509_gmtime_adj(X509_getm_notAfter(c), 86400L * 3650);
  X509_set_pubkey(c, ca.key.get());
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, c, c, nullptr, nullptr, 0);
  AddExtension(c, &ctx, NID_basic_constraints, "critical,CA:TRUE,pathlen:0");
  AddExtension(c, &ctx, NID_key_usage, "critical,keyCertSign,cRLSign");
  AddExtension(c, &ctx, NID_subject_key_identifier, "hash");
  if (X509_sign(c, ca.key.get(), EVP_sha256()) <= 0) Die("CA signature");
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(bio, c);
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);
  ca.pem.assign(data, static_cast<size_t>(n));
  BIO_free(bio);
  return ca;
}

X509Shared MakeLeaf(const Ca& ca, EVP_PKEY* key, const std::string& cn, uint64_t i) {
  X509* c = X509_new();
  X509Shared out(c, X509_free);
  X509_set_version(c, 2);
  SetSerial(c, SerialBytes(i, 7));
  SetName(X509_get_subject_name(c), cn);
  X509_set_issuer_name(c, X509_get_subject_name(ca.cert.get()));
  X509_gmtime_adj(X509_getm_notBefore(c), -86400);
  X509_gmtime_adj(X509_getm_notAfter(c), 86400L * 365);
  X509_set_pubkey(c, key);
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, ca.cert.get(), c, nullptr, nullptr, 0);
  AddExtension(c, &ctx, NID_basic_constraints, "critical,CA:FALSE");
  AddExtension(c, &ctx, NID_key_usage, "critical,digitalSignature");
  AddExtension(c, &ctx, NID_ext_key_usage, "clientAuth");
  AddExtension(c, &ctx, NID_authority_key_identifier, "keyid:always");
  if (X509_sign(c, ca.key.get(), EVP_sha256()) <= 0) Die("leaf signature");
  return out;
}

std::string Hex(const std::string& bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char b : bytes) {
    out.push_back(kDigits[b >> 4]);
    out.push_back(kDigits[b & 15]);
  }
  return out;
}

// ---- The fleet ----

std::string CommId(int64_t i) { return absl::StrCat("bench-", i); }
bool Grouped(int64_t i) { return i % 5 == 0; }
int64_t SiteOf(int64_t i) { return (i / 5) % 10; }

constexpr char kDevicesCa[] = "devices-1";
constexpr char kOperatorsCa[] = "operators-1";
const int64_t kNotAfter = absl::ToUnixSeconds(absl::Now() + absl::Hours(24 * 365));

void ApplyOrDie(plugin::Policy& policy, const v1::SyncChange& change) {
  if (!policy.Apply(change)) Die("Policy::Apply refused a change");
}

void ApplyIssuer(plugin::Policy& policy, const std::string& id, v1::IssuerPurpose purpose,
                 const std::string& pem) {
  v1::SyncChange change;
  v1::SyncIssuer* s = change.mutable_issuer();
  s->set_issuer_id(id);
  s->set_purpose(purpose);
  s->set_enabled(true);
  s->set_certificate_pem(pem);
  s->mutable_not_after()->set_seconds(kNotAfter + 86400L * 3000);
  ApplyOrDie(policy, change);
}

void ApplyProfile(plugin::Policy& policy, const std::string& name,
                  std::vector<std::pair<std::string, v1::AclAccess>> rules) {
  v1::SyncChange change;
  v1::SyncAclProfile* p = change.mutable_acl_profile();
  p->set_name(name);
  for (const auto& [pattern, access] : rules) {
    v1::AclRule* r = p->add_rules();
    r->set_topic_pattern(pattern);
    r->set_access(access);
  }
  ApplyOrDie(policy, change);
}

void ApplyAssignment(plugin::Policy& policy, v1::AclSubjectType type, const std::string& id,
                     const std::string& profile) {
  v1::SyncChange change;
  v1::AclAssignment* a = change.mutable_acl_assignment();
  a->set_subject_type(type);
  a->set_subject_id(id);
  a->set_profile_name(profile);
  ApplyOrDie(policy, change);
}

void FillDevice(v1::SyncChange* change, int64_t i, v1::DeviceStatus status) {
  v1::SyncDevice* d = change->mutable_device();
  d->Clear();
  d->set_comm_id(CommId(i));
  d->set_status(status);
  if (Grouped(i)) {
    d->add_groups(absl::StrCat("line-", SiteOf(i)));
    (*d->mutable_attributes())["site"] = absl::StrCat("s", SiteOf(i));
  }
}

void FillCertificate(v1::SyncChange* change, int64_t i, const std::string& serial_hex,
                     const std::string& fingerprint_hex, v1::CertificateStatus status) {
  v1::SyncCertificate* c = change->mutable_certificate();
  c->Clear();
  c->set_issuer_id(kDevicesCa);
  c->set_serial(serial_hex);
  c->set_sha256_fingerprint(fingerprint_hex);
  c->mutable_principal()->set_type(v1::PRINCIPAL_TYPE_DEVICE);
  c->mutable_principal()->set_id(CommId(i));
  c->set_status(status);
  if (status == v1::CERTIFICATE_STATUS_REVOKED) {
    c->set_revocation_reason(v1::REVOCATION_REASON_KEY_COMPROMISE);
  }
  c->mutable_not_after()->set_seconds(kNotAfter);
}

// A made-up fingerprint (64 hex digits) for a certificate that never connects.
std::string FakeFingerprintHex(int64_t i) { return Hex(SerialBytes(i, 9) + SerialBytes(i, 10).substr(0, 12)); }

// ---- The state every benchmark shares ----

struct ConnectedClient {
  int64_t device = 0;
  std::string client_id;
  X509Shared cert;
  plugin::ClientCertificate cc;
  // The topics asked about, made once.
  std::string own_up, foreign_up, own_firmware, own_wildcard, foreign_wildcard, own_cmd, site;
};

struct World {
  plugin::Policy live;  // the sync thread's policy
  plugin::SnapshotBox box;
  absl::Time now = absl::Now();
  std::unique_ptr<plugin::Enforcer> enforcer;
  std::vector<ConnectedClient> clients;
  std::vector<char> handles;  // &handles[k] is client k's mosquitto pointer
  std::vector<uint32_t> order;  // a random visiting order of the clients
  std::vector<std::string> serials;  // certificate serial (hex) of every device
  Ca devices_ca;
  Ca operators_ca;
  int64_t revision = 1;
};
World* g_world = nullptr;

const void* Handle(size_t k) { return &g_world->handles[k]; }

void BuildWorld() {
  World& w = *g_world;
  const Settings& s = g_settings;
  std::printf("== plugin policy: %lld devices (one certificate each), %d of them connected, "
              "comm-IDs bench-<i> (6 to 12 characters)\n",
              static_cast<long long>(s.devices), s.connected);

  // Issuers and the connecting devices' real certificates.
  auto t0 = Clock::now();
  w.devices_ca = MakeCa("bench Devices CA", 1);
  w.operators_ca = MakeCa("bench Operators CA", 2);
  ApplyIssuer(w.live, kDevicesCa, v1::ISSUER_PURPOSE_DEVICES, w.devices_ca.pem);
  ApplyIssuer(w.live, kOperatorsCa, v1::ISSUER_PURPOSE_OPERATORS, w.operators_ca.pem);
  for (const auto* id : {kDevicesCa, kOperatorsCa}) {
    const plugin::Issuer* issuer = w.live.FindIssuer(id);
    if (issuer == nullptr || issuer->certificate == nullptr) Die("an issuer's PEM did not parse");
  }
  PkeyPtr leaf_key = NewP256Key();
  const int64_t stride = std::max<int64_t>(5, s.devices / s.connected);
  w.clients.resize(static_cast<size_t>(s.connected));
  w.serials.resize(static_cast<size_t>(s.devices));
  std::vector<std::string> real_fingerprints(static_cast<size_t>(s.devices));
  for (int k = 0; k < s.connected; ++k) {
    ConnectedClient& c = w.clients[static_cast<size_t>(k)];
    c.device = std::min<int64_t>(s.devices - 1, k * stride + k % 5);
    c.client_id = CommId(c.device);
    c.cert = MakeLeaf(w.devices_ca, leaf_key.get(), c.client_id, static_cast<uint64_t>(c.device));
    plugin::Decision refusal;
    if (!plugin::ReadClientCertificate(w.live, c.cert.get(), &c.cc, &refusal)) {
      Die(absl::StrCat("ReadClientCertificate: ", refusal.message));
    }
    w.serials[static_cast<size_t>(c.device)] = c.cc.serial;
    real_fingerprints[static_cast<size_t>(c.device)] =
        Hex(std::string(reinterpret_cast<const char*>(c.cc.fingerprint.data()), 32));
  }
  for (int64_t i = 0; i < s.devices; ++i) {
    if (w.serials[static_cast<size_t>(i)].empty()) {
      w.serials[static_cast<size_t>(i)] = Hex(SerialBytes(static_cast<uint64_t>(i), 7));
    }
  }
  std::printf("made 2 CA certificates and %d device certificates in %.2f s\n", s.connected,
              Seconds(t0, Clock::now()));

  // Profiles and assignments.
  ApplyProfile(w.live, "device", {{"devices/%c/#", v1::ACL_ACCESS_READWRITE}});
  ApplyProfile(w.live, "watcher", {{"#", v1::ACL_ACCESS_READ}});
  ApplyProfile(w.live, "controller", {{"#", v1::ACL_ACCESS_READWRITE}});
  ApplyProfile(w.live, "no-firmware", {{"devices/%c/firmware/#", v1::ACL_ACCESS_DENY}});
  ApplyProfile(w.live, "site-alerts", {{"sites/%{site}/alerts/#", v1::ACL_ACCESS_READ}});
  ApplyAssignment(w.live, v1::ACL_SUBJECT_TYPE_ALL_DEVICES, "", "device");
  ApplyAssignment(w.live, v1::ACL_SUBJECT_TYPE_ALL_DEVICES, "", "no-firmware");
  for (int g = 0; g < 10; ++g) {
    ApplyAssignment(w.live, v1::ACL_SUBJECT_TYPE_GROUP, absl::StrCat("line-", g), "site-alerts");
  }

  // The devices, then their certificates, memory counted around each.
  v1::SyncChange change;
  const size_t heap0 = HeapInUse();
  t0 = Clock::now();
  for (int64_t i = 0; i < s.devices; ++i) {
    FillDevice(&change, i, v1::DEVICE_STATUS_ACTIVE);
    ApplyOrDie(w.live, change);
  }
  auto t1 = Clock::now();
  const size_t heap1 = HeapInUse();
  for (int64_t i = 0; i < s.devices; ++i) {
    const std::string& fp = real_fingerprints[static_cast<size_t>(i)];
    FillCertificate(&change, i, w.serials[static_cast<size_t>(i)],
                    fp.empty() ? FakeFingerprintHex(i) : fp, v1::CERTIFICATE_STATUS_ACTIVE);
    ApplyOrDie(w.live, change);
  }
  auto t2 = Clock::now();
  const size_t heap2 = HeapInUse();
  real_fingerprints.clear();
  real_fingerprints.shrink_to_fit();
  const double n = static_cast<double>(s.devices);
  std::printf("built: %lld devices applied in %.2f s (%.0f ns each), their certificates in %.2f s "
              "(%.0f ns each); %zu objects\n",
              static_cast<long long>(s.devices), Seconds(t0, t1), Seconds(t0, t1) * 1e9 / n,
              Seconds(t1, t2), Seconds(t1, t2) * 1e9 / n, w.live.ObjectCount());
  std::printf("MEMORY heap (mallinfo2 uordblks+hblkhd): devices %.1f MiB = %.0f B/device "
              "(1 in 5 with a group and an attribute); certificates %.1f MiB = %.0f B/certificate; "
              "total %.0f B per device with its certificate\n",
              static_cast<double>(heap1 - heap0) / 1048576.0,
              static_cast<double>(heap1 - heap0) / n,
              static_cast<double>(heap2 - heap1) / 1048576.0,
              static_cast<double>(heap2 - heap1) / n, static_cast<double>(heap2 - heap0) / n);
  std::printf("MEMORY process after the build: %s\n", ProcStatus().c_str());

  // The first snapshot, and the enforcer that reads it.
  w.box.Publish(std::make_shared<const plugin::Policy>(w.live), w.revision, w.live.TakeTouched());
  plugin::EnforcerOptions options;
  w.enforcer = std::make_unique<plugin::Enforcer>(w.box, options, [] { return g_world->now; });

  // Connect the clients.
  w.handles.resize(static_cast<size_t>(s.connected) + 16);
  const size_t heap3 = HeapInUse();
  t0 = Clock::now();
  for (size_t k = 0; k < w.clients.size(); ++k) {
    ConnectedClient& c = w.clients[k];
    plugin::Decision d = w.enforcer->OnConnect(Handle(k), c.client_id, c.cert.get());
    if (!d.allowed()) Die(absl::StrCat("OnConnect ", c.client_id, ": ", d.message));
  }
  t1 = Clock::now();
  const size_t heap4 = HeapInUse();
  std::printf("connected %d clients through Enforcer::OnConnect in %.2f s (%.1f us each); "
              "%.0f B of heap per connected client (its certificate facts and resolved rules)\n",
              s.connected, Seconds(t0, t1), Seconds(t0, t1) * 1e6 / s.connected,
              static_cast<double>(heap4 - heap3) / s.connected);

  // Topics, and a random visiting order.
  for (size_t k = 0; k < w.clients.size(); ++k) {
    ConnectedClient& c = w.clients[k];
    const int64_t other = (c.device + 1) % s.devices;
    c.own_up = absl::StrCat("devices/", c.client_id, "/up");
    c.foreign_up = absl::StrCat("devices/", CommId(other), "/up");
    c.own_firmware = absl::StrCat("devices/", c.client_id, "/firmware/image");
    c.own_wildcard = absl::StrCat("devices/", c.client_id, "/#");
    c.foreign_wildcard = "devices/+/up";
    c.own_cmd = absl::StrCat("devices/", c.client_id, "/cmd");
    c.site = absl::StrCat("sites/s", SiteOf(c.device), "/alerts/fire");
  }
  std::mt19937 rng(42);
  const size_t order_size = 1 << 20;
  w.order.resize(order_size);
  for (auto& o : w.order) o = static_cast<uint32_t>(rng() % w.clients.size());
}

// ---- The operations ----

struct Op {
  const char* name;
  acl::Operation op;
  std::string ConnectedClient::*topic;
  bool grouped_only;  // only clients in a group (1 in 5)
  bool expect;
};

const Op kOps[] = {
    {"publish_own_topic", acl::Operation::kPublish, &ConnectedClient::own_up, false, true},
    {"publish_foreign_topic", acl::Operation::kPublish, &ConnectedClient::foreign_up, false, false},
    {"publish_deny_rule", acl::Operation::kPublish, &ConnectedClient::own_firmware, false, false},
    {"subscribe_own_wildcard", acl::Operation::kSubscribe, &ConnectedClient::own_wildcard, false,
     true},
    {"subscribe_foreign_wildcard", acl::Operation::kSubscribe, &ConnectedClient::foreign_wildcard,
     false, false},
    {"receive_own_topic", acl::Operation::kReceive, &ConnectedClient::own_cmd, false, true},
    {"receive_site_alert", acl::Operation::kReceive, &ConnectedClient::site, true, true},
};

// Visit: the client indices an operation is asked for, in the random order.
std::vector<uint32_t> OrderFor(const Op& op) {
  if (!op.grouped_only) return g_world->order;
  std::vector<uint32_t> out;
  out.reserve(g_world->order.size());
  for (uint32_t k : g_world->order) {
    if (Grouped(g_world->clients[k].device)) out.push_back(k);
  }
  return out;
}

void CheckAnswers(const Op& op) {
  World& w = *g_world;
  for (size_t k = 0; k < w.clients.size(); ++k) {
    const ConnectedClient& c = w.clients[k];
    if (op.grouped_only && !Grouped(c.device)) continue;
    if (w.enforcer->Allowed(Handle(k), c.client_id, op.op, c.*op.topic) != op.expect) {
      Die(absl::StrCat(op.name, ": wrong answer for ", c.client_id, " on ", c.*op.topic));
    }
  }
}

void BM_Allowed(benchmark::State& state, const Op* op) {
  World& w = *g_world;
  const std::vector<uint32_t> order = OrderFor(*op);
  const size_t mask = order.size() - 1;  // order sizes are 2^20 or close: wrap with modulo
  size_t i = 0;
  int64_t allowed = 0;
  for (auto _ : state) {
    const uint32_t k = order[i];
    i = i == mask ? 0 : i + 1;
    const ConnectedClient& c = w.clients[k];
    allowed += w.enforcer->Allowed(Handle(k), c.client_id, op->op, c.*(op->topic));
  }
  benchmark::DoNotOptimize(allowed);
  state.counters["allowed_fraction"] =
      benchmark::Counter(static_cast<double>(allowed) / static_cast<double>(state.iterations()));
}

void BM_AllowedOffline(benchmark::State& state) {
  // A client id that is not connected (mosquitto asks for queued messages of an offline
  // persistent session): FindDevice, then ResolveRules, per call.
  World& w = *g_world;
  const std::string other_handle = "x";
  size_t i = 0;
  int64_t allowed = 0;
  for (auto _ : state) {
    const ConnectedClient& c = w.clients[w.order[i]];
    i = (i + 1) & (w.order.size() - 1);
    allowed += w.enforcer->Allowed(other_handle.data(), c.client_id, acl::Operation::kReceive,
                                   c.own_cmd);
  }
  if (allowed != static_cast<int64_t>(state.iterations())) Die("offline receive denied");
}

void BM_FindDevice(benchmark::State& state) {
  World& w = *g_world;
  std::vector<std::string> ids;
  std::mt19937 rng(7);
  for (int k = 0; k < 4096; ++k) ids.push_back(CommId(static_cast<int64_t>(rng() % g_settings.devices)));
  size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(w.live.FindDevice(ids[i]));
    i = (i + 1) & 4095;
  }
}

void BM_ResolveRules(benchmark::State& state) {
  World& w = *g_world;
  std::vector<std::pair<std::string, const plugin::Device*>> devices;
  std::mt19937 rng(8);
  for (int k = 0; k < 4096; ++k) {
    std::string id = CommId(static_cast<int64_t>(rng() % g_settings.devices));
    const plugin::Device* d = w.live.FindDevice(id);
    devices.emplace_back(std::move(id), d);
  }
  size_t i = 0;
  size_t rules = 0;
  for (auto _ : state) {
    const auto& [id, device] = devices[i];
    rules += w.live.ResolveRules(v1::PRINCIPAL_TYPE_DEVICE, id, device).size();
    i = (i + 1) & 4095;
  }
  state.counters["rules_per_device"] =
      benchmark::Counter(static_cast<double>(rules) / static_cast<double>(state.iterations()));
}

void BM_Decide(benchmark::State& state) {
  World& w = *g_world;
  size_t i = 0;
  for (auto _ : state) {
    const ConnectedClient& c = w.clients[w.order[i]];
    i = (i + 1) & (w.order.size() - 1);
    plugin::Decision d = plugin::Decide(w.live, c.cc, c.client_id, w.now);
    if (!d.allowed()) Die("Decide refused");
    benchmark::DoNotOptimize(d);
  }
}

void BM_OnConnect(benchmark::State& state) {
  // The whole CONNECT: the issuer found by name and its signature checked (ECDSA P-256
  // verify), the certificate DER-encoded and hashed, Decide; then forgotten again.
  World& w = *g_world;
  const void* handle = &w.handles[w.clients.size() + 1];
  size_t i = 0;
  for (auto _ : state) {
    const ConnectedClient& c = w.clients[w.order[i]];
    i = (i + 1) & (w.order.size() - 1);
    plugin::Decision d = w.enforcer->OnConnect(handle, c.client_id, c.cert.get());
    if (!d.allowed()) Die("OnConnect refused");
  }
  w.enforcer->OnDisconnect(handle);
}

void BM_SnapshotCopy(benchmark::State& state) {
  World& w = *g_world;
  for (auto _ : state) {
    auto copy = std::make_shared<const plugin::Policy>(w.live);
    benchmark::DoNotOptimize(copy.get());
  }
}

// ---- Percentiles ----

struct Pct {
  double p50, p99, p999, max;
};

Pct Percentiles(std::vector<double>& v) {
  Pct p;
  p.p50 = Percentile(v, 0.50);
  p.p99 = Percentile(v, 0.99);
  p.p999 = Percentile(v, 0.999);
  p.max = *std::max_element(v.begin(), v.end());
  return p;
}

double Ns(Clock::time_point a, Clock::time_point b) {
  return static_cast<double>(std::chrono::duration_cast<std::chrono::nanoseconds>(b - a).count());
}

// TimeEach: f(i) timed one call at a time and in batches of 16; prints both.
template <typename F>
void TimeEach(const char* name, size_t samples, F f) {
  std::vector<double> single(samples);
  int64_t sink = 0;
  for (size_t s = 0; s < samples; ++s) {
    const auto a = Clock::now();
    sink += f(s);
    const auto b = Clock::now();
    single[s] = Ns(a, b);
  }
  const size_t batches = samples / 16;
  std::vector<double> batched(batches);
  size_t s = 0;
  for (size_t b = 0; b < batches; ++b) {
    const auto t0 = Clock::now();
    for (int j = 0; j < 16; ++j) sink += f(s++);
    const auto t1 = Clock::now();
    batched[b] = Ns(t0, t1) / 16.0;
  }
  benchmark::DoNotOptimize(sink);
  const Pct one = Percentiles(single);
  const Pct sixteen = Percentiles(batched);
  std::printf("%-28s single call: p50 %6.0f  p99 %6.0f  p99.9 %7.0f  max %8.0f ns | "
              "batches of 16: p50 %5.0f  p99 %5.0f  p99.9 %6.0f ns  (%zu calls each way)\n",
              name, one.p50, one.p99, one.p999, one.max, sixteen.p50, sixteen.p99, sixteen.p999,
              samples);
}

void PrintPercentiles() {
  World& w = *g_world;
  const size_t samples = static_cast<size_t>(g_settings.samples);
  std::printf("\n== per-call latency (std::chrono::steady_clock; the single-call figures "
              "include one clock read)\n");
  TimeEach("clock read alone", samples, [](size_t) { return 0; });
  for (const Op& op : kOps) {
    const std::vector<uint32_t> order = OrderFor(op);
    const size_t n = order.size();
    TimeEach(absl::StrCat("Allowed ", op.name).c_str(), samples, [&](size_t s) {
      const uint32_t k = order[s % n];
      const ConnectedClient& c = w.clients[k];
      return static_cast<int>(w.enforcer->Allowed(Handle(k), c.client_id, op.op, c.*op.topic));
    });
  }
  const size_t few = std::min<size_t>(samples, 200000);
  TimeEach("Allowed offline client", few, [&](size_t s) {
    const ConnectedClient& c = w.clients[w.order[s & (w.order.size() - 1)]];
    static const char other = 0;
    return static_cast<int>(
        w.enforcer->Allowed(&other, c.client_id, acl::Operation::kReceive, c.own_cmd));
  });
  std::mt19937 rng(9);
  std::vector<std::pair<std::string, const plugin::Device*>> devices;
  for (int k = 0; k < 65536; ++k) {
    std::string id = CommId(static_cast<int64_t>(rng() % g_settings.devices));
    const plugin::Device* d = w.live.FindDevice(id);
    devices.emplace_back(std::move(id), d);
  }
  TimeEach("Policy::FindDevice", samples, [&](size_t s) {
    return w.live.FindDevice(devices[s & 65535].first) != nullptr ? 1 : 0;
  });
  TimeEach("Policy::ResolveRules", few, [&](size_t s) {
    const auto& [id, device] = devices[s & 65535];
    return static_cast<int>(w.live.ResolveRules(v1::PRINCIPAL_TYPE_DEVICE, id, device).size());
  });
  TimeEach("plugin::Decide", few, [&](size_t s) {
    const ConnectedClient& c = w.clients[w.order[s & (w.order.size() - 1)]];
    return static_cast<int>(plugin::Decide(w.live, c.cc, c.client_id, w.now).rules.size());
  });
  const void* handle = &w.handles[w.clients.size() + 2];
  TimeEach("Enforcer::OnConnect", std::min<size_t>(samples, 20000), [&](size_t s) {
    const ConnectedClient& c = w.clients[w.order[s & (w.order.size() - 1)]];
    return static_cast<int>(w.enforcer->OnConnect(handle, c.client_id, c.cert.get()).allowed());
  });
  w.enforcer->OnDisconnect(handle);
}

// ---- Deltas: the sync thread's publish, the broker thread's tick ----

void PrintDeltas() {
  World& w = *g_world;
  const int deltas = g_settings.deltas;
  std::printf("\n== per delta with %lld devices (sync thread: Apply + TakeTouched + snapshot "
              "copy + Publish; broker thread: OnTick with %zu clients connected)\n",
              static_cast<long long>(g_settings.devices), w.clients.size());
  w.enforcer->OnTick();  // whatever was pending: out of the way
  std::vector<double> copy_only, publish, tick;
  std::vector<double> by_kind[3], tick_by_kind[3], apply_only[3];
  std::unordered_set<int64_t> connected;
  for (const ConnectedClient& c : w.clients) connected.insert(c.device);
  const char* kinds[3] = {"device suspended", "certificate revoked", "device re-activated"};
  v1::SyncChange change;
  std::mt19937_64 rng(11);
  int kicks = 0;
  std::vector<double> release;
  std::shared_ptr<const plugin::Policy> held = w.box.Latest().first;
  for (int k = 0; k < deltas; ++k) {
    const int kind = k % 3;
    // Devices that are not connected (so the enforcer's clients stay as they are), except
    // every 10th revocation, of a connected client's certificate (kicked by the tick).
    int64_t i = 0;
    do {
      i = static_cast<int64_t>(rng() % static_cast<uint64_t>(g_settings.devices));
    } while (connected.count(i) != 0);
    const bool kick = kind == 1 && k % 10 == 1 && k / 10 < static_cast<int>(w.clients.size());
    if (kick) i = w.clients[static_cast<size_t>(k / 10)].device;
    if (kind == 0 || kind == 2) {
      FillDevice(&change, i,
                 kind == 0 ? v1::DEVICE_STATUS_SUSPENDED : v1::DEVICE_STATUS_ACTIVE);
    } else {
      const plugin::Certificate* known =
          w.live.FindCertificate(kDevicesCa, w.serials[static_cast<size_t>(i)]);
      if (known == nullptr) Die("certificate missing");
      const std::string fp = Hex(std::string(reinterpret_cast<const char*>(known->fingerprint.data()), 32));
      FillCertificate(&change, i, w.serials[static_cast<size_t>(i)], fp,
                      v1::CERTIFICATE_STATUS_REVOKED);
    }
    change.set_revision(++w.revision);

    const auto t0 = Clock::now();
    ApplyOrDie(w.live, change);
    const auto t1 = Clock::now();
    plugin::Touched touched = w.live.TakeTouched();
    auto snapshot = std::make_shared<const plugin::Policy>(w.live);
    w.box.Publish(std::move(snapshot), w.revision, std::move(touched));
    const auto t2 = Clock::now();
    apply_only[kind].push_back(Ns(t0, t1) / 1000.0);
    // The previous snapshot, held here so that its last reference is dropped apart (in the
    // plugin OnTick drops it: the shard the delta replaced is freed on the broker thread).
    std::shared_ptr<const plugin::Policy> previous = held;
    const std::vector<plugin::Kick> out = w.enforcer->OnTick();
    const auto t3 = Clock::now();
    held.reset();
    previous.reset();
    const auto t4 = Clock::now();
    release.push_back(Ns(t3, t4) / 1000.0);
    held = w.box.Latest().first;
    kicks += static_cast<int>(out.size());
    if (out.size() != (kick ? 1u : 0u)) Die(absl::StrCat("delta ", k, ": ", out.size(), " kicks"));
    publish.push_back(Ns(t0, t2) / 1000.0);
    by_kind[kind].push_back(Ns(t0, t2) / 1000.0);
    tick.push_back(Ns(t2, t3) / 1000.0);
    tick_by_kind[kind].push_back(Ns(t2, t3) / 1000.0);
    const auto c0 = Clock::now();
    auto extra = std::make_shared<const plugin::Policy>(w.live);
    const auto c1 = Clock::now();
    copy_only.push_back(Ns(c0, c1) / 1000.0);
  }
  auto line = [](const char* what, std::vector<double> v) {
    if (v.empty()) return;
    const double max = *std::max_element(v.begin(), v.end());
    std::printf("%-58s p50 %8.1f  p99 %8.1f  max %8.1f us  (%zu)\n", what, Percentile(v, 0.5),
                Percentile(v, 0.99), max, v.size());
  };
  line("sync thread: Apply + snapshot copy + Publish, all deltas", publish);
  for (int k = 0; k < 3; ++k) line(absl::StrCat("  ", kinds[k]).c_str(), by_kind[k]);
  for (int k = 0; k < 3; ++k) {
    line(absl::StrCat("  of which Policy::Apply alone, ", kinds[k]).c_str(), apply_only[k]);
  }
  line("snapshot copy alone (Policy copy constructor)", copy_only);
  line("broker thread: Enforcer::OnTick after the delta (without the release below)", tick);
  for (int k = 0; k < 3; ++k) line(absl::StrCat("  ", kinds[k]).c_str(), tick_by_kind[k]);
  line("broker thread: dropping the previous snapshot (frees the replaced shard)", release);
  std::printf("(%d connected clients kicked by revocations among the deltas, as expected)\n", kicks);

  // A change that concerns everyone (a profile or an issuer changed): every connected
  // client decided again on the broker thread.
  plugin::Touched all;
  all.all = true;
  w.box.Publish(std::make_shared<const plugin::Policy>(w.live), ++w.revision, std::move(all));
  const auto t0 = Clock::now();
  const std::vector<plugin::Kick> out = w.enforcer->OnTick();
  const auto t1 = Clock::now();
  std::printf("broker thread: a change concerning everyone, %zu connected clients decided "
              "again: %.2f ms (%.2f us per client), %zu kicked\n",
              w.clients.size() - static_cast<size_t>(kicks), Ns(t0, t1) / 1e6,
              Ns(t0, t1) / 1e3 / static_cast<double>(w.clients.size()), out.size());
  std::printf("MEMORY process at the end: %s\n", ProcStatus().c_str());
}

// ---- The persisted cache: written by the sync thread, read at the broker's start ----

void PrintCache() {
  World& w = *g_world;
  char dir_template[] = "/tmp/plugin-cache-bench-XXXXXX";
  const char* dir = mkdtemp(dir_template);
  if (dir == nullptr) Die("mkdtemp");
  const std::string path = absl::StrCat(dir, "/fleetca-policy.cache");
  const auto t0 = Clock::now();
  const absl::Status saved = plugin::SaveCache(path, w.live, w.revision);
  const auto t1 = Clock::now();
  if (!saved.ok()) Die(saved.ToString());
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  const double bytes = static_cast<double>(in.tellg());
  const auto t2 = Clock::now();
  absl::StatusOr<plugin::LoadedCache> loaded = plugin::LoadCache(path);
  const auto t3 = Clock::now();
  if (!loaded.ok()) Die(loaded.status().ToString());
  if (loaded->revision != w.revision ||
      static_cast<size_t>(loaded->objects) != w.live.ObjectCount()) {
    Die("the cache read back differs");
  }
  std::printf("\n== the policy cache (%zu objects)\nwritten (serialize, SHA-256, write, fsync, "
              "rename) in %.2f s: %.1f MiB; read back and replayed in %.2f s\n",
              w.live.ObjectCount(), Ns(t0, t1) / 1e9, bytes / (1 << 20), Ns(t2, t3) / 1e9);
  std::remove(path.c_str());
  rmdir(dir);
}

}  // namespace

int main(int argc, char** argv) {
  ParseSettings(&argc, argv);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  World world;
  g_world = &world;
  BuildWorld();
  for (const Op& op : kOps) {
    CheckAnswers(op);
    benchmark::RegisterBenchmark(absl::StrCat("BM_EnforcerAllowed/", op.name).c_str(), BM_Allowed,
                                 &op);
  }
  benchmark::RegisterBenchmark("BM_EnforcerAllowed/offline_client_receive", BM_AllowedOffline);
  benchmark::RegisterBenchmark("BM_PolicyFindDevice", BM_FindDevice);
  benchmark::RegisterBenchmark("BM_PolicyResolveRules", BM_ResolveRules);
  benchmark::RegisterBenchmark("BM_Decide", BM_Decide);
  benchmark::RegisterBenchmark("BM_EnforcerOnConnect", BM_OnConnect);
  benchmark::RegisterBenchmark("BM_PolicySnapshotCopy", BM_SnapshotCopy);
  std::printf("\n== Google Benchmark (means)\n");
  std::fflush(stdout);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  PrintPercentiles();
  PrintDeltas();
  PrintCache();
  return 0;
}
