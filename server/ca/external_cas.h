#pragma once

// ExternalCas: customer PKIs. Registers a customer's root or intermediate CA certificate as
// trusted for device certificates (verify-only: fleetca holds no key for it), registers
// device certificates it issued into the inventory, and imports its CRLs. Checks every
// input (the certificate is a CA, the device certificate chains to an enabled external CA,
// its CN is the comm-ID, the CRL's signature...) before storage::ExternalCaStore commits.

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/request_context.h"
#include "server/ca/certificate_authority.h"
#include "storage/external_ca_store.h"

namespace fleetca::ca {

struct ExternalCaPage {
  std::vector<storage::ExternalCa> cas;
  std::string next_page_token;
};

// A device certificate to register: PEM or DER, with the intermediates between it and the
// external CA (PEM, nearest first; may be empty).
struct ExternalCertificateInput {
  std::string comm_id;
  std::optional<std::string> certificate_pem;
  std::optional<std::string> certificate_der;
  std::string chain_pem;
};

// A customer CRL to import: PEM or DER.
struct CrlInput {
  std::optional<std::string> crl_pem;
  std::optional<std::string> crl_der;
};

struct CrlImport {
  storage::ImportedCrl crl;
  storage::ImportCrlOutcome outcome;
};

class ExternalCas {
 public:
  // Both borrowed; they must outlive this.
  ExternalCas(storage::ExternalCaStore& store, CertificateAuthority& ca) : store_(store), ca_(ca) {}

  // Register: INVALID_ARGUMENT (external_ca_id) for a malformed or reserved id,
  // (display_name) for bad text, (certificate_pem) when it is not one CA certificate
  // (basicConstraints CA:TRUE, keyUsage keyCertSign or no keyUsage), is outside its
  // validity, or is one of fleetca's own issuers; ALREADY_EXISTS (the store's).
  absl::StatusOr<storage::ExternalCa> Register(const std::string& id, const std::string& display_name,
                                               const std::string& certificate_pem,
                                               bool accept_unregistered, const RequestContext& ctx);
  absl::StatusOr<storage::ExternalCa> Get(const std::string& id);
  absl::StatusOr<ExternalCaPage> List(int page_size, const std::string& page_token);
  // Update: fields names the fields of `update` to apply ("display_name", "enabled",
  // "accept_unregistered_certificates"); INVALID_ARGUMENT (update_mask) when empty or
  // unknown. etag "" for none.
  absl::StatusOr<storage::ExternalCa> Update(const std::string& id,
                                             const std::vector<std::string>& fields,
                                             const storage::ExternalCaUpdate& update,
                                             const std::string& etag, const RequestContext& ctx);
  absl::Status Delete(const std::string& id, const std::string& etag, const RequestContext& ctx);

  // RegisterCertificate: see IssuanceService.RegisterExternalCertificate.
  absl::StatusOr<storage::RegisteredCertificate> RegisterCertificate(
      const ExternalCertificateInput& input, const RequestContext& ctx);

  // ImportCrl: see RevocationService.ImportCrl.
  absl::StatusOr<CrlImport> ImportCrl(const std::string& id, const CrlInput& input,
                                      const RequestContext& ctx);

  // ImportedCrl: the last CRL imported for the CA; NOT_FOUND when none (or no such CA).
  absl::StatusOr<storage::ImportedCrl> ImportedCrl(const std::string& id) {
    return store_.GetImportedCrl(id);
  }

  // ValidateId: 1 to 63 characters of [a-z0-9-] starting with a letter, not of the forms
  // fleetca's issuers and trust-bundle aliases use ("<purpose>-<n>", "...-chain-<n>").
  static absl::Status ValidateId(absl::string_view field, absl::string_view id);

 private:

  storage::ExternalCaStore& store_;
  CertificateAuthority& ca_;
};

}  // namespace fleetca::ca
