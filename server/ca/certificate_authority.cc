#include "server/ca/certificate_authority.h"

#include <algorithm>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "pki/csr.h"

namespace fleetca::ca {
namespace {

using storage::Issuer;
using storage::IssuerPurpose;
using storage::IssuerState;

constexpr absl::Duration kCacheTtl = absl::Seconds(10);
// Certificates start a little in the past so that clients with a slow clock accept them.
constexpr absl::Duration kBackdate = absl::Minutes(5);

constexpr IssuerPurpose kIntermediatePurposes[] = {IssuerPurpose::kDevices, IssuerPurpose::kBrokers,
                                                   IssuerPurpose::kOperators};

// NextId returns "<purpose>-<n>" with n one more than the issuers of that purpose so far.
std::string NextId(const std::vector<Issuer>& existing, IssuerPurpose purpose) {
  int n = 0;
  for (const Issuer& i : existing) {
    if (i.purpose == purpose) ++n;
  }
  return absl::StrCat(storage::IssuerPurposeName(purpose), "-", n + 1);
}

const Issuer* FindActive(const std::vector<Issuer>& issuers, IssuerPurpose purpose) {
  for (const Issuer& i : issuers) {
    if (i.purpose == purpose && i.state == IssuerState::kActive) return &i;
  }
  return nullptr;
}

const Issuer* FindPending(const std::vector<Issuer>& issuers, IssuerPurpose purpose) {
  for (const Issuer& i : issuers) {
    if (i.purpose == purpose && i.state == IssuerState::kPending) return &i;
  }
  return nullptr;
}

pki::SubjectName SubjectFor(const pki::SubjectName& base, IssuerPurpose purpose) {
  pki::SubjectName s = base;
  s.common_name = absl::StrCat(base.common_name, " ", PurposeTitle(purpose), " CA");
  return s;
}

absl::Status ValidateSubject(const pki::SubjectName& s) {
  auto check = [](absl::string_view field, const std::string& v, size_t max) -> absl::Status {
    if (v.size() > max) {
      return absl::InvalidArgumentError(absl::StrCat(field, ": at most ", max, " bytes"));
    }
    for (char c : v) {
      const auto u = static_cast<unsigned char>(c);
      if (u < 0x20 || u == 0x7f) {
        return absl::InvalidArgumentError(absl::StrCat(field, ": control characters are not allowed"));
      }
    }
    return absl::OkStatus();
  };
  if (s.common_name.empty()) return absl::InvalidArgumentError("subject.common_name: is required");
  RETURN_IF_ERROR(check("subject.common_name", s.common_name, 48));
  RETURN_IF_ERROR(check("subject.organization", s.organization, 64));
  RETURN_IF_ERROR(check("subject.organizational_unit", s.organizational_unit, 64));
  if (!s.country.empty() &&
      (s.country.size() != 2 || !absl::ascii_isupper(s.country[0]) || !absl::ascii_isupper(s.country[1]))) {
    return absl::InvalidArgumentError("subject.country: two capital letters (ISO 3166), e.g. FR");
  }
  return absl::OkStatus();
}

// A new issuer, before it is stored: its row and its key (kept apart from the shared KeyStore
// until the row is committed, so a lost race leaves nothing behind).
struct NewIssuer {
  Issuer row;
  pki::EvpPkeyPtr key;
};

// AddCopy puts a new reference to key into store under id.
void AddCopy(pki::SoftwareKeyStore& store, const std::string& id, EVP_PKEY* key) {
  EVP_PKEY_up_ref(key);
  store.Add(id, pki::EvpPkeyPtr(key));
}

// FillFromCertificate sets a row's certificate, subject and validity from cert.
absl::Status FillFromCertificate(const X509* cert, Issuer* row) {
  ASSIGN_OR_RETURN(row->certificate_der, pki::CertificateToDer(cert));
  ASSIGN_OR_RETURN(pki::CertificateInfo info, pki::InspectCertificate(cert));
  row->subject = info.subject;
  row->not_before = info.not_before;
  row->not_after = info.not_after;
  return absl::OkStatus();
}

// SplitDer splits concatenated DER certificates (an issuer's stored chain_der).
absl::StatusOr<std::vector<std::string>> SplitDer(const std::string& ders) {
  std::vector<std::string> out;
  const unsigned char* p = reinterpret_cast<const unsigned char*>(ders.data());
  const unsigned char* end = p + ders.size();
  while (p < end) {
    const unsigned char* start = p;
    pki::X509Ptr c(d2i_X509(nullptr, &p, end - p));
    if (c == nullptr) return pki::OpenSslError("stored issuer chain");
    out.emplace_back(reinterpret_cast<const char*>(start), static_cast<size_t>(p - start));
  }
  return out;
}

}  // namespace

const char* PurposeTitle(IssuerPurpose purpose) {
  switch (purpose) {
    case IssuerPurpose::kRoot:
      return "Root";
    case IssuerPurpose::kDevices:
      return "Devices";
    case IssuerPurpose::kBrokers:
      return "Brokers";
    case IssuerPurpose::kOperators:
      return "Operators";
  }
  return "";
}

std::string CertificateAuthority::CrlUrl(const std::string& issuer_id) const {
  return absl::StrCat(config_.public_base_url, "/crl/", issuer_id, ".crl");
}

std::string CertificateAuthority::DeltaCrlUrl(const std::string& issuer_id) const {
  return absl::StrCat(config_.public_base_url, "/crl/delta/", issuer_id, ".crl");
}

std::string CertificateAuthority::CaIssuersUrl(const std::string& issuer_id) const {
  return absl::StrCat(config_.public_base_url, "/ca/", issuer_id, ".crt");
}

absl::Status CertificateAuthority::EnsureKeyLoaded(const Issuer& issuer) {
  if (keys_.HasKey(issuer.id)) return absl::OkStatus();
  if (issuer.key_ciphertext.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("issuer \"", issuer.id, "\" has no private key held by fleetca"));
  }
  absl::Status st = keys_.AddWrapped(issuer.id, issuer.kek_id, issuer.key_ciphertext, ring_);
  if (!st.ok()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot unwrap the private key of issuer \"", issuer.id, "\" (wrapped under KEK \"",
        issuer.kek_id, "\"): ", st.message(),
        ". Configure that KEK (FLEETCA_KEK / --kek_file), or the KEK it was re-wrapped with"));
  }
  if (!issuer.certificate_der.empty()) {
    ASSIGN_OR_RETURN(pki::X509Ptr cert, pki::CertificateFromDer(issuer.certificate_der));
    if (absl::Status match = keys_.CheckMatches(issuer.id, cert.get()); !match.ok()) {
      keys_.Remove(issuer.id);
      return match;
    }
  }
  return absl::OkStatus();
}

