#include "server/policy/index.h"

#include <algorithm>
#include <functional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace fleetca::policy {
namespace {

using storage::AclAssignmentRow;
using storage::AclSubject;

constexpr int kLoadPage = 1000;  // rows per read while loading
constexpr int kRefreshBatch = 1000;  // changes applied per lock
constexpr int kCertificatePage = 5000;

// Deny: the answer, refused for this reason.
ConnectAnswer Deny(ConnectAnswer& answer, ConnectVerdict verdict, std::string message) {
  answer.verdict = verdict;
  answer.message = std::move(message);
  return answer;
}

}  // namespace

std::optional<PolicyIndex::SerialKey> PolicyIndex::ToSerialKey(absl::string_view serial) {
  if (serial.empty() || serial.size() > 20) return std::nullopt;
  SerialKey k;
  std::copy(serial.begin(), serial.end(), k.bytes.begin());
  k.size = static_cast<uint8_t>(serial.size());
  return k;
}

std::optional<PolicyIndex::FingerprintKey> PolicyIndex::ToFingerprintKey(
    absl::string_view fingerprint) {
  if (fingerprint.size() != 32) return std::nullopt;
  FingerprintKey k;
  std::copy(fingerprint.begin(), fingerprint.end(), k.begin());
  return k;
}

void PolicyIndex::CertificateMaps::Put(const storage::SyncCertificate& c) {
  if (c.from_imported_crl_only) {
    imported_revoked.insert(absl::StrCat(c.issuer_id, "/", c.serial));
    return;
  }
  std::optional<SerialKey> serial = ToSerialKey(c.serial);
  const std::optional<FingerprintKey> fingerprint = ToFingerprintKey(c.fingerprint);
  if (!serial || !fingerprint) return;  // not what the database holds: never matches
  CertificateEntry e;
  auto issuer = std::find(issuer_ids.begin(), issuer_ids.end(), c.issuer_id);
  if (issuer == issuer_ids.end()) issuer = issuer_ids.insert(issuer_ids.end(), c.issuer_id);
  e.issuer = static_cast<uint16_t>(issuer - issuer_ids.begin());
  serial->issuer = e.issuer;
  e.serial = *serial;
  if (c.kind == storage::CertificateKind::kIdentity) {
    e.principal_type = PrincipalType::kIdentity;
    e.principal_id = c.identity_name;
  } else {
    e.principal_type = PrincipalType::kDevice;
    e.principal_id = c.comm_id;
  }
  e.status = c.status;
  e.not_after = absl::ToUnixSeconds(c.not_after);
  fingerprint_by_serial[*serial] = *fingerprint;
  by_fingerprint[*fingerprint] = std::move(e);
}

std::optional<uint16_t> PolicyIndex::CertificateMaps::IssuerIndex(
    const std::string& issuer_id) const {
  auto it = std::find(issuer_ids.begin(), issuer_ids.end(), issuer_id);
  if (it == issuer_ids.end()) return std::nullopt;
  return static_cast<uint16_t>(it - issuer_ids.begin());
}

void PolicyIndex::CertificateMaps::Drop(const std::string& issuer_id, absl::string_view serial) {
  std::optional<SerialKey> key = ToSerialKey(serial);
  const std::optional<uint16_t> issuer = IssuerIndex(issuer_id);
  if (!key || !issuer) return;
  key->issuer = *issuer;
  auto it = fingerprint_by_serial.find(*key);
  if (it == fingerprint_by_serial.end()) return;
  by_fingerprint.erase(it->second);
  fingerprint_by_serial.erase(it);
}

absl::StatusOr<std::vector<ClientIssuer>> PolicyIndex::ReadClientIssuers() {
  std::vector<ClientIssuer> out;
  for (std::string cursor;;) {
    ASSIGN_OR_RETURN(storage::SyncPage issuers,
                     sync_store_.List(storage::SyncKind::kIssuer, cursor, 1000));
    for (const storage::SyncObject& o : issuers.objects) {
      const auto& i = std::get<storage::SyncIssuer>(o.value);
      if (i.purpose == storage::IssuerPurpose::kBrokers) continue;
      out.push_back(ClientIssuer{i.id, i.certificate_der, i.external, i.enabled,
                                 i.accept_unregistered});
    }
    if (issuers.next.empty()) break;
    cursor = std::move(issuers.next);
  }
  return out;
}

