#pragma once

// CertificateAuthority: fleetca's CA hierarchy. A root and one intermediate per purpose
// (devices: client certificates; brokers: server certificates; operators: API and MQTT
// identities), modelled on the SpringCard deployment. Keys are generated here, stored only
// wrapped under the KEK, and held unwrapped only inside the KeyStore.

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/request_context.h"
#include "pki/certificate_builder.h"
#include "pki/kek.h"
#include "pki/key_store.h"
#include "storage/external_ca_store.h"
#include "storage/issuer_store.h"

namespace fleetca::ca {

struct CaConfig {
  // Base of the URLs put in issued certificates: CRL distribution point
  // <base>/crl/<issuer>.crl and AIA caIssuers <base>/ca/<issuer>.crt.
  std::string public_base_url = "http://127.0.0.1:8080";
};

// An issuer ready to sign: its row, parsed certificate and chain up to the root.
struct ActiveIssuer {
  storage::Issuer row;
  pki::X509Ptr certificate;
  std::string certificate_pem;
  // chain_pem: this issuer's certificate followed by every certificate above it, root
  // included (so `openssl verify -CAfile <chain>` works on a leaf).
  std::string chain_pem;
};

struct InitOptions {
  pki::SubjectName subject;  // common_name is a prefix: "<cn> Root CA", "<cn> Devices CA"
  pki::KeyAlgorithm root_algorithm = pki::KeyAlgorithm::kEcdsaP256;
  pki::KeyAlgorithm intermediate_algorithm = pki::KeyAlgorithm::kEcdsaP256;
  absl::Duration root_validity = absl::Hours(24 * 365 * 20);
  absl::Duration intermediate_validity = absl::Hours(24 * 365 * 10);
  std::vector<storage::IssuerPurpose> purposes;  // intermediates; empty: all three
  bool offline_root = false;  // no root here: intermediates are created pending, with CSRs
};

struct InitResult {
  std::vector<storage::Issuer> issuers;  // every issuer after the call
  std::vector<std::string> created;      // ids created by this call
};

enum class BundleScope { kAll, kClientAuth, kServerAuth };

class CertificateAuthority {
 public:
  // All borrowed; they must outlive the CA.
  // external_cas, when given, adds the enabled external CAs to CLIENT_AUTH and ALL trust
  // bundles.
  CertificateAuthority(storage::IssuerStore& store, pki::SoftwareKeyStore& keys,
                       const pki::KeyRing& ring, CaConfig config,
                       storage::ExternalCaStore* external_cas = nullptr)
      : store_(store),
        keys_(keys),
        ring_(ring),
        config_(std::move(config)),
        external_cas_(external_cas) {}

  // LoadKeys unwraps every stored issuer key into the KeyStore. FAILED_PRECONDITION naming
  // the issuer and the KEK when a KEK is missing from the ring or does not authenticate the
  // key (the server must not start).
  absl::Status LoadKeys();

  // Initialize creates what is missing of the hierarchy, idempotently: a second call (or a
  // concurrent one, on any replica) creates nothing and returns the same issuers.
  // INVALID_ARGUMENT for bad options.
  absl::StatusOr<InitResult> Initialize(const InitOptions& options, const RequestContext& ctx);

  absl::StatusOr<std::vector<storage::Issuer>> ListIssuers();
  absl::StatusOr<storage::Issuer> GetIssuer(const std::string& id);

  // Active returns the active issuer of a purpose, ready to sign (its key loaded).
  // FAILED_PRECONDITION "no active <purpose> CA: initialise the CA first" when there is none.
  absl::StatusOr<std::shared_ptr<const ActiveIssuer>> Active(storage::IssuerPurpose purpose);

  // ChainPem returns an issuer's certificate and those above it (PEM), "" while pending.
  absl::StatusOr<std::string> ChainPem(const storage::Issuer& issuer);

  // ChainAbovePem returns the certificates above an issuer (ChainPem without the issuer's
  // own), nearest first: "" for a root.
  absl::StatusOr<std::string> ChainAbovePem(const storage::Issuer& issuer);