absl::Status CertificateAuthority::LoadKeys() {
  ASSIGN_OR_RETURN(std::vector<Issuer> issuers, ListIssuers());
  for (const Issuer& i : issuers) {
    if (i.key_ciphertext.empty() || i.state == IssuerState::kRetired) continue;
    RETURN_IF_ERROR(EnsureKeyLoaded(i));
  }
  return absl::OkStatus();
}

void CertificateAuthority::InvalidateCache() {
  absl::MutexLock lock(&mu_);
  cache_.clear();
}

absl::StatusOr<std::vector<Issuer>> CertificateAuthority::ListIssuers() { return store_.List(); }

absl::StatusOr<Issuer> CertificateAuthority::GetIssuer(const std::string& id) {
  return store_.Get(id);
}

absl::StatusOr<InitResult> CertificateAuthority::Initialize(const InitOptions& options,
                                                            const RequestContext& ctx) {
  RETURN_IF_ERROR(ValidateSubject(options.subject));
  if (options.root_validity <= absl::ZeroDuration() ||
      options.intermediate_validity <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("validity: must be positive");
  }
  std::vector<IssuerPurpose> purposes = options.purposes;
  if (purposes.empty()) purposes.assign(std::begin(kIntermediatePurposes), std::end(kIntermediatePurposes));
  for (IssuerPurpose p : purposes) {
    if (p == IssuerPurpose::kRoot) {
      return absl::InvalidArgumentError("purposes: list intermediates only; the root is implied");
    }
  }

  ASSIGN_OR_RETURN(std::vector<Issuer> existing, store_.List());
  const absl::Time now = absl::Now();
  pki::SoftwareKeyStore local;  // signs with the keys made here until they are committed
  std::vector<NewIssuer> created;

  // 1. The root (unless it is kept offline).
  const Issuer* root = FindActive(existing, IssuerPurpose::kRoot);
  pki::X509Ptr root_cert;
  std::string root_id;
  absl::Time root_not_after;
  if (options.offline_root) {
    if (root != nullptr && !root->key_ciphertext.empty()) {
      return absl::FailedPreconditionError(
          "offline_root: this CA already has its own root (" + root->id + "); offline mode is "
          "for a hierarchy whose root is kept elsewhere");
    }
  } else if (root != nullptr && root->key_ciphertext.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the root (", root->id, ") is kept offline: fleetca holds no key to sign intermediates "
        "with. Use offline_root (CSRs for the missing intermediates), or CreateIntermediateCsr"));
  } else if (root != nullptr) {
    ASSIGN_OR_RETURN(root_cert, pki::CertificateFromDer(root->certificate_der));
    root_id = root->id;
    root_not_after = root->not_after.value_or(now);
    RETURN_IF_ERROR(EnsureKeyLoaded(*root));
  } else {
    NewIssuer r;
    r.row.id = NextId(existing, IssuerPurpose::kRoot);
    r.row.purpose = IssuerPurpose::kRoot;
    r.row.state = IssuerState::kActive;
    r.row.algorithm = pki::KeyAlgorithmName(options.root_algorithm);
    ASSIGN_OR_RETURN(r.key, pki::GenerateKey(options.root_algorithm));
    pki::CertificateTemplate t;
    t.profile = pki::CertificateProfile::kRootCa;
    t.serial = pki::RandomSerial();
    t.subject = SubjectFor(options.subject, IssuerPurpose::kRoot);
    t.not_before = now - kBackdate;
    t.not_after = now + options.root_validity;
    t.public_key = r.key.get();
    AddCopy(local, r.row.id, r.key.get());
    ASSIGN_OR_RETURN(root_cert, pki::BuildCertificate(t, nullptr, local, r.row.id));
    RETURN_IF_ERROR(FillFromCertificate(root_cert.get(), &r.row));
    ASSIGN_OR_RETURN(r.row.key_ciphertext, pki::WrapPrivateKey(r.key.get(), r.row.id, ring_));
    r.row.kek_id = ring_.current().id();
    root_id = r.row.id;
    root_not_after = *r.row.not_after;
    existing.push_back(r.row);
    created.push_back(std::move(r));
  }

  // 2. The intermediates still missing.
  for (IssuerPurpose purpose : purposes) {
    if (FindActive(existing, purpose) != nullptr) continue;
    if (options.offline_root && FindPending(existing, purpose) != nullptr) continue;
    NewIssuer n;
    n.row.id = NextId(existing, purpose);
    n.row.purpose = purpose;
    n.row.algorithm = pki::KeyAlgorithmName(options.intermediate_algorithm);
    ASSIGN_OR_RETURN(n.key, pki::GenerateKey(options.intermediate_algorithm));
    const pki::SubjectName subject = SubjectFor(options.subject, purpose);
    if (options.offline_root) {
      n.row.state = IssuerState::kPending;
      AddCopy(local, n.row.id, n.key.get());
      ASSIGN_OR_RETURN(pki::X509ReqPtr csr, pki::BuildCsr(subject, n.key.get(), local, n.row.id));
      ASSIGN_OR_RETURN(n.row.csr_der, pki::CsrToDer(csr.get()));
      n.row.subject = pki::NameToString(X509_REQ_get_subject_name(csr.get()));
    } else {
      n.row.state = IssuerState::kActive;
      n.row.parent_id = root_id;
      pki::CertificateTemplate t;
      t.profile = pki::CertificateProfile::kIntermediateCa;
      t.serial = pki::RandomSerial();
      t.subject = subject;
      t.not_before = now - kBackdate;
      t.not_after = std::min(now + options.intermediate_validity, root_not_after);
      t.public_key = n.key.get();
      t.crl_url = CrlUrl(root_id);
      t.ca_issuers_url = CaIssuersUrl(root_id);
      // A root made by this call signs from the local store; an existing one from the shared
      // store, where its key is loaded.
      pki::KeyStore& signer = local.HasKey(root_id) ? static_cast<pki::KeyStore&>(local) : keys_;
      ASSIGN_OR_RETURN(pki::X509Ptr cert, pki::BuildCertificate(t, root_cert.get(), signer, root_id));
      RETURN_IF_ERROR(FillFromCertificate(cert.get(), &n.row));
    }
    ASSIGN_OR_RETURN(n.row.key_ciphertext, pki::WrapPrivateKey(n.key.get(), n.row.id, ring_));
    n.row.kek_id = ring_.current().id();
    existing.push_back(n.row);
    created.push_back(std::move(n));
  }

  // 3. Store them all at once. A concurrent initialisation that got there first makes this
  // fail with ALREADY_EXISTS: then its hierarchy is the one, and this call created nothing.
  InitResult result;
  if (!created.empty()) {
    std::vector<Issuer> rows;
    for (const NewIssuer& n : created) rows.push_back(n.row);
    absl::Status st = store_.CreateAll(rows, ctx);
    if (st.code() == absl::StatusCode::kAlreadyExists) {
      created.clear();
    } else if (!st.ok()) {
      return st;
    }
    for (NewIssuer& n : created) {
      result.created.push_back(n.row.id);
      keys_.Add(n.row.id, std::move(n.key));
    }
    InvalidateCache();
  }
  ASSIGN_OR_RETURN(result.issuers, store_.List());
  return result;
}

