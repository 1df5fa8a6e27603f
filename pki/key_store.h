#pragma once

// KeyStore: the only holder of CA private keys. Callers hand it a to-be-signed object and
// the id of the issuer whose key must sign; the key never leaves. A PKCS#11 (HSM)
// implementation can follow the software one.

#include <map>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "pki/kek.h"
#include "pki/keys.h"
#include "pki/openssl_util.h"

namespace fleetca::pki {

class KeyStore {
 public:
  virtual ~KeyStore() = default;

  // Each Sign* signs in place with the issuer's key; digest SHA-256 for P-256 and RSA,
  // SHA-384 for P-384, none for Ed25519. NOT_FOUND when the store has no key for issuer_id.
  // Thread-safe.
  virtual absl::Status SignCertificate(const std::string& issuer_id, X509* cert) = 0;
  virtual absl::Status SignCsr(const std::string& issuer_id, X509_REQ* req) = 0;
  virtual absl::Status SignCrl(const std::string& issuer_id, X509_CRL* crl) = 0;

  // SignatureAlgorithm returns the DER AlgorithmIdentifier (RFC 5280 section 4.1.1.2) of the
  // signatures issuer_id's key makes, to be written into a to-be-signed structure before
  // Sign signs it. NOT_FOUND without a key.
  virtual absl::StatusOr<std::string> SignatureAlgorithm(const std::string& issuer_id) = 0;
  // Sign signs data (a DER to-be-signed structure, hashed here) with issuer_id's key and
  // returns the signature value (for ECDSA the DER ECDSA-Sig-Value). `algorithm` is what
  // SignatureAlgorithm returned: ABORTED when the key has since been replaced by one that
  // signs differently, so a signature never disagrees with the algorithm it claims.
  virtual absl::StatusOr<std::string> Sign(const std::string& issuer_id,
                                           absl::string_view algorithm,
                                           absl::string_view data) = 0;

  // HasKey reports whether issuer_id's key is loaded.
  virtual bool HasKey(const std::string& issuer_id) = 0;

  // CheckMatches verifies that issuer_id's key is the private half of certificate's public
  // key. FAILED_PRECONDITION when it is not (a key stored under the wrong issuer would
  // otherwise sign certificates nobody can verify); NOT_FOUND when there is no key.
  virtual absl::Status CheckMatches(const std::string& issuer_id, const X509* certificate) = 0;
};

// SoftwareKeyStore keeps unwrapped keys in memory (process memory is the trust boundary;
// keys are stored wrapped in the database).
class SoftwareKeyStore final : public KeyStore {
 public:
  SoftwareKeyStore() = default;

  // Add takes ownership of a private key for issuer_id (replacing any previous one).
  void Add(const std::string& issuer_id, EvpPkeyPtr key);
  // AddWrapped unwraps a stored key (aad = issuer_id) with the KEK named kek_id and adds it.
  // FAILED_PRECONDITION when the ring lacks that KEK or it does not authenticate.
  absl::Status AddWrapped(const std::string& issuer_id, absl::string_view kek_id,
                          absl::string_view wrapped, const KeyRing& ring);
  // Remove forgets issuer_id's key.
  void Remove(const std::string& issuer_id);

  absl::Status SignCertificate(const std::string& issuer_id, X509* cert) override;
  absl::Status SignCsr(const std::string& issuer_id, X509_REQ* req) override;
  absl::Status SignCrl(const std::string& issuer_id, X509_CRL* crl) override;
  absl::StatusOr<std::string> SignatureAlgorithm(const std::string& issuer_id) override;
  absl::StatusOr<std::string> Sign(const std::string& issuer_id, absl::string_view algorithm,
                                   absl::string_view data) override;
  bool HasKey(const std::string& issuer_id) override;
  absl::Status CheckMatches(const std::string& issuer_id, const X509* certificate) override;

 private:
  // SignWith signs object with sign() and issuer_id's key (shared by the Sign* methods).
  template <typename T>
  absl::Status SignWith(const std::string& issuer_id, T* object,
                        int (*sign)(T*, EVP_PKEY*, const EVP_MD*), const char* what);

  // Slot is a loaded key with what signing with it needs, prepared once: its signature
  // AlgorithmIdentifier, digest and a signing context that each Sign duplicates (OpenSSL 3
  // fetches and initialises a context slowly, and a context is not shared between threads).
  struct Slot;
  std::shared_ptr<const Slot> Find(const std::string& issuer_id);
  // Signer is issuer_id's slot when its key can sign: NOT_FOUND without a key, the
  // key's FAILED_PRECONDITION when it is not usable.
  absl::StatusOr<std::shared_ptr<const Slot>> Signer(const std::string& issuer_id);

  absl::Mutex mu_;
  std::map<std::string, std::shared_ptr<const Slot>> slots_ ABSL_GUARDED_BY(mu_);
};

// WrapPrivateKey encodes key as PKCS#8 and wraps it under ring.current() with aad =
// issuer_id. The plaintext DER is wiped before returning.
absl::StatusOr<std::string> WrapPrivateKey(const EVP_PKEY* key, const std::string& issuer_id,
                                           const KeyRing& ring);

}  // namespace fleetca::pki
