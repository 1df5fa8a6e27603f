// make_seeds: writes the structured seeds of cache_fuzz and stream_fuzz, built with the
// real code (a small PKI from pki's builders, a Policy filled the way the stream fills it,
// plugin::SerializeCache for cache files):
//
//   build-fuzz/fuzz/fuzz_make_seeds fuzz/corpus
//
// corpus/cache_fuzz: whole cache files, and cache bodies (without the format line and the
// checksum, which cache_fuzz adds); corpus/stream_fuzz: Watch streams as length-delimited
// WatchResponse messages (a snapshot, then deltas, continued runs, heartbeats, deletions,
// a second snapshot, and streams that break the protocol).

#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/util/delimited_message_util.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "pki/certificate_builder.h"
#include "pki/key_store.h"
#include "pki/keys.h"
#include "pki/openssl_util.h"
#include "plugin/cache.h"
#include "plugin/policy.h"

namespace fleetca {
namespace {

void Write(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary);
  out << content;
  if (!out) {
    std::fprintf(stderr, "cannot write %s\n", path.c_str());
    std::exit(1);
  }
}

void Append(const v1::WatchResponse& m, std::string* out) {
  google::protobuf::io::StringOutputStream stream(out);
  google::protobuf::util::SerializeDelimitedToZeroCopyStream(m, &stream);
}

std::string RootPem() {
  pki::SoftwareKeyStore ks;
  auto key = pki::GenerateKey(pki::KeyAlgorithm::kEcdsaP256);
  if (!key.ok()) std::exit(1);
  const EVP_PKEY* pub = key->get();
  pki::CertificateTemplate t;
  t.profile = pki::CertificateProfile::kIntermediateCa;
  t.serial = std::string("\x01\x02\x03\x04", 4);
  t.subject.common_name = "fleetca devices CA";
  t.not_before = absl::FromUnixSeconds(1767225600);
  t.not_after = t.not_before + absl::Hours(24 * 3650);
  t.public_key = pub;
  ks.Add("devices", std::move(*key));
  auto cert = pki::BuildCertificate(t, nullptr, ks, "devices");
  if (!cert.ok()) std::exit(1);
  auto pem = pki::CertificateToPem(cert->get());
  if (!pem.ok()) std::exit(1);
  return *pem;
}

std::vector<v1::SyncChange> Objects(const std::string& pem) {
  std::vector<v1::SyncChange> out;
  v1::SyncChange c;
  auto* i = c.mutable_issuer();
  i->set_issuer_id("devices");
  i->set_purpose(v1::ISSUER_PURPOSE_DEVICES);
  i->set_enabled(true);
  i->set_certificate_pem(pem);
  i->mutable_not_after()->set_seconds(2082758400);
  out.push_back(c);
  for (const char* id : {"SN-1", "SN-2", "356938035643809"}) {
    c.Clear();
    auto* d = c.mutable_device();
    d->set_comm_id(id);
    d->set_status(v1::DEVICE_STATUS_ACTIVE);
    if (std::string(id) == "SN-2") {
      d->add_groups("lyon");
      (*d->mutable_attributes())["site"] = "lyon-1";
      d->set_status(v1::DEVICE_STATUS_SUSPENDED);
    }
    out.push_back(c);
  }
  c.Clear();
  c.mutable_identity()->set_name("dashboard");
  c.mutable_identity()->set_status(v1::IDENTITY_STATUS_ACTIVE);
  c.mutable_identity()->set_role(v1::IDENTITY_ROLE_MQTT_CLIENT);
  out.push_back(c);
  c.Clear();
  auto* cert = c.mutable_certificate();
  cert->set_issuer_id("devices");
  cert->set_serial("0a1b2c3d4e5f");
  cert->set_sha256_fingerprint(std::string(64, 'a'));
  cert->set_status(v1::CERTIFICATE_STATUS_ACTIVE);
  cert->mutable_principal()->set_type(v1::PRINCIPAL_TYPE_DEVICE);
  cert->mutable_principal()->set_id("SN-1");
  cert->mutable_not_after()->set_seconds(2082758400);
  out.push_back(c);
  c.Clear();
  cert = c.mutable_certificate();
  cert->set_issuer_id("devices");
  cert->set_serial("0b");
  cert->set_status(v1::CERTIFICATE_STATUS_REVOKED);
  cert->set_revocation_reason(v1::REVOCATION_REASON_KEY_COMPROMISE);
  out.push_back(c);
  const std::vector<std::pair<std::string, std::vector<std::pair<std::string, v1::AclAccess>>>>
      profiles = {
          {"device", {{"devices/%c/#", v1::ACL_ACCESS_READWRITE}, {"$SYS/#", v1::ACL_ACCESS_DENY}}},
          {"site", {{"sites/%{site}/+/status", v1::ACL_ACCESS_READ},
                    {"metrics/100%%/%u", v1::ACL_ACCESS_WRITE}}},
          {"watcher", {{"#", v1::ACL_ACCESS_SUBSCRIBE}, {"bad/#/x", v1::ACL_ACCESS_READ}}}};
  for (const auto& [name, rules] : profiles) {
    c.Clear();
    auto* p = c.mutable_acl_profile();
    p->set_name(name);
    for (const auto& [pattern, access] : rules) {
      auto* r = p->add_rules();
      r->set_topic_pattern(pattern);
      r->set_access(access);
    }
    out.push_back(c);
  }
  const std::vector<std::tuple<v1::AclSubjectType, std::string, std::string>> assignments = {
      {v1::ACL_SUBJECT_TYPE_ALL_DEVICES, "", "device"},
      {v1::ACL_SUBJECT_TYPE_GROUP, "lyon", "site"},
      {v1::ACL_SUBJECT_TYPE_DEVICE, "SN-2", "site"},
      {v1::ACL_SUBJECT_TYPE_IDENTITY, "dashboard", "watcher"}};
  for (const auto& [type, subject, profile] : assignments) {
    c.Clear();
    auto* a = c.mutable_acl_assignment();
    a->set_subject_type(type);
    a->set_subject_id(subject);
    a->set_profile_name(profile);
    out.push_back(c);
  }
  return out;
}

std::string Snapshot(const std::vector<v1::SyncChange>& objects, int64_t revision,
                     size_t per_message) {
  std::string out;
  v1::WatchResponse m;
  m.mutable_snapshot_begin()->set_revision(revision);
  m.mutable_snapshot_begin()->set_reason(v1::SNAPSHOT_REASON_REQUESTED);
  Append(m, &out);
  for (size_t i = 0; i < objects.size(); i += per_message) {
    m.Clear();
    m.mutable_changes()->set_revision(revision);
    for (size_t j = i; j < objects.size() && j < i + per_message; ++j) {
      *m.mutable_changes()->add_changes() = objects[j];
    }
    Append(m, &out);
  }
  m.Clear();
  m.mutable_snapshot_end()->set_revision(revision);
  m.mutable_snapshot_end()->set_object_count(static_cast<int64_t>(objects.size()));
  Append(m, &out);
  return out;
}

v1::WatchResponse Delta(int64_t revision, std::vector<v1::SyncChange> changes, bool continued) {
  v1::WatchResponse m;
  m.mutable_changes()->set_revision(revision);
  m.mutable_changes()->set_continued(continued);
  for (v1::SyncChange& c : changes) {
    c.set_revision(revision);
    *m.mutable_changes()->add_changes() = c;
  }
  return m;
}

}  // namespace
}  // namespace fleetca

