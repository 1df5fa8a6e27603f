#pragma once

// Issuance: device and broker certificates from CSRs, with every check the issue lists,
// each failing with a precise code and a message naming the field; and the certificate
// inventory. Flow of a signing (numbered in issuance.cc):
//   request fields -> profile and validity -> CSR intake (pki::ParseCsr: size, parse, proof
//   of possession, key policy) -> subject rules (CN == comm-ID; SANs within a broker's
//   allow-list) -> active issuer -> one transaction in the CertificateStore (subject still
//   registered and active, retries told apart, signature, row and audit entry) -> commit ->
//   reply.

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/request_context.h"
#include "server/ca/certificate_authority.h"
#include "storage/broker_store.h"
#include "storage/certificate_store.h"

namespace fleetca::issuance {

struct Profile {
  std::string name;
  storage::CertificateKind kind = storage::CertificateKind::kDevice;
  bool is_default = false;
  std::string description;
  absl::Duration default_validity;
  absl::Duration max_validity;
  std::string organization;         // subject O of issued certificates ("" for none)
  std::string organizational_unit;  // subject OU
};

// DefaultProfiles: "device" (client, 1 year, at most 5), "broker" (server, 1 year, at most
// 825 days, the CA/Browser limit brokers' TLS clients may apply).
std::vector<Profile> DefaultProfiles(const std::string& organization);

struct SignRequest {
  std::string subject_id;  // the comm-ID (device) or broker id (broker)
  std::string csr;         // PEM text or DER bytes
  bool csr_is_pem = true;
  std::string csr_field = "csr_pem";  // the request field the CSR came in, for messages
  std::string profile;                // "" for the kind's default
  absl::Duration validity;            // zero for the profile's default
  std::string request_id;             // required: retries with it get the same certificate
  std::vector<std::string> dns_names;     // broker: requested names (default: allow-list)
  std::vector<std::string> ip_addresses;  // broker: requested addresses
  std::string renew_from_serial;          // device renewal: the previous serial, bytes
};

struct IssuedCertificate {
  storage::CertificateRecord record;
  std::string certificate_pem;
  std::string chain_pem;  // the issuer and the certificates above it, root included
  bool replayed = false;
};

struct ListCertificatesQuery {
  storage::CertificateFilter filter;
  int page_size = 0;
  std::string page_token;
};

struct ListCertificatesPage {
  std::vector<storage::CertificateRecord> certificates;
  std::string next_page_token;
};

class Issuance {
 public:
  // Borrowed references; they must outlive this object.
  Issuance(ca::CertificateAuthority& ca, storage::CertificateStore& certificates,
           storage::BrokerStore& brokers, std::vector<Profile> profiles)
      : ca_(ca), certificates_(certificates), brokers_(brokers), profiles_(std::move(profiles)) {}

  // SignDeviceCsrAsync: INVALID_ARGUMENT (field named) for a bad request or CSR, including
  // a CN that is not exactly the comm-ID or a SAN; NOT_FOUND for an unregistered device;
  // FAILED_PRECONDITION for a device not active or no active devices CA; ALREADY_EXISTS
  // when the request id was used for another request. A retry returns the same certificate
  // with replayed = true. No thread waits: the request is checked and its CSR verified on
  // the caller's thread; done gets the answer (on the store's thread once the certificate
  // is committed, or at once for a request refused before the database).
  void SignDeviceCsrAsync(const SignRequest& request, const RequestContext& ctx,
                          std::function<void(absl::StatusOr<IssuedCertificate>)> done);

  // SignBrokerCsr: as above for a registered broker; the certificate carries the requested
  // DNS names and IP addresses (default: the broker's whole allow-list), each of which must
  // be allowed for the broker (INVALID_ARGUMENT naming the name otherwise).
  absl::StatusOr<IssuedCertificate> SignBrokerCsr(const SignRequest& request,
                                                  const RequestContext& ctx);

  // RenewDeviceCertificate: a new certificate for the comm-ID of a previous one that is
  // issued (not revoked or on hold) and not expired, linked to it (renewed_from).
  absl::StatusOr<IssuedCertificate> RenewDeviceCertificate(const SignRequest& request,
                                                           const RequestContext& ctx);

  // GetCertificate by serial or SHA-256 fingerprint (bytes). NOT_FOUND when unknown.
  // GetBySerial: issuer_id ("" for any) narrows a serial external CAs may share.
  absl::StatusOr<IssuedCertificate> GetBySerial(const std::string& serial,
                                                const std::string& issuer_id = "");
  absl::StatusOr<IssuedCertificate> GetByFingerprint(const std::string& fingerprint);

  absl::StatusOr<ListCertificatesPage> List(const ListCertificatesQuery& query);

  const std::vector<Profile>& profiles() const { return profiles_; }

 private:
  // Complete adds the PEM and chain; `signer` (when it issued the record) spares a database
  // read of the chain.
  absl::StatusOr<IssuedCertificate> Complete(storage::CertificateRecord record, bool replayed,
                                             const ca::ActiveIssuer* signer = nullptr);
  absl::StatusOr<IssuedCertificate> Sign(storage::CertificateKind kind, const SignRequest& request,
                                         const RequestContext& ctx);
  // A signing request checked and ready for the store: steps 1 to 5 of issuance.cc.
  struct Prepared {
    storage::CertificateKind kind = storage::CertificateKind::kDevice;
    std::string request_id;
    storage::CertificateRecord record;
    std::shared_ptr<const ca::ActiveIssuer> issuer;
    storage::CertificateStore::SignFn sign;  // builds and signs the DER
  };
  absl::StatusOr<Prepared> Prepare(storage::CertificateKind kind, const SignRequest& request,
                                   const RequestContext& ctx);
  absl::StatusOr<IssuedCertificate> Finish(const Prepared& prepared,
                                           absl::StatusOr<storage::IssueOutcome> stored);

  ca::CertificateAuthority& ca_;
  storage::CertificateStore& certificates_;
  storage::BrokerStore& brokers_;
  const std::vector<Profile> profiles_;
};

}  // namespace fleetca::issuance