absl::StatusOr<std::string> CertificateAuthority::ChainPem(const Issuer& issuer) {
  if (issuer.certificate_der.empty()) return std::string();
  std::string pem = pki::DerToPem(issuer.certificate_der, "CERTIFICATE");
  // Outside intermediates between this issuer and its root, imported with it.
  ASSIGN_OR_RETURN(std::vector<std::string> between, SplitDer(issuer.chain_der));
  for (const std::string& der : between) pem += pki::DerToPem(der, "CERTIFICATE");
  if (!issuer.parent_id.empty()) {
    ASSIGN_OR_RETURN(Issuer parent, store_.Get(issuer.parent_id));
    ASSIGN_OR_RETURN(std::string above, ChainPem(parent));
    pem += above;
  }
  return pem;
}

absl::StatusOr<std::string> CertificateAuthority::ChainAbovePem(const Issuer& issuer) {
  ASSIGN_OR_RETURN(std::string chain, ChainPem(issuer));
  static const std::string kEnd = "-----END CERTIFICATE-----\n";
  const size_t end = chain.find(kEnd);
  return end == std::string::npos ? std::string() : chain.substr(end + kEnd.size());
}

absl::StatusOr<std::shared_ptr<const ActiveIssuer>> CertificateAuthority::Active(
    IssuerPurpose purpose) {
  const absl::Time now = absl::Now();
  {
    absl::MutexLock lock(&mu_);
    auto it = cache_.find(purpose);
    if (it != cache_.end() && now - it->second.loaded < kCacheTtl) return it->second.issuer;
  }
  ASSIGN_OR_RETURN(std::vector<Issuer> issuers, store_.List());
  const Issuer* row = FindActive(issuers, purpose);
  if (row == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat(
        "no active ", storage::IssuerPurposeName(purpose),
        " CA: initialise the CA first (fleetca-server init, or InitializeHierarchy)"));
  }
  RETURN_IF_ERROR(EnsureKeyLoaded(*row));
  auto active = std::make_shared<ActiveIssuer>();
  active->row = *row;
  ASSIGN_OR_RETURN(active->certificate, pki::CertificateFromDer(row->certificate_der));
  active->certificate_pem = pki::DerToPem(row->certificate_der, "CERTIFICATE");
  ASSIGN_OR_RETURN(active->chain_pem, ChainPem(*row));
  absl::MutexLock lock(&mu_);
  cache_[purpose] = {active, now};
  return std::shared_ptr<const ActiveIssuer>(active);
}