PolicyIndex::HeldProfile PolicyIndex::Hold(storage::AclProfileRow row) {
  HeldProfile held;
  held.parsed = ParsePatterns(row.rules);
  held.row = std::move(row);
  return held;
}

std::string PolicyIndex::SubjectKey(AclSubject type, absl::string_view id) {
  return absl::StrCat(storage::AclSubjectName(type), "\n", id);
}

absl::Status PolicyIndex::Load() {
  // The head first: every change after it is re-read by Refresh.
  ASSIGN_OR_RETURN(const int64_t head, log_.Head());
  absl::flat_hash_map<std::string, DeviceEntry> devices;
  for (std::string after;;) {
    ASSIGN_OR_RETURN(std::vector<storage::Device> page,
                     devices_store_.List(storage::DeviceFilter(), after, kLoadPage));
    for (storage::Device& d : page) {
      devices[d.comm_id] = DeviceEntry{d.status == storage::DeviceStatus::kActive,
                                       std::move(d.groups), std::move(d.attributes)};
    }
    if (page.size() < static_cast<size_t>(kLoadPage)) break;
    after = page.back().comm_id;
  }
  absl::flat_hash_map<std::string, bool> identities;
  for (std::string after;;) {
    ASSIGN_OR_RETURN(std::vector<storage::IdentityRecord> page,
                     identities_store_.List(storage::IdentityFilter(), after, kLoadPage));
    for (const storage::IdentityRecord& i : page) identities[i.name] = i.status == "active";
    if (page.size() < static_cast<size_t>(kLoadPage)) break;
    after = page.back().name;
  }
  absl::flat_hash_map<std::string, HeldProfile> profiles;
  for (std::string after;;) {
    ASSIGN_OR_RETURN(std::vector<storage::AclProfileRow> page,
                     acl_store_.ListProfiles(after, kLoadPage));
    if (!page.empty()) after = page.back().name;  // before the rows are moved from
    for (storage::AclProfileRow& p : page) {
      std::string name = p.name;
      profiles[name] = Hold(std::move(p));
    }
    if (page.size() < static_cast<size_t>(kLoadPage)) break;
  }
  AssignmentMap assignments;
  for (std::optional<AclAssignmentRow> after;;) {
    ASSIGN_OR_RETURN(std::vector<AclAssignmentRow> page,
                     acl_store_.ListAssignments(storage::AclAssignmentFilter(), after, kLoadPage));
    for (const AclAssignmentRow& a : page) {
      assignments[SubjectKey(a.subject_type, a.subject_id)].push_back(a);
    }
    if (page.size() < static_cast<size_t>(kLoadPage)) break;
    after = page.back();
  }
  CertificateMaps certificates;
  for (std::string cursor;;) {
    ASSIGN_OR_RETURN(storage::SyncPage page,
                     sync_store_.List(storage::SyncKind::kCertificate, cursor, kCertificatePage));
    for (const storage::SyncObject& o : page.objects) {
      certificates.Put(std::get<storage::SyncCertificate>(o.value));
    }
    if (page.next.empty()) break;
    cursor = std::move(page.next);
  }
  ASSIGN_OR_RETURN(std::vector<ClientIssuer> issuers, ReadClientIssuers());
  absl::MutexLock lock(&mu_);
  devices_ = std::move(devices);
  identities_ = std::move(identities);
  profiles_ = std::move(profiles);
  assignments_ = std::move(assignments);
  certificates_ = std::move(certificates);
  client_issuers_ = std::move(issuers);
  revision_ = head;
  loaded_ = true;
  return absl::OkStatus();
}

