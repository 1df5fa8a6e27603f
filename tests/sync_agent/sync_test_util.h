#pragma once

// Helpers shared by the fleetca-sync tests: a small real PKI (root and per-purpose
// intermediates made with fleetca's builders over OpenSSL, CRLs signed by them), the
// WatchResponse messages fleetca's server would send, and files and directories.

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "fleetca/v1/broker_sync.pb.h"
#include "pki/certificate_builder.h"
#include "pki/crl_builder.h"
#include "pki/key_store.h"
#include "pki/keys.h"
#include "pki/openssl_util.h"
#include "common/file_util.h"

namespace fleetca::sync_agent::testing {

// ---- PKI -------------------------------------------------------------------------------

struct TestCa {
  std::string id;
  pki::EvpPkeyPtr key;
  pki::X509Ptr cert;
  std::string pem;
};

struct TestLeaf {
  std::string serial;  // bytes
  std::string cert_pem;
  std::string key_pem;
};

inline std::string KeyPem(const EVP_PKEY* key) {
  auto der = pki::PrivateKeyToDer(key);
  EXPECT_TRUE(der.ok()) << der.status();
  return der.ok() ? pki::DerToPem(*der, "PRIVATE KEY") : std::string();
}

// TestPki holds CAs by id; keys are P-256 (fast), signing goes through a SoftwareKeyStore.
class TestPki {
 public:
  // AddCa makes a CA: self-signed when parent is empty, else signed by parent.
  TestCa& AddCa(const std::string& id, const std::string& common_name,
                const std::string& parent = "") {
    TestCa ca;
    ca.id = id;
    auto key = pki::GenerateKey(pki::KeyAlgorithm::kEcdsaP256);
    EXPECT_TRUE(key.ok()) << key.status();
    ca.key = std::move(*key);
    store_.Add(id, pki::EvpPkeyPtr(Ref(ca.key.get())));
    pki::CertificateTemplate t;
    t.profile = parent.empty() ? pki::CertificateProfile::kRootCa
                               : pki::CertificateProfile::kIntermediateCa;
    t.serial = pki::RandomSerial();
    t.subject.common_name = common_name;
    t.not_before = absl::Now() - absl::Hours(1);
    t.not_after = absl::Now() + absl::Hours(24 * 30);
    t.public_key = ca.key.get();
    auto cert = parent.empty()
                    ? pki::BuildCertificate(t, nullptr, store_, id)
                    : pki::BuildCertificate(t, cas_.at(parent).cert.get(), store_, parent);
    EXPECT_TRUE(cert.ok()) << cert.status();
    ca.cert = std::move(*cert);
    auto pem = pki::CertificateToPem(ca.cert.get());
    EXPECT_TRUE(pem.ok());
    ca.pem = *pem;
    return cas_[id] = std::move(ca);
  }

  TestCa& ca(const std::string& id) { return cas_.at(id); }

  // Issue makes an end-entity certificate: a TLS client (CN = comm-ID or identity name), or
  // a TLS server for 127.0.0.1 and localhost.
  TestLeaf Issue(const std::string& ca_id, const std::string& common_name, bool server = false) {
    auto key = pki::GenerateKey(pki::KeyAlgorithm::kEcdsaP256);
    EXPECT_TRUE(key.ok()) << key.status();
    pki::CertificateTemplate t;
    t.profile = server ? pki::CertificateProfile::kServer : pki::CertificateProfile::kClient;
    t.serial = pki::RandomSerial();
    t.subject.common_name = common_name;
    t.not_before = absl::Now() - absl::Hours(1);
    t.not_after = absl::Now() + absl::Hours(24);
    t.public_key = key->get();
    if (server) {
      t.dns_names = {"localhost"};
      t.ip_addresses = {"127.0.0.1"};
    }
    auto cert = pki::BuildCertificate(t, cas_.at(ca_id).cert.get(), store_, ca_id);
    EXPECT_TRUE(cert.ok()) << cert.status();
    TestLeaf leaf;
    leaf.serial = t.serial;
    leaf.cert_pem = *pki::CertificateToPem(cert->get());
    leaf.key_pem = KeyPem(key->get());
    return leaf;
  }