absl::StatusOr<std::string> CertificateAuthority::TrustBundle(
    BundleScope scope, std::vector<std::string>* ids, std::vector<BundleCertificate>* certificates) {
  ASSIGN_OR_RETURN(std::vector<Issuer> issuers, store_.List());
  const absl::Time now = absl::Now();
  auto wanted = [scope](IssuerPurpose p) {
    switch (scope) {
      case BundleScope::kAll:
        return true;
      case BundleScope::kClientAuth:
        return p != IssuerPurpose::kBrokers;
      case BundleScope::kServerAuth:
        return p == IssuerPurpose::kRoot || p == IssuerPurpose::kBrokers;
    }
    return true;
  };
  std::string roots, intermediates;
  std::vector<std::string> root_ids;
  std::vector<BundleCertificate> root_certificates, intermediate_certificates;
  std::set<std::string> seen;  // DER, so a certificate appears once
  for (const Issuer& i : issuers) {
    if (i.certificate_der.empty() || !wanted(i.purpose)) continue;
    if (i.not_after.has_value() && *i.not_after <= now) continue;
    // The issuer's own certificate and the outside intermediates imported with it; every
    // root, offline ones included, is an issuer row of its own.
    ASSIGN_OR_RETURN(std::vector<std::string> ders, SplitDer(i.chain_der));
    ders.insert(ders.begin(), i.certificate_der);
    for (size_t n = 0; n < ders.size(); ++n) {
      const std::string& der = ders[n];
      if (!seen.insert(der).second) continue;
      const bool root = i.purpose == IssuerPurpose::kRoot;
      (root ? roots : intermediates) += pki::DerToPem(der, "CERTIFICATE");
      (root ? root_certificates : intermediate_certificates)
          .push_back({n == 0 ? i.id : absl::StrCat(i.id, "-chain-", n), der});
    }
    if (ids != nullptr) (i.purpose == IssuerPurpose::kRoot ? root_ids : *ids).push_back(i.id);
  }
  if (roots.empty() && intermediates.empty()) {
    return absl::FailedPreconditionError(
        "the CA has no certificates yet: initialise it first (fleetca-server init)");
  }
  // Customer CAs trusted for devices, after fleetca's own.
  std::string external;
  std::vector<std::string> external_ids;
  std::vector<BundleCertificate> external_certificates;
  if (external_cas_ != nullptr && scope != BundleScope::kServerAuth) {
    ASSIGN_OR_RETURN(std::vector<storage::ExternalCa> cas, storage::AllExternalCas(*external_cas_));
    for (const storage::ExternalCa& ca : cas) {
      if (!ca.enabled || ca.not_after <= now || !seen.insert(ca.certificate_der).second) continue;
      external += pki::DerToPem(ca.certificate_der, "CERTIFICATE");
      external_ids.push_back(ca.id);
      external_certificates.push_back({ca.id, ca.certificate_der});
    }
  }
  // Intermediates first, roots last (the order of a TLS chain, and of the API contract).
  if (ids != nullptr) {
    ids->insert(ids->end(), root_ids.begin(), root_ids.end());
    ids->insert(ids->end(), external_ids.begin(), external_ids.end());
  }
  if (certificates != nullptr) {
    *certificates = std::move(intermediate_certificates);
    certificates->insert(certificates->end(), root_certificates.begin(), root_certificates.end());
    certificates->insert(certificates->end(), external_certificates.begin(),
                         external_certificates.end());
  }
  return intermediates + roots + external;
}