absl::StatusOr<int> PolicyIndex::Refresh() {
  int64_t from;
  {
    absl::MutexLock lock(&mu_);
    if (!loaded_) return absl::FailedPreconditionError("the policy index is not loaded");
    from = revision_;
  }
  int read = 0;
  for (;;) {
    ASSIGN_OR_RETURN(std::vector<storage::ChangeRow> changes, log_.After(from, kRefreshBatch));
    if (changes.empty()) return read;
    read += static_cast<int>(changes.size());
    // Each changed key's current state is read first, without the lock (readers are never
    // held up by the database), and applied to the maps under it.
    std::vector<std::function<void()>> apply;
    // follow: the key's new value in `map` (made by `held` from what `got` read), or its
    // removal when it is gone.
    auto follow = [&](auto& map, const std::string& key, auto got, auto held) -> absl::Status {
      if (got.ok()) {
        apply.push_back([this, &map, key, value = held(*std::move(got))]() mutable {
          mu_.AssertHeld();
          map[key] = std::move(value);
        });
        return absl::OkStatus();
      }
      if (got.status().code() != absl::StatusCode::kNotFound) return got.status();
      apply.push_back([this, &map, key] {
        mu_.AssertHeld();
        map.erase(key);
      });
      return absl::OkStatus();
    };
    std::vector<std::string> certificate_keys;
    bool issuers_changed = false;
    for (const storage::ChangeRow& change : changes) {
      const std::string& key = change.key;
      if (change.entity_type == "certificate" || change.entity_type == "revocation") {
        certificate_keys.push_back(key);  // read together below
      } else if (change.entity_type == "issuer") {
        issuers_changed = true;
      } else if (change.entity_type == "device") {
        RETURN_IF_ERROR(follow(devices_, key, devices_store_.Get(key), [](storage::Device d) {
          return DeviceEntry{d.status == storage::DeviceStatus::kActive, std::move(d.groups),
                             std::move(d.attributes)};
        }));
      } else if (change.entity_type == "identity") {
        RETURN_IF_ERROR(follow(identities_, key, identities_store_.Get(key),
                               [](const storage::IdentityRecord& i) { return i.status == "active"; }));
      } else if (change.entity_type == "acl_profile") {
        RETURN_IF_ERROR(follow(profiles_, key, acl_store_.GetProfile(key), Hold));
      } else if (change.entity_type == "acl_assignment") {
        const std::optional<AclAssignmentRow> parsed = storage::ParseAssignmentKey(key);
        if (!parsed) continue;  // not one of ours: nothing to apply
        storage::AclAssignmentFilter filter;
        filter.subject_type = parsed->subject_type;
        filter.subject_id = parsed->subject_id;
        filter.profile_name = parsed->profile_name;
        ASSIGN_OR_RETURN(std::vector<AclAssignmentRow> found,
                         acl_store_.ListAssignments(filter, std::nullopt, 1));
        apply.push_back([this, subject = SubjectKey(parsed->subject_type, parsed->subject_id),
                         profile = parsed->profile_name,
                         row = found.empty() ? std::optional<AclAssignmentRow>()
                                             : std::optional<AclAssignmentRow>(found[0])] {
          mu_.AssertHeld();
          std::vector<AclAssignmentRow>& held = assignments_[subject];
          held.erase(std::remove_if(held.begin(), held.end(),
                                    [&](const AclAssignmentRow& a) {
                                      return a.profile_name == profile;
                                    }),
                     held.end());
          if (row) held.push_back(*row);
          if (held.empty()) assignments_.erase(subject);
        });
      }
      // Other entities (brokers, CRLs...) change no decision.
    }
    if (!certificate_keys.empty()) {
      ASSIGN_OR_RETURN(std::vector<storage::SyncObject> certificates,
                       sync_store_.Read(storage::SyncKind::kCertificate, certificate_keys));
      apply.push_back([this, certificates = std::move(certificates)] {
        mu_.AssertHeld();
        for (const storage::SyncObject& o : certificates) {
          const auto& c = std::get<storage::SyncCertificate>(o.value);
          if (o.deleted) {
            certificates_.Drop(c.issuer_id, c.serial);  // expired: out of view
          } else {
            certificates_.Put(c);
          }
        }
      });
    }
    if (issuers_changed) {
      ASSIGN_OR_RETURN(std::vector<ClientIssuer> issuers, ReadClientIssuers());
      apply.push_back([this, issuers = std::move(issuers)]() mutable {
        mu_.AssertHeld();
        client_issuers_ = std::move(issuers);
      });
    }
    {
      absl::MutexLock lock(&mu_);
      for (auto& f : apply) f();
      revision_ = changes.back().revision;
    }
    from = changes.back().revision;
    if (changes.size() < static_cast<size_t>(kRefreshBatch)) return read;
  }
}

