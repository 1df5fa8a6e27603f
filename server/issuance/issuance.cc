#include "server/issuance/issuance.h"

#include <algorithm>
#include <set>

#include <openssl/sha.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_join.h"
#include "common/page_token.h"
#include "common/status_macros.h"
#include "pki/certificate_builder.h"
#include "pki/csr.h"
#include "server/brokers/broker_registry.h"
#include "server/registry/validation.h"

namespace fleetca::issuance {
namespace {

using storage::CertificateKind;
using storage::CertificateRecord;

constexpr absl::Duration kBackdate = absl::Minutes(5);
constexpr absl::Duration kDay = absl::Hours(24);
constexpr size_t kMaxRequestIdLength = 128;
constexpr char kPageTokenKind[] = "certificates";

// Extensions a CSR may request that the CA ignores (it decides them itself): basic
// constraints, key usage, extended key usage, subject key identifier. Anything else, and a
// subjectAltName where the profile takes none, is refused.
const std::set<std::string>& IgnoredExtensions() {
  static const auto* oids =
      new std::set<std::string>{"2.5.29.19", "2.5.29.15", "2.5.29.37", "2.5.29.14"};
  return *oids;
}
constexpr char kSubjectAltNameOid[] = "2.5.29.17";

absl::Status Invalid(absl::string_view field, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", why));
}

absl::Status ValidateRequestId(const std::string& id) {
  if (id.empty()) {
    return Invalid("request_id",
                   "is required: a unique id per certificate request, reused on retries, so a "
                   "retried request never gets a second certificate");
  }
  if (id.size() > kMaxRequestIdLength ||
      !std::all_of(id.begin(), id.end(), [](char c) {
        return static_cast<unsigned char>(c) >= 0x21 && static_cast<unsigned char>(c) <= 0x7e;
      })) {
    return Invalid("request_id", "must be 1 to 128 printable ASCII characters without spaces");
  }
  return absl::OkStatus();
}

// SubjectString renders the subject as the certificate will carry it (RFC 2253 order).
std::string SubjectString(const pki::SubjectName& s) {
  std::string out = absl::StrCat("CN=", s.common_name);
  if (!s.organizational_unit.empty()) absl::StrAppend(&out, ",OU=", s.organizational_unit);
  if (!s.organization.empty()) absl::StrAppend(&out, ",O=", s.organization);
  if (!s.country.empty()) absl::StrAppend(&out, ",C=", s.country);
  return out;
}

std::string Sha256(const std::string& data) {
  unsigned char digest[32];
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest);
  return std::string(reinterpret_cast<const char*>(digest), sizeof(digest));
}

}  // namespace

std::vector<Profile> DefaultProfiles(const std::string& organization) {
  Profile device;
  device.name = "device";
  device.kind = CertificateKind::kDevice;
  device.is_default = true;
  device.description = "MQTT device client certificate: CN = comm-ID, EKU clientAuth";
  device.default_validity = 365 * kDay;
  device.max_validity = 5 * 365 * kDay;
  device.organization = organization;
  Profile broker;
  broker.name = "broker";
  broker.kind = CertificateKind::kBroker;
  broker.is_default = true;
  broker.description = "MQTT broker server certificate: DNS/IP SANs from the allow-list, EKU serverAuth";
  broker.default_validity = 365 * kDay;
  broker.max_validity = 825 * kDay;
  broker.organization = organization;
  return {device, broker};
}

absl::StatusOr<IssuedCertificate> Issuance::Complete(CertificateRecord record, bool replayed,
                                                     const ca::ActiveIssuer* signer) {
  IssuedCertificate out;
  out.certificate_pem = pki::DerToPem(record.der, "CERTIFICATE");
  if (record.kind == CertificateKind::kExternalDevice) {
    // A customer CA's: fleetca holds no chain for it (the external CA's certificate is in
    // ExternalCa, its intermediates with the device).
  } else if (signer != nullptr && signer->row.id == record.issuer_id) {
    out.chain_pem = signer->chain_pem;
  } else {
    ASSIGN_OR_RETURN(storage::Issuer issuer, ca_.GetIssuer(record.issuer_id));
    ASSIGN_OR_RETURN(out.chain_pem, ca_.ChainPem(issuer));
  }
  out.record = std::move(record);
  out.replayed = replayed;
  return out;
}