  // CrlDer is a CRL of ca_id listing `revoked` serials, valid from this_update to
  // next_update.
  std::string CrlDer(const std::string& ca_id, const std::vector<std::string>& revoked,
                     uint64_t number = 1, absl::Time this_update = absl::Now() - absl::Minutes(5),
                     absl::Time next_update = absl::Now() + absl::Hours(24)) {
    pki::CrlTemplate t;
    t.crl_number = number;
    t.this_update = absl::FromUnixSeconds(absl::ToUnixSeconds(this_update));
    t.next_update = absl::FromUnixSeconds(absl::ToUnixSeconds(next_update));
    for (const std::string& serial : revoked) {
      t.entries.push_back({serial, t.this_update - absl::Minutes(1), 1, std::nullopt});
    }
    auto der = pki::BuildCrlDer(t, cas_.at(ca_id).cert.get(), store_, ca_id);
    EXPECT_TRUE(der.ok()) << der.status();
    return der.ok() ? *der : std::string();
  }

  // CrlDerSignedBy is a CRL naming ca_id as its issuer but signed with signer's key.
  std::string CrlDerSignedBy(const std::string& ca_id, const std::string& signer) {
    pki::CrlTemplate t;
    t.crl_number = 1;
    t.this_update = absl::FromUnixSeconds(absl::ToUnixSeconds(absl::Now() - absl::Minutes(5)));
    t.next_update = t.this_update + absl::Hours(24);
    auto der = pki::BuildCrlDer(t, cas_.at(ca_id).cert.get(), store_, signer);
    EXPECT_TRUE(der.ok()) << der.status();
    return der.ok() ? *der : std::string();
  }

 private:
  static EVP_PKEY* Ref(EVP_PKEY* key) {
    EVP_PKEY_up_ref(key);
    return key;
  }