bool PolicyIndex::loaded() const {
  absl::ReaderMutexLock lock(&mu_);
  return loaded_;
}

int64_t PolicyIndex::revision() const {
  absl::ReaderMutexLock lock(&mu_);
  return revision_;
}

PolicyIndex::Counts PolicyIndex::counts() const {
  absl::ReaderMutexLock lock(&mu_);
  Counts c;
  c.devices = devices_.size();
  c.identities = identities_.size();
  c.profiles = profiles_.size();
  for (const auto& [subject, rows] : assignments_) c.assignments += rows.size();
  c.certificates = certificates_.by_fingerprint.size();
  return c;
}

std::vector<ClientIssuer> PolicyIndex::ClientIssuers() const {
  absl::ReaderMutexLock lock(&mu_);
  return client_issuers_;
}

absl::StatusOr<ConnectAnswer> PolicyIndex::AuthorizeConnect(const CertificateRef& certificate,
                                                            const std::string& client_id,
                                                            absl::Time now) const {
  absl::ReaderMutexLock lock(&mu_);
  if (!loaded_) return absl::UnavailableError("the policy index is loading: retry shortly");
  ConnectAnswer answer;
  answer.revision = revision_;
  // 1. A client certificate the inventory holds.
  const CertificateEntry* entry = nullptr;
  std::optional<FingerprintKey> fingerprint;
  if (!certificate.fingerprint.empty()) {
    fingerprint = ToFingerprintKey(certificate.fingerprint);
  } else if (std::optional<SerialKey> serial = ToSerialKey(certificate.serial)) {
    // By issuer and serial; without the issuer, the serial must name one certificate.
    int found = 0;
    for (uint16_t i = 0; i < certificates_.issuer_ids.size(); ++i) {
      if (!certificate.issuer_id.empty() && certificates_.issuer_ids[i] != certificate.issuer_id) {
        continue;
      }
      serial->issuer = i;
      auto f = certificates_.fingerprint_by_serial.find(*serial);
      if (f == certificates_.fingerprint_by_serial.end()) continue;
      fingerprint = f->second;
      ++found;
    }
    if (found > 1) {
      return Deny(answer, ConnectVerdict::kCertificateUnknown,
                  "the serial names certificates of several issuers: give the issuer_id");
    }
  }
  if (fingerprint) {
    auto it = certificates_.by_fingerprint.find(*fingerprint);
    if (it != certificates_.by_fingerprint.end() &&
        (certificate.issuer_id.empty() ||
         certificate.issuer_id == certificates_.issuer_ids[it->second.issuer])) {
      entry = &it->second;
    }
  }
  if (entry == nullptr) {
    return Deny(answer, ConnectVerdict::kCertificateUnknown,
                "the certificate is not an unexpired client certificate of this CA");
  }
  answer.serial.assign(reinterpret_cast<const char*>(entry->serial.bytes.data()),
                       entry->serial.size);
  answer.issuer_id = certificates_.issuer_ids[entry->issuer];
  answer.principal_type = entry->principal_type;
  answer.principal_id = entry->principal_id;
  // 2. Its issuer still trusted (an external CA may be disabled or deleted).
  const ClientIssuer* issuer = FindClientIssuerLocked(answer.issuer_id);
  if (issuer == nullptr) {
    return Deny(answer, ConnectVerdict::kUntrustedIssuer,
                absl::StrCat("issuer ", answer.issuer_id, " is no longer trusted for clients"));
  }
  if (!issuer->enabled) {
    return Deny(answer, ConnectVerdict::kIssuerDisabled,
                absl::StrCat("external CA ", answer.issuer_id, " is disabled"));
  }
  // 3. Within its validity, neither revoked nor held.
  if (absl::ToUnixSeconds(now) >= entry->not_after) {
    return Deny(answer, ConnectVerdict::kCertificateExpired,
                absl::StrCat("the certificate expired at ",
                             absl::FormatTime(absl::FromUnixSeconds(entry->not_after))));
  }
  if (entry->status == storage::CertificateStatus::kRevoked) {
    return Deny(answer, ConnectVerdict::kCertificateRevoked, "the certificate is revoked");
  }
  if (entry->status == storage::CertificateStatus::kOnHold) {
    return Deny(answer, ConnectVerdict::kCertificateOnHold, "the certificate is on hold");
  }
  return ConnectAllowedLocked(entry->principal_type, entry->principal_id, client_id,
                              std::move(answer));
}

