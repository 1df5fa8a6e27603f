#include "plugin/policy.h"

#include <algorithm>
#include <cstring>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "pki/certificate_builder.h"
#include "google/protobuf/timestamp.pb.h"

namespace fleetca::plugin {
namespace {

int64_t Seconds(const google::protobuf::Timestamp& t) { return t.seconds(); }

google::protobuf::Timestamp Timestamp(int64_t seconds) {
  google::protobuf::Timestamp t;
  t.set_seconds(seconds);
  return t;
}

// FromHex64: 64 hex digits into 32 bytes; false for anything else.
bool FromHex64(absl::string_view hex, std::array<uint8_t, 32>* out) {
  if (hex.size() != 64) return false;
  absl::StatusOr<std::string> bytes = pki::SerialFromHex(hex);
  if (!bytes.ok() || bytes->size() != out->size()) return false;
  std::memcpy(out->data(), bytes->data(), out->size());
  return true;
}

}  // namespace

void Touched::Merge(Touched&& other) {
  all = all || other.all;
  if (all) {
    devices.clear();
    identities.clear();
    certificates.clear();
    return;
  }
  devices.merge(other.devices);
  identities.merge(other.identities);
  certificates.merge(other.certificates);
}

bool Touched::Concerns(v1::PrincipalType type, absl::string_view id,
                       absl::string_view cert_key) const {
  if (all || certificates.contains(cert_key)) return true;
  return type == v1::PRINCIPAL_TYPE_DEVICE ? devices.contains(id) : identities.contains(id);
}

std::string CertificateKey(absl::string_view issuer_id, absl::string_view serial_hex) {
  std::string key(issuer_id);
  key.push_back('\0');
  key.append(serial_hex.data(), serial_hex.size());
  return key;
}

std::string SubjectKey(v1::AclSubjectType type, absl::string_view subject_id) {
  std::string key = absl::StrCat(static_cast<int>(type));
  key.push_back('\0');
  key.append(subject_id.data(), subject_id.size());
  return key;
}

Policy::Policy(const Policy& other)
    : sync_client::SyncState(),
      issuers_(other.issuers_),
      devices_(other.devices_),
      identities_(other.identities_),
      certificates_(other.certificates_),
      profiles_(other.profiles_),
      assignments_(other.assignments_) {}

const Issuer* Policy::FindIssuer(absl::string_view id) const {
  for (const auto& issuer : *issuers_) {
    if (issuer->id == id) return issuer.get();
  }
  return nullptr;
}

const Certificate* Policy::FindCertificate(absl::string_view issuer_id,
                                           absl::string_view serial_hex) const {
  return certificates_.Find(CertificateKey(issuer_id, serial_hex));
}

size_t Policy::ObjectCount() const {
  size_t assignments = 0;
  assignments_.ForEach([&](const std::string&, const std::vector<std::string>& profiles) {
    assignments += profiles.size();
  });
  return issuers_->size() + devices_.size() + identities_.size() + certificates_.size() +
         profiles_->size() + assignments;
}

void Policy::Touch(absl::flat_hash_set<std::string>& keys, std::string key) {
  if (!touched_.all) keys.insert(std::move(key));
}

Touched Policy::TakeTouched() {
  Touched out = std::move(touched_);
  touched_ = Touched();
  return out;
}

bool Policy::Apply(const v1::SyncChange& change) {
  const bool deleted = change.deleted();
  switch (change.object_case()) {
    case v1::SyncChange::kIssuer:
      ApplyIssuer(change.issuer(), deleted);
      touched_.all = true;
      return true;
    case v1::SyncChange::kDevice: {
      const v1::SyncDevice& d = change.device();
      Touch(touched_.devices, d.comm_id());
      if (deleted) {
        devices_.Erase(d.comm_id());
        return true;
      }
      Device device;
      device.status = d.status();
      if (d.groups_size() > 0 || d.attributes_size() > 0) {
        auto extra = std::make_shared<DeviceExtra>();
        extra->groups.assign(d.groups().begin(), d.groups().end());
        extra->attributes.insert(d.attributes().begin(), d.attributes().end());
        device.extra = std::move(extra);
      }
      devices_.Put(d.comm_id(), std::move(device));
      return true;
    }
    case v1::SyncChange::kIdentity: {
      const v1::SyncIdentity& i = change.identity();
      Touch(touched_.identities, i.name());
      if (deleted) {
        identities_.Erase(i.name());
      } else {
        identities_.Put(i.name(), Identity{i.status(), i.role()});
      }
      return true;
    }
    case v1::SyncChange::kCertificate: {
      const v1::SyncCertificate& c = change.certificate();
      std::string key = CertificateKey(c.issuer_id(), c.serial());
      if (deleted) {
        certificates_.Erase(key);
      } else {
        Certificate cert;
        cert.has_fingerprint = FromHex64(c.sha256_fingerprint(), &cert.fingerprint);
        cert.status = c.status();
        cert.revocation_reason = c.revocation_reason();
        cert.principal_type = c.principal().type();
        cert.principal_id = c.principal().id();
        cert.not_after = c.has_not_after() ? Seconds(c.not_after()) : 0;
        certificates_.Put(key, std::move(cert));
      }
      Touch(touched_.certificates, std::move(key));
      return true;
    }
    case v1::SyncChange::kAclProfile: {
      auto profiles = std::make_shared<ProfileMap>(*profiles_);
      if (deleted) {
        profiles->erase(change.acl_profile().name());
      } else {
        auto profile = std::make_shared<Profile>();
        profile->proto = change.acl_profile();
        for (const v1::AclRule& rule : profile->proto.rules()) {
          auto parsed = acl::TopicPattern::Parse(rule.topic_pattern());
          profile->patterns.push_back(parsed.ok() ? std::optional(*std::move(parsed))
                                                  : std::nullopt);
        }
        (*profiles)[profile->proto.name()] = std::move(profile);
      }
      profiles_ = std::move(profiles);
      touched_.all = true;
      return true;
    }
    case v1::SyncChange::kAclAssignment:
      ApplyAssignment(change.acl_assignment(), deleted);
      return true;
    case v1::SyncChange::kCrl:  // revoked serials arrive as certificates
    case v1::SyncChange::OBJECT_NOT_SET:
      return false;
  }
  return false;
}

void Policy::ApplyIssuer(const v1::SyncIssuer& s, bool deleted) {
  auto issuers = std::make_shared<std::vector<std::shared_ptr<const Issuer>>>();
  for (const auto& issuer : *issuers_) {
    if (issuer->id != s.issuer_id()) issuers->push_back(issuer);
  }
  if (!deleted) {
    auto issuer = std::make_shared<Issuer>();
    issuer->id = s.issuer_id();
    issuer->purpose = s.purpose();
    issuer->external = s.external();
    issuer->enabled = s.enabled();
    issuer->accept_unregistered = s.accept_unregistered_certificates();
    issuer->certificate_pem = s.certificate_pem();
    issuer->not_after = s.has_not_after() ? Seconds(s.not_after()) : 0;
    if (auto cert = pki::CertificateFromPem(s.certificate_pem()); cert.ok()) {
      issuer->certificate = std::shared_ptr<X509>(cert->release(), X509_free);
    } else {
      pki::ClearOpenSslErrors();
    }
    issuers->push_back(std::move(issuer));
  }
  issuers_ = std::move(issuers);
}

void Policy::ApplyAssignment(const v1::AclAssignment& a, bool deleted) {
  const std::string key = SubjectKey(a.subject_type(), a.subject_id());
  std::vector<std::string> profiles;
  if (const std::vector<std::string>* current = assignments_.Find(key)) profiles = *current;
  auto it = std::lower_bound(profiles.begin(), profiles.end(), a.profile_name());
  const bool present = it != profiles.end() && *it == a.profile_name();
  if (deleted && present) profiles.erase(it);
  if (!deleted && !present) profiles.insert(it, a.profile_name());
  if (profiles.empty()) {
    assignments_.Erase(key);
  } else {
    assignments_.Put(key, std::move(profiles));
  }
  switch (a.subject_type()) {
    case v1::ACL_SUBJECT_TYPE_DEVICE:
      Touch(touched_.devices, a.subject_id());
      break;
    case v1::ACL_SUBJECT_TYPE_IDENTITY:
      Touch(touched_.identities, a.subject_id());
      break;
    default:
      touched_.all = true;
      break;
  }
}

std::vector<acl::ResolvedRule> Policy::ResolveRules(v1::PrincipalType type, absl::string_view id,
                                                    const Device* device) const {
  // 1. The subjects that apply, and the profiles assigned to them, each once.
  std::vector<const std::string*> names;
  auto collect = [&](v1::AclSubjectType subject, absl::string_view subject_id) {
    if (const auto* assigned = assignments_.Find(SubjectKey(subject, subject_id))) {
      for (const std::string& name : *assigned) names.push_back(&name);
    }
  };
  const DeviceExtra* extra = device != nullptr ? device->extra.get() : nullptr;
  if (type == v1::PRINCIPAL_TYPE_DEVICE) {
    collect(v1::ACL_SUBJECT_TYPE_ALL_DEVICES, "");
    if (extra != nullptr) {
      for (const std::string& group : extra->groups) collect(v1::ACL_SUBJECT_TYPE_GROUP, group);
    }
    collect(v1::ACL_SUBJECT_TYPE_DEVICE, id);
  } else {
    collect(v1::ACL_SUBJECT_TYPE_IDENTITY, id);
  }
  std::sort(names.begin(), names.end(),
            [](const std::string* a, const std::string* b) { return *a < *b; });
  names.erase(std::unique(names.begin(), names.end(),
                          [](const std::string* a, const std::string* b) { return *a == *b; }),
              names.end());

  // 2. Their rules, substituted; a rule whose values are missing or unsafe is left out.
  std::optional<acl::MapAttributeSource> attributes;
  if (extra != nullptr) attributes.emplace(extra->attributes);
  acl::Substitutions values;
  values.client_id = id;
  values.username = id;
  values.attributes = attributes ? &*attributes : nullptr;
  std::vector<acl::ResolvedRule> rules;
  for (const std::string* name : names) {
    auto it = profiles_->find(*name);
    if (it == profiles_->end()) continue;  // assigned before its profile arrived
    const Profile& profile = *it->second;
    for (int i = 0; i < profile.proto.rules_size(); ++i) {
      const std::optional<acl::TopicPattern>& pattern = profile.patterns[static_cast<size_t>(i)];
      const int access = profile.proto.rules(i).access();
      if (!pattern || access < static_cast<int>(acl::Access::kRead) ||
          access > static_cast<int>(acl::Access::kDeny)) {
        continue;
      }
      absl::StatusOr<std::string> filter = pattern->Substitute(values);
      if (!filter.ok()) continue;
      rules.push_back({*std::move(filter), static_cast<acl::Access>(access)});
    }
  }
  // 3. DENY first, then by filter (acl::RuleOrder; the server orders them so too).
  std::sort(rules.begin(), rules.end(), acl::RuleOrder);
  rules.erase(std::unique(rules.begin(), rules.end(),
                          [](const acl::ResolvedRule& x, const acl::ResolvedRule& y) {
                            return x.access == y.access && x.filter == y.filter;
                          }),
              rules.end());
  return rules;
}

void Policy::ForEachObject(const std::function<void(const v1::SyncChange&)>& f) const {
  v1::SyncChange change;
  for (const auto& issuer : *issuers_) {
    change.Clear();
    v1::SyncIssuer* s = change.mutable_issuer();
    s->set_issuer_id(issuer->id);
    s->set_purpose(issuer->purpose);
    s->set_external(issuer->external);
    s->set_enabled(issuer->enabled);
    s->set_accept_unregistered_certificates(issuer->accept_unregistered);
    s->set_certificate_pem(issuer->certificate_pem);
    if (issuer->not_after != 0) *s->mutable_not_after() = Timestamp(issuer->not_after);
    f(change);
  }
  devices_.ForEach([&](const std::string& comm_id, const Device& device) {
    change.Clear();
    v1::SyncDevice* d = change.mutable_device();
    d->set_comm_id(comm_id);
    d->set_status(device.status);
    if (device.extra != nullptr) {
      for (const std::string& group : device.extra->groups) d->add_groups(group);
      d->mutable_attributes()->insert(device.extra->attributes.begin(),
                                      device.extra->attributes.end());
    }
    f(change);
  });
  identities_.ForEach([&](const std::string& name, const Identity& identity) {
    change.Clear();
    v1::SyncIdentity* i = change.mutable_identity();
    i->set_name(name);
    i->set_status(identity.status);
    i->set_role(identity.role);
    f(change);
  });
  certificates_.ForEach([&](const std::string& key, const Certificate& cert) {
    change.Clear();
    v1::SyncCertificate* c = change.mutable_certificate();
    const size_t nul = key.find('\0');
    c->set_issuer_id(key.substr(0, nul));
    c->set_serial(key.substr(nul + 1));
    if (cert.has_fingerprint) {
      c->set_sha256_fingerprint(pki::SerialToHex(absl::string_view(
          reinterpret_cast<const char*>(cert.fingerprint.data()), cert.fingerprint.size())));
    }
    c->set_status(cert.status);
    c->set_revocation_reason(cert.revocation_reason);
    if (cert.principal_type != v1::PRINCIPAL_TYPE_UNSPECIFIED) {
      c->mutable_principal()->set_type(cert.principal_type);
      c->mutable_principal()->set_id(cert.principal_id);
    }
    if (cert.not_after != 0) *c->mutable_not_after() = Timestamp(cert.not_after);
    f(change);
  });
  for (const auto& [name, profile] : *profiles_) {
    change.Clear();
    *change.mutable_acl_profile() = profile->proto;
    f(change);
  }
  assignments_.ForEach([&](const std::string& key, const std::vector<std::string>& profiles) {
    const size_t nul = key.find('\0');
    int type = 0;
    for (size_t i = 0; i < nul; ++i) type = type * 10 + (key[i] - '0');
    for (const std::string& name : profiles) {
      change.Clear();
      v1::AclAssignment* a = change.mutable_acl_assignment();
      a->set_subject_type(static_cast<v1::AclSubjectType>(type));
      a->set_subject_id(key.substr(nul + 1));
      a->set_profile_name(name);
      f(change);
    }
  });
}

}  // namespace fleetca::plugin