absl::StatusOr<Issuer> CertificateAuthority::CreateIntermediateCsr(IssuerPurpose purpose,
                                                                  pki::KeyAlgorithm algorithm,
                                                                  const pki::SubjectName& subject,
                                                                  const RequestContext& ctx) {
  if (purpose == IssuerPurpose::kRoot) {
    return absl::InvalidArgumentError("purpose: must be an intermediate purpose");
  }
  pki::SubjectName name = subject;
  RETURN_IF_ERROR(ValidateSubject(name));
  ASSIGN_OR_RETURN(std::vector<Issuer> existing, store_.List());
  Issuer row;
  row.id = NextId(existing, purpose);
  row.purpose = purpose;
  row.state = IssuerState::kPending;
  row.algorithm = pki::KeyAlgorithmName(algorithm);
  ASSIGN_OR_RETURN(pki::EvpPkeyPtr key, pki::GenerateKey(algorithm));
  pki::SoftwareKeyStore local;
  AddCopy(local, row.id, key.get());
  ASSIGN_OR_RETURN(pki::X509ReqPtr csr, pki::BuildCsr(name, key.get(), local, row.id));
  ASSIGN_OR_RETURN(row.csr_der, pki::CsrToDer(csr.get()));
  row.subject = pki::NameToString(X509_REQ_get_subject_name(csr.get()));
  ASSIGN_OR_RETURN(row.key_ciphertext, pki::WrapPrivateKey(key.get(), row.id, ring_));
  row.kek_id = ring_.current().id();
  RETURN_IF_ERROR(store_.CreateAll({row}, ctx));
  keys_.Add(row.id, std::move(key));
  return store_.Get(row.id);
}