absl::StatusOr<Issuance::Prepared> Issuance::Prepare(CertificateKind kind, const SignRequest& req,
                                                     const RequestContext& ctx) {
  const bool is_device = kind == CertificateKind::kDevice;
  const char* id_field = is_device ? "comm_id" : "broker_id";

  // 1. Request fields.
  if (is_device) {
    RETURN_IF_ERROR(registry::ValidateCommId(id_field, req.subject_id));
  } else {
    RETURN_IF_ERROR(brokers::ValidateBrokerId(id_field, req.subject_id));
  }
  RETURN_IF_ERROR(ValidateRequestId(req.request_id));

  // 2. Profile and validity.
  const Profile* profile = nullptr;
  for (const Profile& p : profiles_) {
    if (p.kind == kind && (req.profile.empty() ? p.is_default : p.name == req.profile)) {
      profile = &p;
      break;
    }
  }
  if (profile == nullptr) {
    return Invalid("profile", absl::StrCat("no ", storage::CertificateKindName(kind),
                                           " profile named ", registry::Quote(req.profile),
                                           " (ListProfiles shows them)"));
  }
  if (req.validity < absl::ZeroDuration()) return Invalid("validity", "must not be negative");
  const absl::Duration validity =
      req.validity == absl::ZeroDuration() ? profile->default_validity
                                           : std::min(req.validity, profile->max_validity);

  // 3. The CSR: size, syntax, proof of possession, key policy.
  ASSIGN_OR_RETURN(pki::ParsedCsr csr, pki::ParseCsr(req.csr_field, req.csr, req.csr_is_pem));

  // 4. Subject and names, built by the CA; the CSR only has to agree.
  pki::CertificateTemplate t;
  t.profile = is_device ? pki::CertificateProfile::kClient : pki::CertificateProfile::kServer;
  t.subject.organization = profile->organization;
  t.subject.organizational_unit = profile->organizational_unit;
  for (const std::string& oid : csr.extension_oids) {
    if (IgnoredExtensions().count(oid) != 0) continue;
    if (oid == kSubjectAltNameOid && !is_device) continue;  // checked below
    return Invalid(req.csr_field,
                   absl::StrCat("requests extension ", oid == kSubjectAltNameOid ? "subjectAltName" : oid,
                                ", which the ", profile->name, " profile does not allow"));
  }
  if (is_device) {
    if (csr.common_names.size() != 1) {
      return Invalid(req.csr_field, absl::StrCat("the subject must have exactly one Common Name, "
                                                 "found ", csr.common_names.size()));
    }
    if (csr.common_names[0] != req.subject_id) {
      return Invalid(req.csr_field,
                     absl::StrCat("Common Name ", registry::Quote(csr.common_names[0]),
                                  " does not equal comm_id ", registry::Quote(req.subject_id),
                                  " (byte for byte)"));
    }
    t.subject.common_name = req.subject_id;
  } else {
    ASSIGN_OR_RETURN(storage::Broker broker, brokers_.Get(req.subject_id));
    std::vector<std::string> dns = req.dns_names, ips = req.ip_addresses;
    dns.insert(dns.end(), csr.dns_names.begin(), csr.dns_names.end());
    ips.insert(ips.end(), csr.ip_addresses.begin(), csr.ip_addresses.end());
    if (csr.has_other_names) {
      return Invalid(req.csr_field, "requests subjectAltName entries other than DNS and IP, "
                                    "which the broker profile does not allow");
    }
    if (dns.empty() && ips.empty()) {
      dns = broker.allowed_dns_names;
      ips = broker.allowed_ip_addresses;
      dns.erase(std::remove_if(dns.begin(), dns.end(),
                               [](const std::string& d) { return d.rfind("*.", 0) == 0; }),
                dns.end());
    }
    for (size_t i = 0; i < dns.size(); ++i) {
      ASSIGN_OR_RETURN(dns[i], brokers::NormalizeDnsName(absl::StrCat("dns_names[", i, "]"), dns[i],
                                                         /*allow_wildcard=*/false));
      if (!brokers::DnsNameAllowed(dns[i], broker.allowed_dns_names)) {
        return Invalid("dns_names", absl::StrCat(registry::Quote(dns[i]), " is not allowed for broker ",
                                                 registry::Quote(broker.name),
                                                 " (its allowed_dns_names)"));
      }
    }
    for (size_t i = 0; i < ips.size(); ++i) {
      ASSIGN_OR_RETURN(ips[i], brokers::NormalizeIpAddress(absl::StrCat("ip_addresses[", i, "]"), ips[i]));
      if (std::find(broker.allowed_ip_addresses.begin(), broker.allowed_ip_addresses.end(),
                    ips[i]) == broker.allowed_ip_addresses.end()) {
        return Invalid("ip_addresses", absl::StrCat(ips[i], " is not allowed for broker ",
                                                    registry::Quote(broker.name)));
      }
    }
    std::sort(dns.begin(), dns.end());
    dns.erase(std::unique(dns.begin(), dns.end()), dns.end());
    std::sort(ips.begin(), ips.end());
    ips.erase(std::unique(ips.begin(), ips.end()), ips.end());
    if (dns.empty() && ips.empty()) {
      return Invalid("dns_names", absl::StrCat(
          "broker ", registry::Quote(broker.name), " has no allowed DNS names or IP addresses: "
          "add them with UpdateBroker first"));
    }
    // A CN in the CSR must name one of the certificate's names (it catches a CSR made for
    // another host); the certificate's CN is the first DNS name, else the first address.
    for (const std::string& cn : csr.common_names) {
      auto lowered = brokers::NormalizeDnsName("cn", cn, false);
      const bool matches = (lowered.ok() && std::count(dns.begin(), dns.end(), *lowered)) ||
                           std::count(ips.begin(), ips.end(), cn);
      if (!matches) {
        return Invalid(req.csr_field, absl::StrCat("Common Name ", registry::Quote(cn),
                                                   " is not one of the certificate's names (",
                                                   absl::StrJoin(dns, ", "), ")"));
      }
    }
    t.subject.common_name = dns.empty() ? ips.front() : dns.front();
    t.dns_names = dns;
    t.ip_addresses = ips;
  }

  // 5. The issuer, and the record the store writes with the signature.
  ASSIGN_OR_RETURN(std::shared_ptr<const ca::ActiveIssuer> issuer,
                   ca_.Active(is_device ? storage::IssuerPurpose::kDevices
                                        : storage::IssuerPurpose::kBrokers));
  const absl::Time now = absl::Now();
  t.serial = pki::RandomSerial();
  t.not_before = now - kBackdate;
  t.not_after = std::min(now + validity, issuer->row.not_after.value_or(now + validity));
  if (t.not_after <= now) {
    return absl::FailedPreconditionError(
        absl::StrCat("issuer ", issuer->row.id, " expires now: rotate it"));
  }
  t.public_key_der = std::move(csr.public_key_der);
  t.crl_url = ca_.CrlUrl(issuer->row.id);
  t.ca_issuers_url = ca_.CaIssuersUrl(issuer->row.id);

  CertificateRecord record;
  record.serial = t.serial;
  record.issuer_id = issuer->row.id;
  record.kind = kind;
  (is_device ? record.comm_id : record.broker_name) = req.subject_id;
  record.key_algorithm = pki::KeyAlgorithmName(csr.key_algorithm);
  record.dns_names = t.dns_names;
  record.ip_addresses = t.ip_addresses;
  record.profile = profile->name;
  record.not_before = t.not_before;
  record.not_after = t.not_after;
  record.request_id = req.request_id;
  record.csr_sha256 = Sha256(csr.der);
  record.requester = ctx.actor;
  record.renewed_from = req.renew_from_serial;
  record.subject = SubjectString(t.subject);

  // 6. The signature, made by the store inside the transaction that stores it (once the
  //    request passed its checks there): the template and issuer are the closure's own.
  Prepared out;
  out.kind = kind;
  out.request_id = req.request_id;
  out.record = std::move(record);
  out.issuer = issuer;
  out.sign = [t = std::move(t), issuer, &key_store = ca_.key_store()]() -> absl::StatusOr<std::string> {
    return pki::BuildCertificateDer(t, issuer->certificate.get(), key_store, issuer->row.id);
  };
  return out;
}

