#include "server/revocation/crl_publisher.h"

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "pki/crl_builder.h"

namespace fleetca::revocation {

absl::StatusOr<int> CrlPublisher::RunOnce(absl::Time now) {
  ASSIGN_OR_RETURN(std::vector<storage::Issuer> issuers, ca_.ListIssuers());
  int stored = 0;
  absl::Status first_error;
  for (const storage::Issuer& issuer : issuers) {
    if (issuer.state != storage::IssuerState::kActive || issuer.certificate_der.empty()) continue;
    if (issuer.not_after.has_value() && *issuer.not_after <= now) continue;
    if (!ca_.key_store().SignatureAlgorithm(issuer.id).ok()) continue;  // no key here
    auto decide = [&](const storage::CrlWork& work) {
      if (!work.latest) return true;
      if (work.changes != work.latest->changes) return true;
      const absl::Time half =
          work.latest->this_update + (work.latest->next_update - work.latest->this_update) / 2;
      return now >= half;
    };
    auto build = [&](int64_t number, const std::vector<storage::CrlEntryRow>& rows)
        -> absl::StatusOr<storage::CrlStore::Built> {
      ASSIGN_OR_RETURN(pki::X509Ptr cert, pki::CertificateFromDer(issuer.certificate_der));
      pki::CrlTemplate t;
      t.crl_number = static_cast<uint64_t>(number);
      t.this_update = absl::FromUnixSeconds(absl::ToUnixSeconds(now));
      t.next_update = t.this_update + validity_;
      t.entries.reserve(rows.size());
      for (const storage::CrlEntryRow& r : rows) {
        t.entries.push_back({r.serial, r.revocation_date, r.reason, r.invalidity_date});
      }
      storage::CrlStore::Built built;
      ASSIGN_OR_RETURN(built.der, pki::BuildCrlDer(t, cert.get(), ca_.key_store(), issuer.id));
      built.this_update = t.this_update;
      built.next_update = t.next_update;
      return built;
    };
    auto done = store_.BuildIfNeeded(issuer.id, decide, build);
    if (!done.ok()) {
      if (first_error.ok()) first_error = done.status();
      continue;
    }
    if (*done) ++stored;
  }
  if (!first_error.ok()) return first_error;
  return stored;
}

absl::StatusOr<storage::StoredCrl> CrlPublisher::Latest(const std::string& issuer_id) {
  ASSIGN_OR_RETURN(storage::Issuer issuer, ca_.GetIssuer(issuer_id));
  if (issuer.state == storage::IssuerState::kPending) {
    return absl::FailedPreconditionError(
        absl::StrCat("issuer_id: \"", issuer_id, "\" is pending: it has no CRL"));
  }
  auto crl = store_.Latest(issuer_id);
  if (crl.status().code() == absl::StatusCode::kNotFound) {
    return absl::UnavailableError(
        absl::StrCat("the first CRL of \"", issuer_id, "\" is not built yet: retry shortly"));
  }
  return crl;
}

}  // namespace fleetca::revocation