int main(int argc, char** argv) {
  using namespace fleetca;
  if (argc != 2) {
    std::fprintf(stderr, "usage: fuzz_make_seeds CORPUS_DIR (fuzz/corpus)\n");
    return 2;
  }
  const std::string dir = argv[1];
  const std::vector<v1::SyncChange> objects = Objects(RootPem());

  // Cache files, through the real SerializeCache.
  plugin::Policy policy;
  for (const v1::SyncChange& c : objects) policy.Apply(c);
  const std::string cache = plugin::SerializeCache(policy, 42);
  Write(dir + "/cache_fuzz/full.cache", cache);
  const size_t format_line = cache.find('\n') + 1;
  Write(dir + "/cache_fuzz/body.bin", cache.substr(format_line, cache.size() - format_line - 32));
  plugin::Policy empty;
  const std::string empty_cache = plugin::SerializeCache(empty, 1);
  Write(dir + "/cache_fuzz/empty.cache", empty_cache);
  Write(dir + "/cache_fuzz/empty-body.bin",
        empty_cache.substr(format_line, empty_cache.size() - format_line - 32));

  // Watch streams.
  Write(dir + "/stream_fuzz/snapshot.bin", Snapshot(objects, 42, 100));
  Write(dir + "/stream_fuzz/snapshot-split.bin", Snapshot(objects, 42, 3));
  std::string stream = Snapshot(objects, 42, 5);
  v1::SyncChange suspend = objects[1];
  suspend.mutable_device()->set_status(v1::DEVICE_STATUS_SUSPENDED);
  Append(Delta(43, {suspend}, false), &stream);
  v1::SyncChange gone;
  gone.set_deleted(true);
  gone.mutable_device()->set_comm_id("SN-2");
  v1::SyncChange revoke = objects[5];
  revoke.mutable_certificate()->set_status(v1::CERTIFICATE_STATUS_REVOKED);
  revoke.mutable_certificate()->set_revocation_reason(v1::REVOCATION_REASON_SUPERSEDED);
  Append(Delta(44, {gone}, true), &stream);
  Append(Delta(44, {revoke}, false), &stream);
  v1::WatchResponse hb;
  hb.mutable_heartbeat()->set_revision(44);
  hb.mutable_heartbeat()->set_head_revision(45);
  hb.mutable_heartbeat()->mutable_server_time()->set_seconds(1767225600);
  Append(hb, &stream);
  v1::SyncChange unassign = objects.back();
  unassign.set_deleted(true);
  v1::SyncChange profile_gone;
  profile_gone.set_deleted(true);
  profile_gone.mutable_acl_profile()->set_name("watcher");
  Append(Delta(45, {unassign, profile_gone}, false), &stream);
  Write(dir + "/stream_fuzz/snapshot-deltas.bin", stream);
  // A second snapshot replaces the first.
  std::string two = stream + Snapshot({objects[0], objects[2]}, 50, 10);
  Write(dir + "/stream_fuzz/two-snapshots.bin", two);
  // Protocol errors: deltas before a snapshot, a wrong object count, an unfinished run.
  std::string bad;
  Append(Delta(3, {objects[1]}, false), &bad);
  std::string wrong = Snapshot(objects, 7, 4);
  v1::WatchResponse end;
  end.mutable_snapshot_end()->set_revision(8);
  end.mutable_snapshot_end()->set_object_count(1);
  Append(end, &bad);
  bad += Snapshot(objects, 9, 50);
  Append(Delta(10, {objects[2]}, true), &bad);
  Write(dir + "/stream_fuzz/protocol-errors.bin", bad);
  std::printf("seeds written under %s\n", dir.c_str());
  return 0;
}
