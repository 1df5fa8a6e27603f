#include "server/app/server_tls.h"

#include <arpa/inet.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/status_macros.h"
#include "pki/certificate_builder.h"
#include "pki/keys.h"
#include "pki/openssl_util.h"

namespace fleetca::app {
namespace {

bool IsIpAddress(const std::string& s) {
  unsigned char buf[16];
  return inet_pton(AF_INET, s.c_str(), buf) == 1 || inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

}  // namespace

std::vector<std::string> DefaultServerNames() {
  std::vector<std::string> names = {"localhost", "127.0.0.1", "::1"};
  char host[256] = {0};
  if (gethostname(host, sizeof(host) - 1) == 0 && host[0] != '\0' &&
      std::string(host) != "localhost") {
    names.emplace_back(host);
  }
  return names;
}

absl::StatusOr<absl::Time> IssueServerCertificate(ca::CertificateAuthority& ca,
                                                  storage::CertificateStore& certificates,
                                                  const std::vector<std::string>& names,
                                                  absl::Duration validity,
                                                  const ServerCertificateFiles& files) {
  auto issuer = ca.Active(storage::IssuerPurpose::kBrokers);
  if (!issuer.ok()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "no server certificate: ", issuer.status().message(),
        " (run `fleetca-server init`, or give --tls_cert_file and --tls_key_file)"));
  }
  ASSIGN_OR_RETURN(pki::EvpPkeyPtr key, pki::GenerateKey(pki::KeyAlgorithm::kEcdsaP256));
  pki::CertificateTemplate t;
  t.profile = pki::CertificateProfile::kServer;
  t.serial = pki::RandomSerial();
  for (const std::string& n : names) (IsIpAddress(n) ? t.ip_addresses : t.dns_names).push_back(n);
  t.subject.common_name = t.dns_names.empty() ? names.front() : t.dns_names.front();
  t.subject.organizational_unit = "fleetca API";
  const absl::Time now = absl::Now();
  t.not_before = now - absl::Minutes(5);
  t.not_after = std::min(now + validity, (*issuer)->row.not_after.value_or(now + validity));
  ASSIGN_OR_RETURN(t.public_key_der, pki::PublicKeyToDer(key.get()));

  storage::CertificateRecord record;
  record.serial = t.serial;
  record.issuer_id = (*issuer)->row.id;
  record.kind = storage::CertificateKind::kServer;
  record.subject = absl::StrCat("CN=", t.subject.common_name, ",OU=fleetca API");
  record.key_algorithm = pki::KeyAlgorithmName(pki::KeyAlgorithm::kEcdsaP256);
  record.dns_names = t.dns_names;
  record.ip_addresses = t.ip_addresses;
  record.profile = "server";
  record.not_before = t.not_before;
  record.not_after = t.not_after;
  record.request_id = absl::StrCat("fleetca-server-", pki::SerialToHex(t.serial));
  record.requester = "fleetca-server";
  RequestContext ctx;
  ctx.actor = "fleetca-server";
  ctx.request_id = record.request_id;
  auto sign = [&]() -> absl::StatusOr<std::string> {
    return pki::BuildCertificateDer(t, (*issuer)->certificate.get(), ca.key_store(),
                                    (*issuer)->row.id);
  };
  ASSIGN_OR_RETURN(storage::IssueOutcome outcome, certificates.Issue(record, sign, ctx));
  ASSIGN_OR_RETURN(std::string key_der, pki::PrivateKeyToDer(key.get()));
  RETURN_IF_ERROR(WriteFileAtomically(files.key_path, pki::DerToPem(key_der, "PRIVATE KEY"), 0600));
  RETURN_IF_ERROR(WriteFileAtomically(
      files.certificate_path,
      absl::StrCat(pki::DerToPem(outcome.record.der, "CERTIFICATE"), (*issuer)->chain_pem), 0644));
  return t.not_after;
}

absl::StatusOr<std::vector<auth::TrustAnchor>> LoadTrustAnchors(ca::CertificateAuthority& ca) {
  ASSIGN_OR_RETURN(std::vector<storage::Issuer> issuers, ca.ListIssuers());
  std::vector<auth::TrustAnchor> anchors;
  const absl::Time now = absl::Now();
  for (const storage::Issuer& issuer : issuers) {
    if (issuer.certificate_der.empty() || issuer.state == storage::IssuerState::kPending) continue;
    if (issuer.not_after.has_value() && *issuer.not_after <= now) continue;
    auth::TrustAnchor a;
    a.issuer_id = issuer.id;
    switch (issuer.purpose) {
      case storage::IssuerPurpose::kRoot: a.kind = auth::TrustAnchor::Kind::kRoot; break;
      case storage::IssuerPurpose::kOperators: a.kind = auth::TrustAnchor::Kind::kOperators; break;
      case storage::IssuerPurpose::kDevices: a.kind = auth::TrustAnchor::Kind::kDevices; break;
      default: a.kind = auth::TrustAnchor::Kind::kOther;
    }
    ASSIGN_OR_RETURN(a.certificate, pki::CertificateFromDer(issuer.certificate_der));
    if (a.kind == auth::TrustAnchor::Kind::kOther) continue;
    anchors.push_back(std::move(a));
  }
  return anchors;
}

}  // namespace fleetca::app