// Finish: the store's outcome as the caller's answer. A replay must be of the same request.
absl::StatusOr<IssuedCertificate> Issuance::Finish(const Prepared& p,
                                                   absl::StatusOr<storage::IssueOutcome> stored) {
  RETURN_IF_ERROR(stored.status());
  storage::IssueOutcome& outcome = *stored;
  if (outcome.replayed) {
    const CertificateRecord& prior = outcome.record;
    const CertificateRecord& record = p.record;
    const bool same = prior.csr_sha256 == record.csr_sha256 && prior.kind == p.kind &&
                      prior.comm_id == record.comm_id && prior.broker_name == record.broker_name &&
                      prior.renewed_from == record.renewed_from;
    if (!same) {
      return absl::AlreadyExistsError(absl::StrCat(
          "request_id ", registry::Quote(p.request_id),
          " was already used for a different request (certificate ",
          pki::SerialToHex(prior.serial), "); use a new request id for a new request"));
    }
  }
  return Complete(std::move(outcome.record), outcome.replayed, p.issuer.get());
}

// Sign: prepared, then signed and stored in one transaction (CertificateStore::Issue):
// retries are told apart, the subject is still there and active, the certificate is signed
// and stored with its audit entry; only once that commits is it returned.
absl::StatusOr<IssuedCertificate> Issuance::Sign(CertificateKind kind, const SignRequest& req,
                                                 const RequestContext& ctx) {
  ASSIGN_OR_RETURN(Prepared p, Prepare(kind, req, ctx));
  return Finish(p, certificates_.Issue(p.record, p.sign, ctx));
}