const ClientIssuer* PolicyIndex::FindClientIssuerLocked(const std::string& id) const {
  for (const ClientIssuer& i : client_issuers_) {
    if (i.id == id) return &i;
  }
  return nullptr;
}

ConnectAnswer PolicyIndex::ConnectAllowedLocked(PrincipalType type,
                                                const std::string& principal_id,
                                                const std::string& client_id,
                                                ConnectAnswer answer) const {
  const char* what = type == PrincipalType::kDevice ? "device" : "identity";
  // CN = client id.
  if (client_id != principal_id) {
    return Deny(answer, ConnectVerdict::kClientIdMismatch,
                absl::StrCat("the client id \"", client_id, "\" is not the certificate's CN \"",
                             principal_id, "\""));
  }
  // The principal, registered and active; its rules.
  Resolution resolved;
  if (!ResolveLocked(type, principal_id, &resolved)) {
    return Deny(answer, ConnectVerdict::kPrincipalUnknown,
                absl::StrCat(what, " ", principal_id, " is not registered"));
  }
  if (!resolved.active) {
    return Deny(answer, ConnectVerdict::kPrincipalInactive,
                absl::StrCat(what, " ", principal_id, " is not active"));
  }
  answer.verdict = ConnectVerdict::kAllowed;
  answer.message = absl::StrCat(what, " ", principal_id, " may connect");
  answer.rules = std::move(resolved.rules);
  return answer;
}

absl::StatusOr<ConnectAnswer> PolicyIndex::AuthorizeUnregistered(
    const std::string& issuer_id, const std::string& serial, const std::string& common_name,
    absl::Time not_after, const std::string& client_id, absl::Time now) const {
  absl::ReaderMutexLock lock(&mu_);
  if (!loaded_) return absl::UnavailableError("the policy index is loading: retry shortly");
  ConnectAnswer answer;
  answer.revision = revision_;
  answer.serial = serial;
  answer.issuer_id = issuer_id;
  const ClientIssuer* issuer = FindClientIssuerLocked(issuer_id);
  if (issuer == nullptr || !issuer->external) {
    return Deny(answer, ConnectVerdict::kUntrustedIssuer,
                absl::StrCat("no external CA ", issuer_id, " is trusted"));
  }
  if (!issuer->enabled) {
    return Deny(answer, ConnectVerdict::kIssuerDisabled,
                absl::StrCat("external CA ", issuer_id, " is disabled"));
  }
  if (!issuer->accept_unregistered) {
    return Deny(answer, ConnectVerdict::kPrincipalUnknown,
                absl::StrCat("the certificate is not registered, and external CA ", issuer_id,
                             " accepts registered certificates only"));
  }
  if (now >= not_after) {
    return Deny(answer, ConnectVerdict::kCertificateExpired,
                absl::StrCat("the certificate expired at ", absl::FormatTime(not_after)));
  }
  if (certificates_.imported_revoked.contains(absl::StrCat(issuer_id, "/", serial))) {
    return Deny(answer, ConnectVerdict::kCertificateRevoked,
                "the certificate is listed in the CRL imported for its CA");
  }
  answer.principal_type = PrincipalType::kDevice;
  answer.principal_id = common_name;
  return ConnectAllowedLocked(PrincipalType::kDevice, common_name, client_id, std::move(answer));
}

