#pragma once

// CrlPublisher builds each issuer's CRLs in the background, never on a request's path:
// a new CRL once its revocations changed (checked every round, about a second), and a
// fresh one at half its validity even when nothing changed. With several replicas one
// builds at a time (storage's builder lock); every replica serves the newest stored.

#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/ca/certificate_authority.h"
#include "storage/crl_store.h"

namespace fleetca::revocation {

class CrlPublisher {
 public:
  CrlPublisher(ca::CertificateAuthority& ca, storage::CrlStore& store, absl::Duration validity)
      : ca_(ca), store_(store), validity_(validity) {}

  // RunOnce brings every active issuer's CRL up to date (issuers whose key is not here, an
  // offline root, are skipped). Returns how many CRLs it stored.
  absl::StatusOr<int> RunOnce(absl::Time now);

  // Latest: the newest CRL of a fleetca issuer. NOT_FOUND for an unknown issuer;
  // FAILED_PRECONDITION for a pending one; UNAVAILABLE while its first CRL is not built.
  absl::StatusOr<storage::StoredCrl> Latest(const std::string& issuer_id);

 private:
  ca::CertificateAuthority& ca_;
  storage::CrlStore& store_;
  const absl::Duration validity_;
};

}  // namespace fleetca::revocation