void Issuance::SignDeviceCsrAsync(const SignRequest& request, const RequestContext& ctx,
                                  std::function<void(absl::StatusOr<IssuedCertificate>)> done) {
  if (!request.renew_from_serial.empty()) {
    done(absl::InternalError("SignDeviceCsr with a renewal serial"));
    return;
  }
  absl::StatusOr<Prepared> prepared = Prepare(CertificateKind::kDevice, request, ctx);
  if (!prepared.ok()) {
    done(prepared.status());
    return;
  }
  auto p = std::make_shared<Prepared>(*std::move(prepared));
  // The signing closure (with the certificate template) moves to the store; Finish needs
  // the rest of p.
  certificates_.IssueAsync(p->record, std::move(p->sign), ctx,
                           [this, p, done = std::move(done)](absl::StatusOr<storage::IssueOutcome> stored) {
                             done(Finish(*p, std::move(stored)));
                           });
}

absl::StatusOr<IssuedCertificate> Issuance::SignBrokerCsr(const SignRequest& request,
                                                          const RequestContext& ctx) {
  return Sign(CertificateKind::kBroker, request, ctx);
}

absl::StatusOr<IssuedCertificate> Issuance::RenewDeviceCertificate(const SignRequest& request,
                                                                   const RequestContext& ctx) {
  RETURN_IF_ERROR(registry::ValidateCommId("comm_id", request.subject_id));
  RETURN_IF_ERROR(ValidateRequestId(request.request_id));
  SignRequest req = request;
  if (req.renew_from_serial.empty()) {
    // The device's newest valid certificate. A retry must find its first answer, not renew
    // the certificate that answer created: look the request id up first.
    auto prior = certificates_.GetByRequestId(req.request_id);
    if (prior.ok()) {
      req.renew_from_serial = prior->renewed_from;
    } else if (prior.status().code() != absl::StatusCode::kNotFound) {
      return prior.status();
    } else {
      storage::CertificateFilter f;
      f.comm_id = req.subject_id;
      f.kind = CertificateKind::kDevice;
      f.status = storage::CertificateStatus::kIssued;
      f.expires_after = absl::Now();
      ASSIGN_OR_RETURN(std::vector<CertificateRecord> valid, certificates_.List(f, {}, 1000));
      if (valid.empty()) {
        return absl::FailedPreconditionError(absl::StrCat(
            "device ", registry::Quote(req.subject_id),
            " has no valid certificate to renew: sign a new CSR with SignDeviceCsr"));
      }
      req.renew_from_serial = valid.back().serial;  // newest: List is in issuing order
    }
  }
  auto previous = certificates_.GetBySerial(req.renew_from_serial);
  if (previous.status().code() == absl::StatusCode::kNotFound) {
    return absl::NotFoundError(absl::StrCat("previous_serial: no certificate has serial ",
                                            pki::SerialToHex(req.renew_from_serial)));
  }
  RETURN_IF_ERROR(previous.status());
  const std::string serial_hex = pki::SerialToHex(req.renew_from_serial);
  if (previous->kind != CertificateKind::kDevice || previous->comm_id != req.subject_id) {
    return absl::FailedPreconditionError(absl::StrCat(
        "previous_serial: certificate ", serial_hex, " is not a device certificate of ",
        registry::Quote(req.subject_id)));
  }
  if (previous->status != storage::CertificateStatus::kIssued) {
    return absl::FailedPreconditionError(absl::StrCat(
        "previous_serial: certificate ", serial_hex, " is ",
        storage::CertificateStatusName(previous->status), ": only a valid certificate is renewed"));
  }
  if (previous->not_after <= absl::Now()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "previous_serial: certificate ", serial_hex,
        " has expired: sign a new CSR with SignDeviceCsr instead"));
  }
  return Sign(CertificateKind::kDevice, req, ctx);
}