absl::Status CertificateAuthority::VerifyCaCertificate(const X509* cert,
                                                      const std::string& chain_pem,
                                                      std::string* chain_der,
                                                      std::string* parent_id,
                                                      std::optional<Issuer>* new_root) {
  ASSIGN_OR_RETURN(pki::CertificateInfo info, pki::InspectCertificate(cert));
  if (!info.is_ca || !info.can_sign_certificates) {
    return absl::InvalidArgumentError(
        "certificate_pem: not a CA certificate allowed to sign certificates (basicConstraints "
        "CA:TRUE and keyUsage keyCertSign are required)");
  }
  const absl::Time now = absl::Now();
  if (info.not_before > now || info.not_after <= now) {
    return absl::InvalidArgumentError("certificate_pem: not valid now (check its notBefore/notAfter)");
  }
  std::vector<pki::X509Ptr> chain;
  if (!chain_pem.empty()) {
    auto parsed = pki::CertificatesFromPem(chain_pem);
    if (!parsed.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("chain_pem: ", parsed.status().message()));
    }
    chain = *std::move(parsed);
  }
  std::vector<const X509*> roots, intermediates;
  chain_der->clear();
  parent_id->clear();
  new_root->reset();
  std::string root_der;
  for (const auto& c : chain) {
    ASSIGN_OR_RETURN(pki::CertificateInfo ci, pki::InspectCertificate(c.get()));
    ASSIGN_OR_RETURN(std::string der, pki::CertificateToDer(c.get()));
    if (ci.subject == ci.issuer) {
      roots.push_back(c.get());
      root_der = der;
    } else {
      intermediates.push_back(c.get());
      *chain_der += der;
    }
  }
  ASSIGN_OR_RETURN(std::vector<storage::Issuer> issuers, store_.List());
  pki::X509Ptr own_root;
  if (chain.empty()) {
    // No chain given: it must have been signed by this CA's own root.
    const storage::Issuer* root = FindActive(issuers, IssuerPurpose::kRoot);
    if (root == nullptr) {
      return absl::InvalidArgumentError(
          "chain_pem: required (the self-signed root and any intermediates above the "
          "certificate): this CA has no root of its own to check it against");
    }
    ASSIGN_OR_RETURN(own_root, pki::CertificateFromDer(root->certificate_der));
    roots.push_back(own_root.get());
    *parent_id = root->id;
  } else if (roots.empty()) {
    return absl::InvalidArgumentError(
        "chain_pem: must contain the self-signed root (and any intermediates) above the "
        "certificate");
  }
  absl::Status verified = pki::VerifyChain(cert, intermediates, roots, now);
  if (!verified.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "certificate_pem: does not chain to ", chain.empty() ? "this CA's root" : "the given root",
        ": ", verified.message()));
  }
  if (!chain.empty()) {
    if (roots.size() != 1) {
      return absl::InvalidArgumentError("chain_pem: must contain exactly one self-signed root");
    }
    // The given root: an issuer already (the same certificate), or registered now, keyless.
    for (const Issuer& i : issuers) {
      if (i.purpose == IssuerPurpose::kRoot && i.certificate_der == root_der) *parent_id = i.id;
    }
    if (parent_id->empty()) {
      if (const Issuer* active = FindActive(issuers, IssuerPurpose::kRoot); active != nullptr) {
        return absl::InvalidArgumentError(absl::StrCat(
            "chain_pem: its root is not this CA's root (", active->id, ")"));
      }
      Issuer root;
      root.id = NextId(issuers, IssuerPurpose::kRoot);
      root.purpose = IssuerPurpose::kRoot;
      root.state = IssuerState::kActive;
      ASSIGN_OR_RETURN(pki::CertificateInfo ri, pki::InspectCertificate(roots[0]));
      pki::EvpPkeyPtr root_key(X509_get_pubkey(const_cast<X509*>(roots[0])));
      auto algorithm = root_key ? pki::KeyAlgorithmOf(root_key.get())
                                : absl::StatusOr<pki::KeyAlgorithm>(absl::InvalidArgumentError(""));
      if (!algorithm.ok()) {
        return absl::InvalidArgumentError("chain_pem: the root's key is not an allowed algorithm");
      }
      root.algorithm = pki::KeyAlgorithmName(*algorithm);
      root.subject = ri.subject;
      root.certificate_der = root_der;
      root.not_before = ri.not_before;
      root.not_after = ri.not_after;
      *parent_id = root.id;
      *new_root = std::move(root);
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<Issuer> CertificateAuthority::ImportIssuer(
    IssuerPurpose purpose, const std::string& certificate_pem, const std::string& chain_pem,
    const std::string& private_key_pem, const std::string& password, const RequestContext& ctx,
    std::string* retired) {
  if (purpose == IssuerPurpose::kRoot) {
    return absl::InvalidArgumentError(
        "purpose: import intermediates (devices, brokers, operators); a root is created by init "
        "or kept offline");
  }
  auto cert = pki::CertificateFromPem(certificate_pem);
  if (!cert.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("certificate_pem: ", cert.status().message()));
  }
  auto key = pki::PrivateKeyFromPem(private_key_pem, password);
  if (!key.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("private_key_pem: ", key.status().message()));
  }
  auto algorithm = pki::KeyAlgorithmOf(key->get());
  if (!algorithm.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("private_key_pem: ", algorithm.status().message()));
  }
  pki::EvpPkeyPtr cert_key(X509_get_pubkey(cert->get()));
  if (cert_key == nullptr || !pki::PublicKeysMatch(cert_key.get(), key->get())) {
    return absl::InvalidArgumentError("private_key_pem: is not the key of certificate_pem");
  }
  Issuer row;
  std::optional<Issuer> new_root;
  RETURN_IF_ERROR(
      VerifyCaCertificate(cert->get(), chain_pem, &row.chain_der, &row.parent_id, &new_root));

  ASSIGN_OR_RETURN(std::vector<Issuer> existing, store_.List());
  row.id = NextId(existing, purpose);
  row.purpose = purpose;
  row.state = IssuerState::kActive;
  row.algorithm = pki::KeyAlgorithmName(*algorithm);
  RETURN_IF_ERROR(FillFromCertificate(cert->get(), &row));
  ASSIGN_OR_RETURN(row.key_ciphertext, pki::WrapPrivateKey(key->get(), row.id, ring_));
  row.kek_id = ring_.current().id();
  ASSIGN_OR_RETURN(*retired, store_.Replace(row, new_root, ctx));
  keys_.Add(row.id, *std::move(key));
  InvalidateCache();
  return store_.Get(row.id);
}

