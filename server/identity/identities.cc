#include "server/identity/identities.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/page_token.h"
#include "common/status_macros.h"
#include "pki/certificate_builder.h"
#include "pki/csr.h"
#include "pki/openssl_util.h"
#include "server/registry/validation.h"

namespace fleetca::identity {
namespace {

constexpr absl::Duration kBackdate = absl::Minutes(5);

absl::Status Invalid(absl::string_view field, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", why));
}

bool IsNameChar(char c, bool first) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
         (!first && (c == '.' || c == '_' || c == '-'));
}

}  // namespace

absl::Status ValidateIdentityName(absl::string_view field, absl::string_view name) {
  if (name.empty() || name.size() > 63) {
    return Invalid(field, "must be 1 to 63 characters");
  }
  for (size_t i = 0; i < name.size(); ++i) {
    if (!IsNameChar(name[i], i == 0)) {
      return Invalid(field, "must be lower-case letters, digits, '.', '_' and '-', starting "
                            "with a letter or digit");
    }
  }
  return absl::OkStatus();
}

std::string RoleUri(auth::Role role, const std::string& name) {
  return absl::StrCat("fleetca://role/", auth::RoleName(role), "/", name);
}

std::string DbRoleName(auth::Role role) {
  return role == auth::Role::kMqttClient ? "mqtt_client" : auth::RoleName(role);
}

std::optional<auth::Role> RoleFromDb(const std::string& role) { return auth::RoleFromName(role); }

absl::StatusOr<IssuedIdentity> Identities::Sign(const std::string& name, auth::Role role,
                                                const KeySource& key, absl::Duration validity,
                                                storage::CertificateRecord* record,
                                                pki::CertificateTemplate* t,
                                                std::shared_ptr<const ca::ActiveIssuer>* issuer) {
  if (validity < absl::ZeroDuration()) return Invalid("validity", "must not be negative");
  if (validity == absl::ZeroDuration()) validity = kDefaultIdentityValidity;
  validity = std::min(validity, kMaxIdentityValidity);
  IssuedIdentity out;
  std::string key_algorithm;
  if (key.generate.has_value()) {
    ASSIGN_OR_RETURN(pki::EvpPkeyPtr pkey, pki::GenerateKey(*key.generate));
    ASSIGN_OR_RETURN(t->public_key_der, pki::PublicKeyToDer(pkey.get()));
    ASSIGN_OR_RETURN(std::string pkcs8, pki::PrivateKeyToDer(pkey.get()));
    out.private_key_pem = pki::DerToPem(pkcs8, "PRIVATE KEY");
    key_algorithm = pki::KeyAlgorithmName(*key.generate);
  } else {
    if (key.csr_pem.empty()) {
      return Invalid("key", "set csr_pem or generate_key_algorithm");
    }
    // The CSR proves possession of the key; its subject and extensions are ignored (the
    // identity's name and role make the certificate).
    ASSIGN_OR_RETURN(pki::ParsedCsr csr, pki::ParseCsr("csr_pem", key.csr_pem, true));
    t->public_key_der = std::move(csr.public_key_der);
    key_algorithm = pki::KeyAlgorithmName(csr.key_algorithm);
  }
  ASSIGN_OR_RETURN(*issuer, ca_.Active(storage::IssuerPurpose::kOperators));
  const absl::Time now = absl::Now();
  t->profile = pki::CertificateProfile::kClient;
  t->serial = pki::RandomSerial();
  t->subject.common_name = name;
  t->uris = {RoleUri(role, name)};
  t->not_before = now - kBackdate;
  t->not_after = std::min(now + validity, (*issuer)->row.not_after.value_or(now + validity));
  if (t->not_after <= now) {
    return absl::FailedPreconditionError(
        absl::StrCat("issuer ", (*issuer)->row.id, " expires now: rotate it"));
  }
  t->crl_url = ca_.CrlUrl((*issuer)->row.id);
  t->ca_issuers_url = ca_.CaIssuersUrl((*issuer)->row.id);
  record->serial = t->serial;
  record->issuer_id = (*issuer)->row.id;
  record->kind = storage::CertificateKind::kIdentity;
  record->identity_name = name;
  record->subject = absl::StrCat("CN=", name);
  record->key_algorithm = key_algorithm;
  record->profile = "identity";
  record->not_before = t->not_before;
  record->not_after = t->not_after;
  return out;
}