absl::StatusOr<IssuedCertificate> Issuance::GetBySerial(const std::string& serial,
                                                        const std::string& issuer_id) {
  ASSIGN_OR_RETURN(CertificateRecord record, certificates_.GetBySerial(serial, issuer_id));
  return Complete(std::move(record), false);
}

absl::StatusOr<IssuedCertificate> Issuance::GetByFingerprint(const std::string& fingerprint) {
  ASSIGN_OR_RETURN(CertificateRecord record, certificates_.GetByFingerprint(fingerprint));
  return Complete(std::move(record), false);
}

absl::StatusOr<ListCertificatesPage> Issuance::List(const ListCertificatesQuery& q) {
  ASSIGN_OR_RETURN(const int size, PageSize(q.page_size));
  const storage::CertificateFilter& f = q.filter;
  if (!f.comm_id.empty()) RETURN_IF_ERROR(registry::ValidateCommId("comm_id", f.comm_id));
  if (!f.broker_name.empty()) RETURN_IF_ERROR(brokers::ValidateBrokerId("broker_id", f.broker_name));
  const std::string filters = absl::StrCat(
      f.comm_id, "\n", f.issuer_id, "\n", f.broker_name, "\n",
      f.kind ? storage::CertificateKindName(*f.kind) : "", "\n",
      f.status ? storage::CertificateStatusName(*f.status) : "", "\n",
      f.expires_after ? absl::ToUnixMicros(*f.expires_after) : 0, "\n",
      f.expires_before ? absl::ToUnixMicros(*f.expires_before) : 0, "\n", f.requester);
  ASSIGN_OR_RETURN(std::string last, DecodePageToken(kPageTokenKind, filters, q.page_token));
  storage::CertificateCursor after;
  if (!last.empty()) {
    // "<create micros>:<serial hex>"
    const size_t colon = last.find(':');
    auto serial = colon == std::string::npos ? absl::InvalidArgumentError("")
                                             : pki::SerialFromHex(last.substr(colon + 1));
    if (!serial.ok() || !absl::SimpleAtoi(last.substr(0, colon), &after.create_micros)) {
      return Invalid("page_token", "malformed");
    }
    after.serial = *std::move(serial);
  }
  ASSIGN_OR_RETURN(std::vector<CertificateRecord> records, certificates_.List(f, after, size + 1));
  ListCertificatesPage page;
  if (records.size() > static_cast<size_t>(size)) {
    records.resize(size);
    page.next_page_token = EncodePageToken(
        kPageTokenKind, filters,
        absl::StrCat(absl::ToUnixMicros(records.back().create_time), ":",
                     pki::SerialToHex(records.back().serial)));
  }
  page.certificates = std::move(records);
  return page;
}

}  // namespace fleetca::issuance