absl::StatusOr<std::string> CertificateAuthority::ImportIntermediateCertificate(
    const std::string& issuer_id, const std::string& certificate_pem, const std::string& chain_pem,
    const RequestContext& ctx, std::string* root_id) {
  ASSIGN_OR_RETURN(Issuer issuer, store_.Get(issuer_id));
  if (issuer.state != IssuerState::kPending) {
    return absl::FailedPreconditionError(
        absl::StrCat("issuer \"", issuer_id, "\" is not pending: nothing to import"));
  }
  auto cert = pki::CertificateFromPem(certificate_pem);
  if (!cert.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("certificate_pem: ", cert.status().message()));
  }
  // Its key must be the pending key (read back from the CSR handed out).
  ASSIGN_OR_RETURN(pki::ParsedCsr csr, pki::ParseCsr("stored csr", issuer.csr_der, false));
  pki::EvpPkeyPtr cert_key(X509_get_pubkey(cert->get()));
  auto cert_spki = pki::PublicKeyToDer(cert_key.get());
  if (!cert_spki.ok() || *cert_spki != csr.public_key_der) {
    return absl::InvalidArgumentError(absl::StrCat(
        "certificate_pem: its public key is not the key of pending issuer \"", issuer_id, "\""));
  }
  std::string chain_der, parent_id;
  std::optional<Issuer> new_root;
  RETURN_IF_ERROR(VerifyCaCertificate(cert->get(), chain_pem, &chain_der, &parent_id, &new_root));
  *root_id = parent_id;
  ASSIGN_OR_RETURN(pki::CertificateInfo info, pki::InspectCertificate(cert->get()));
  ASSIGN_OR_RETURN(std::string der, pki::CertificateToDer(cert->get()));
  // Activate stores the chain given; a certificate signed by this CA's own root keeps no
  // chain of its own but a parent (ChainPem follows the root's row).
  ASSIGN_OR_RETURN(std::string retired,
                   store_.Activate(issuer_id, issuer.version, der, chain_der, parent_id,
                                   info.not_before, info.not_after, new_root, ctx));
  RETURN_IF_ERROR(EnsureKeyLoaded(issuer));
  InvalidateCache();
  return retired;
}

}  // namespace fleetca::ca