absl::StatusOr<IssuedIdentity> Identities::Issue(const std::string& name, auth::Role role,
                                                 const std::string& display_name,
                                                 const KeySource& key, absl::Duration validity,
                                                 const RequestContext& ctx) {
  RETURN_IF_ERROR(ValidateIdentityName("name", name));
  if (role == auth::Role::kDevice) {
    return Invalid("role", "DEVICE is not issued: devices call with their device certificates");
  }
  RETURN_IF_ERROR(registry::ValidateFreeText("display_name", display_name, 256));
  if (role == auth::Role::kBroker) {
    auto broker = brokers_.Get(name);
    if (absl::IsNotFound(broker.status())) {
      return absl::FailedPreconditionError(absl::StrCat(
          "name: a BROKER identity must be named after a registered broker; \"", name,
          "\" is not one (RegisterBroker first)"));
    }
    RETURN_IF_ERROR(broker.status());
  }
  storage::CertificateRecord record;
  pki::CertificateTemplate t;
  std::shared_ptr<const ca::ActiveIssuer> issuer;
  ASSIGN_OR_RETURN(IssuedIdentity out, Sign(name, role, key, validity, &record, &t, &issuer));
  storage::IdentityRecord identity;
  identity.name = name;
  identity.role = DbRoleName(role);
  identity.description = display_name;
  std::string der;
  auto sign = [&]() -> absl::StatusOr<std::string> {
    ASSIGN_OR_RETURN(der, pki::BuildCertificateDer(t, issuer->certificate.get(), ca_.key_store(),
                                                   issuer->row.id));
    return der;
  };
  ASSIGN_OR_RETURN(out.identity, store_.Create(identity, record, sign, ctx, &out.certificate));
  out.certificate_pem = pki::DerToPem(der, "CERTIFICATE");
  out.chain_pem = issuer->chain_pem;
  return out;
}

absl::StatusOr<IssuedIdentity> Identities::Renew(const std::string& name, const KeySource& key,
                                                 absl::Duration validity, bool revoke_previous,
                                                 const RequestContext& ctx) {
  RETURN_IF_ERROR(ValidateIdentityName("name", name));
  ASSIGN_OR_RETURN(storage::IdentityRecord identity, store_.Get(name));
  auto role = RoleFromDb(identity.role);
  if (!role.has_value()) return absl::InternalError("identity with an unknown role");
  if (identity.status != "active") {
    return absl::FailedPreconditionError(absl::StrCat("identity \"", name, "\" is revoked"));
  }
  storage::CertificateRecord record;
  pki::CertificateTemplate t;
  std::shared_ptr<const ca::ActiveIssuer> issuer;
  ASSIGN_OR_RETURN(IssuedIdentity out, Sign(name, *role, key, validity, &record, &t, &issuer));
  std::string der;
  auto sign = [&]() -> absl::StatusOr<std::string> {
    ASSIGN_OR_RETURN(der, pki::BuildCertificateDer(t, issuer->certificate.get(), ca_.key_store(),
                                                   issuer->row.id));
    return der;
  };
  std::vector<std::string> revoked_serials_hex;
  ASSIGN_OR_RETURN(out.certificate, store_.AddCertificate(name, record, sign, revoke_previous,
                                                          ctx, &revoked_serials_hex));
  if (authenticator_ != nullptr && !revoked_serials_hex.empty()) {
    authenticator_->MarkRevoked("", revoked_serials_hex);
  }
  out.identity = identity;
  out.certificate_pem = pki::DerToPem(out.certificate.der, "CERTIFICATE");
  out.chain_pem = issuer->chain_pem;
  return out;
}

absl::StatusOr<storage::IdentityRecord> Identities::Get(const std::string& name) {
  RETURN_IF_ERROR(ValidateIdentityName("name", name));
  return store_.Get(name);
}

absl::StatusOr<IdentityPage> Identities::List(const storage::IdentityFilter& filter,
                                              int page_size, const std::string& page_token) {
  ASSIGN_OR_RETURN(int limit, PageSize(page_size));
  const std::string filters = absl::StrCat(filter.role, "|", filter.status);
  ASSIGN_OR_RETURN(std::string after, DecodePageToken("identities", filters, page_token));
  ASSIGN_OR_RETURN(std::vector<storage::IdentityRecord> rows,
                   store_.List(filter, after, limit + 1));
  IdentityPage page;
  if (static_cast<int>(rows.size()) > limit) {
    rows.resize(limit);
    page.next_page_token = EncodePageToken("identities", filters, rows.back().name);
  }
  page.identities = std::move(rows);
  return page;
}

absl::StatusOr<storage::RevokeIdentityResult> Identities::Revoke(const std::string& name,
                                                                 int reason,
                                                                 const std::string& comment,
                                                                 const RequestContext& ctx) {
  RETURN_IF_ERROR(ValidateIdentityName("name", name));
  RETURN_IF_ERROR(registry::ValidateFreeText("comment", comment, 256));
  ASSIGN_OR_RETURN(storage::RevokeIdentityResult result, store_.Revoke(name, reason, comment, ctx));
  if (authenticator_ != nullptr) {
    std::vector<std::string> serials;
    for (const std::string& s : result.revoked_serials) serials.push_back(pki::SerialToHex(s));
    authenticator_->MarkRevoked(name, serials);
  }
  return result;
}

}  // namespace fleetca::identity