  // TrustBundle returns the certificates a relying party needs, PEM, intermediates first and
  // roots last (issuer_ids in the same order):
  // kClientAuth (brokers checking devices and identities): root, devices, operators CAs;
  // kServerAuth (devices checking brokers): root, brokers CA; kAll: every active or pending-
  // chain certificate. kClientAuth and kAll end with the enabled, unexpired external CAs
  // (alias: their id). Retired issuers stay while their certificate is valid (their leaves
  // still are). FAILED_PRECONDITION when there is nothing to trust yet.
  // With `certificates`, also each certificate's DER with an alias, in the same order: the
  // issuer id for an issuer's own certificate, "<issuer id>-chain-<n>" (n from 1, nearest
  // first) for the outside intermediates imported above it (the PKCS#12 truststore's
  // entries).
  struct BundleCertificate {
    std::string alias;
    std::string der;
  };
  absl::StatusOr<std::string> TrustBundle(BundleScope scope, std::vector<std::string>* issuer_ids,
                                          std::vector<BundleCertificate>* certificates = nullptr);

  // Offline root: CreateIntermediateCsr makes a pending intermediate (new key, wrapped and
  // stored) and returns it with its CSR; ImportIntermediateCertificate checks the signed
  // certificate (its key is the pending one, it is a CA that may sign certificates, it
  // verifies up to a self-signed root in chain_pem, or to this CA's root when chain_pem is
  // empty) and activates it, retiring the previous one.
  absl::StatusOr<storage::Issuer> CreateIntermediateCsr(storage::IssuerPurpose purpose,
                                                        pki::KeyAlgorithm algorithm,
                                                        const pki::SubjectName& subject,
                                                        const RequestContext& ctx);
  // The root of an imported chain is registered as an issuer without a key (unless it is
  // already one); *root_id names it. Returns the retired issuer's id, or "".
  absl::StatusOr<std::string> ImportIntermediateCertificate(const std::string& issuer_id,
                                                            const std::string& certificate_pem,
                                                            const std::string& chain_pem,
                                                            const RequestContext& ctx,
                                                            std::string* root_id);

  // ImportIssuer makes an existing intermediate (certificate and private key, PEM; the key
  // encrypted when password is set) the active issuer of its purpose, retiring the previous
  // one. Checks: the key is allowed and is the certificate's; the certificate is a CA that
  // may sign certificates, valid now; it verifies up to a self-signed root in chain_pem, or
  // to this CA's root when chain_pem is empty. A root given in chain_pem that is not an
  // issuer yet is registered, keyless, when this CA has no root of its own (otherwise
  // INVALID_ARGUMENT: one root per CA). INVALID_ARGUMENT naming the field otherwise.
  // Returns the new issuer and, in *retired, the retired issuer's id (or "").
  absl::StatusOr<storage::Issuer> ImportIssuer(storage::IssuerPurpose purpose,
                                               const std::string& certificate_pem,
                                               const std::string& chain_pem,
                                               const std::string& private_key_pem,
                                               const std::string& password,
                                               const RequestContext& ctx, std::string* retired);

  std::string CrlUrl(const std::string& issuer_id) const;
  // <base>/crl/delta/<issuer>.crl: the freshestCRL of complete CRLs (delta CRLs).
  std::string DeltaCrlUrl(const std::string& issuer_id) const;
  std::string CaIssuersUrl(const std::string& issuer_id) const;
  pki::KeyStore& key_store() { return keys_; }

 private:
  absl::Status EnsureKeyLoaded(const storage::Issuer& issuer);
  // VerifyCaCertificate checks an outside CA certificate: a CA that may sign, valid now, and
  // chaining to a root in chain_pem (or this CA's root). Sets *chain_der to the certificates
  // between it and the root (DER, concatenated), and the root: *parent_id when the root is
  // already an issuer here, else *new_root (a row to insert, without a key).
  absl::Status VerifyCaCertificate(const X509* cert, const std::string& chain_pem,
                                   std::string* chain_der, std::string* parent_id,
                                   std::optional<storage::Issuer>* new_root);
  void InvalidateCache();

  storage::IssuerStore& store_;
  pki::SoftwareKeyStore& keys_;
  const pki::KeyRing& ring_;
  const CaConfig config_;
  storage::ExternalCaStore* const external_cas_;

  absl::Mutex mu_;
  // Active issuers by purpose, reloaded after kCacheTtl so replicas see each other's changes.
  struct CacheEntry {
    std::shared_ptr<const ActiveIssuer> issuer;
    absl::Time loaded;
  };
  std::map<storage::IssuerPurpose, CacheEntry> cache_ ABSL_GUARDED_BY(mu_);
};

// PurposeTitle: "Root", "Devices", "Brokers", "Operators" (for subject names).
const char* PurposeTitle(storage::IssuerPurpose purpose);

}  // namespace fleetca::ca