  pki::SoftwareKeyStore store_;
  std::map<std::string, TestCa> cas_;
};

// ---- Sync messages ---------------------------------------------------------------------

inline v1::SyncIssuer Issuer(const std::string& id, v1::IssuerPurpose purpose,
                             const std::string& pem, bool external = false, bool enabled = true) {
  v1::SyncIssuer issuer;
  issuer.set_issuer_id(id);
  issuer.set_purpose(purpose);
  issuer.set_external(external);
  issuer.set_enabled(enabled);
  issuer.set_certificate_pem(pem);
  return issuer;
}

inline v1::SyncCrl Crl(const std::string& issuer_id, const std::string& der, int64_t number = 1) {
  v1::SyncCrl crl;
  crl.set_issuer_id(issuer_id);
  crl.set_crl_number(number);
  crl.set_crl_der(der);
  return crl;
}

inline v1::SyncDevice Device(const std::string& comm_id,
                             v1::DeviceStatus status = v1::DEVICE_STATUS_ACTIVE,
                             const std::vector<std::string>& groups = {},
                             const std::map<std::string, std::string>& attributes = {}) {
  v1::SyncDevice device;
  device.set_comm_id(comm_id);
  device.set_status(status);
  for (const std::string& g : groups) device.add_groups(g);
  for (const auto& [k, v] : attributes) (*device.mutable_attributes())[k] = v;
  return device;
}

inline v1::SyncIdentity Identity(const std::string& name,
                                 v1::IdentityStatus status = v1::IDENTITY_STATUS_ACTIVE,
                                 v1::IdentityRole role = v1::IDENTITY_ROLE_MQTT_CLIENT) {
  v1::SyncIdentity identity;
  identity.set_name(name);
  identity.set_status(status);
  identity.set_role(role);
  return identity;
}

inline v1::SyncAclProfile Profile(const std::string& name,
                                  const std::vector<std::pair<std::string, v1::AclAccess>>& rules) {
  v1::SyncAclProfile profile;
  profile.set_name(name);
  for (const auto& [pattern, access] : rules) {
    v1::AclRule* rule = profile.add_rules();
    rule->set_topic_pattern(pattern);
    rule->set_access(access);
  }
  return profile;
}

inline v1::AclAssignment Assignment(v1::AclSubjectType type, const std::string& subject_id,
                                    const std::string& profile) {
  v1::AclAssignment a;
  a.set_subject_type(type);
  a.set_subject_id(subject_id);
  a.set_profile_name(profile);
  return a;
}

// Change wraps an object (SyncIssuer, SyncCrl, SyncDevice, SyncIdentity, SyncCertificate,
// SyncAclProfile or AclAssignment) in the SyncChange field of its type.
inline v1::SyncChange Change(const google::protobuf::Message& o, bool deleted = false) {
  v1::SyncChange c;
  c.set_deleted(deleted);
  const google::protobuf::OneofDescriptor* object = c.GetDescriptor()->FindOneofByName("object");
  for (int i = 0; i < object->field_count(); ++i) {
    const google::protobuf::FieldDescriptor* field = object->field(i);
    if (field->message_type() == o.GetDescriptor()) {
      c.GetReflection()->MutableMessage(&c, field)->CopyFrom(o);
      return c;
    }
  }
  ADD_FAILURE() << "SyncChange has no field of type " << o.GetTypeName();
  return c;
}

inline v1::WatchResponse SnapshotBegin(int64_t revision) {
  v1::WatchResponse r;
  r.mutable_snapshot_begin()->set_revision(revision);
  r.mutable_snapshot_begin()->set_reason(v1::SNAPSHOT_REASON_REQUESTED);
  return r;
}
inline v1::WatchResponse Changes(int64_t revision, const std::vector<v1::SyncChange>& changes,
                                 bool continued = false) {
  v1::WatchResponse r;
  r.mutable_changes()->set_revision(revision);
  r.mutable_changes()->set_continued(continued);
  for (const v1::SyncChange& c : changes) *r.mutable_changes()->add_changes() = c;
  return r;
}
inline v1::WatchResponse SnapshotEnd(int64_t revision, int64_t count) {
  v1::WatchResponse r;
  r.mutable_snapshot_end()->set_revision(revision);
  r.mutable_snapshot_end()->set_object_count(count);
  return r;
}
inline v1::WatchResponse Heartbeat(int64_t revision) {
  v1::WatchResponse r;
  r.mutable_heartbeat()->set_revision(revision);
  r.mutable_heartbeat()->set_head_revision(revision);
  return r;
}

// Snapshot is the messages of a whole snapshot of `changes` at `revision`, split into
// messages of at most `per_message` changes.
inline std::vector<v1::WatchResponse> Snapshot(int64_t revision,
                                               const std::vector<v1::SyncChange>& changes,
                                               size_t per_message = 3) {
  std::vector<v1::WatchResponse> out = {SnapshotBegin(revision)};
  for (size_t i = 0; i < changes.size(); i += per_message) {
    std::vector<v1::SyncChange> part(
        changes.begin() + static_cast<long>(i),
        changes.begin() + static_cast<long>(std::min(i + per_message, changes.size())));
    out.push_back(Changes(revision, part));
  }
  out.push_back(SnapshotEnd(revision, static_cast<int64_t>(changes.size())));
  return out;
}

// ---- Files -----------------------------------------------------------------------------

inline std::string MakeTempDir(const std::string& prefix) {
  std::string tmpl = ::testing::TempDir() + prefix + "_XXXXXX";
  const char* dir = mkdtemp(tmpl.data());
  EXPECT_NE(dir, nullptr);
  chmod(tmpl.c_str(), 0755);
  return tmpl;
}

inline std::string ReadOrEmpty(const std::string& path) {
  auto text = ReadFileToString(path);
  return text.ok() ? *text : std::string();
}

inline void WriteFileOrDie(const std::string& path, const std::string& content,
                           mode_t mode = 0644) {
  auto written = ReplaceFileIfChanged(path, content, mode);
  ASSERT_TRUE(written.ok()) << written.status();
}

}  // namespace fleetca::sync_agent::testing