bool PolicyIndex::ResolveLocked(PrincipalType type, const std::string& id, Resolution* out) const {
  out->type = type;
  out->id = id;
  const std::map<std::string, std::string>* attributes = nullptr;
  static const std::vector<std::string> kNoGroups;
  const std::vector<std::string>* groups = &kNoGroups;
  if (type == PrincipalType::kDevice) {
    auto it = devices_.find(id);
    if (it == devices_.end()) return false;
    out->active = it->second.active;
    attributes = &it->second.attributes;
    groups = &it->second.groups;
  } else {
    auto it = identities_.find(id);
    if (it == identities_.end()) return false;
    out->active = it->second;
  }
  std::vector<AssignedProfile> assigned;
  for (const auto& [subject_type, subject_id] : Subjects(type, id, *groups)) {
    auto a = assignments_.find(SubjectKey(subject_type, subject_id));
    if (a == assignments_.end()) continue;
    for (const AclAssignmentRow& row : a->second) {
      auto p = profiles_.find(row.profile_name);
      if (p != profiles_.end()) {
        assigned.push_back({&row, &p->second.row.rules, &p->second.parsed});
      }
    }
  }
  ResolveRules(id, attributes, assigned, out);
  return true;
}

absl::StatusOr<Resolution> PolicyIndex::Resolve(PrincipalType type, const std::string& id) const {
  absl::ReaderMutexLock lock(&mu_);
  if (!loaded_) return absl::UnavailableError("the policy index is loading: retry shortly");
  Resolution out;
  if (!ResolveLocked(type, id, &out)) {
    return absl::NotFoundError(absl::StrCat("principal.id: no ",
                                            type == PrincipalType::kDevice ? "device" : "identity",
                                            " \"", id, "\""));
  }
  return out;
}

absl::StatusOr<TopicAnswer> PolicyIndex::CheckTopic(PrincipalType type, const std::string& id,
                                                    acl::Operation op,
                                                    absl::string_view topic) const {
  absl::ReaderMutexLock lock(&mu_);
  if (!loaded_) return absl::UnavailableError("the policy index is loading: retry shortly");
  TopicAnswer answer;
  answer.revision = revision_;
  Resolution resolved;
  if (!ResolveLocked(type, id, &resolved)) {
    answer.verdict = TopicVerdict::kPrincipalUnknown;
    return answer;
  }
  if (!resolved.active) {
    answer.verdict = TopicVerdict::kPrincipalInactive;
    return answer;
  }
  // The filters move into the evaluation's rules (not copied on every call); the rule
  // that decided gets its filter back below.
  std::vector<acl::ResolvedRule> rules;
  rules.reserve(resolved.rules.size());
  for (EffectiveRule& r : resolved.rules) rules.push_back(std::move(r.rule));
  const acl::Decision decision = acl::Evaluate(rules, op, topic);
  switch (decision.reason) {
    case acl::Decision::Reason::kAllowed:
      answer.verdict = TopicVerdict::kAllowed;
      break;
    case acl::Decision::Reason::kDenyRule:
      answer.verdict = TopicVerdict::kDenyRule;
      break;
    case acl::Decision::Reason::kNoMatchingRule:
    case acl::Decision::Reason::kMalformedInput:
      answer.verdict = TopicVerdict::kNoMatchingRule;
      break;
  }
  if (decision.rule_index >= 0) {
    const size_t i = static_cast<size_t>(decision.rule_index);
    answer.matched = std::move(resolved.rules[i]);
    answer.matched->rule = std::move(rules[i]);
  }
  return answer;
}

}  // namespace fleetca::policy
