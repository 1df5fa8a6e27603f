#pragma once

// OpenSSL ownership and errors: one header owns every *_free (shared STYLE.md "OpenSSL").

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace fleetca::pki {

template <typename T, void (*kFree)(T*)>
struct OpenSslDeleter {
  void operator()(T* p) const noexcept { kFree(p); }
};
using X509Ptr = std::unique_ptr<X509, OpenSslDeleter<X509, X509_free>>;
using X509ReqPtr = std::unique_ptr<X509_REQ, OpenSslDeleter<X509_REQ, X509_REQ_free>>;
using X509CrlPtr = std::unique_ptr<X509_CRL, OpenSslDeleter<X509_CRL, X509_CRL_free>>;
using X509NamePtr = std::unique_ptr<X509_NAME, OpenSslDeleter<X509_NAME, X509_NAME_free>>;
using X509ExtensionPtr =
    std::unique_ptr<X509_EXTENSION, OpenSslDeleter<X509_EXTENSION, X509_EXTENSION_free>>;
using X509StorePtr = std::unique_ptr<X509_STORE, OpenSslDeleter<X509_STORE, X509_STORE_free>>;
using X509StoreCtxPtr =
    std::unique_ptr<X509_STORE_CTX, OpenSslDeleter<X509_STORE_CTX, X509_STORE_CTX_free>>;
using EvpPkeyPtr = std::unique_ptr<EVP_PKEY, OpenSslDeleter<EVP_PKEY, EVP_PKEY_free>>;
using EvpPkeyCtxPtr = std::unique_ptr<EVP_PKEY_CTX, OpenSslDeleter<EVP_PKEY_CTX, EVP_PKEY_CTX_free>>;
using EvpMdCtxPtr = std::unique_ptr<EVP_MD_CTX, OpenSslDeleter<EVP_MD_CTX, EVP_MD_CTX_free>>;
using EvpCipherCtxPtr =
    std::unique_ptr<EVP_CIPHER_CTX, OpenSslDeleter<EVP_CIPHER_CTX, EVP_CIPHER_CTX_free>>;
using BioPtr = std::unique_ptr<BIO, OpenSslDeleter<BIO, BIO_free_all>>;
using Asn1IntegerPtr =
    std::unique_ptr<ASN1_INTEGER, OpenSslDeleter<ASN1_INTEGER, ASN1_INTEGER_free>>;
using BignumPtr = std::unique_ptr<BIGNUM, OpenSslDeleter<BIGNUM, BN_free>>;
using GeneralNamesPtr =
    std::unique_ptr<GENERAL_NAMES, OpenSslDeleter<GENERAL_NAMES, GENERAL_NAMES_free>>;

// OpenSslError returns INTERNAL "<what>: <drained OpenSSL error queue>". The queue is
// emptied either way. Never put key material in `what`.
absl::Status OpenSslError(absl::string_view what);

// ClearOpenSslErrors empties this thread's error queue (after an expected failure).
void ClearOpenSslErrors();

// PEM/DER encoding of certificates, CSRs and CRLs. Parsing returns INVALID_ARGUMENT (the
// message says what is wrong, without echoing the input).
absl::StatusOr<std::string> CertificateToPem(const X509* cert);
absl::StatusOr<std::string> CertificateToDer(const X509* cert);
absl::StatusOr<X509Ptr> CertificateFromPem(absl::string_view pem);
absl::StatusOr<X509Ptr> CertificateFromDer(absl::string_view der);
// CertificatesFromPem parses every CERTIFICATE block of a bundle, in order (none: error).
absl::StatusOr<std::vector<X509Ptr>> CertificatesFromPem(absl::string_view pem);
absl::StatusOr<std::string> CsrToPem(const X509_REQ* req);
absl::StatusOr<std::string> CsrToDer(const X509_REQ* req);

// DerToPem wraps DER in a PEM block with `label` ("CERTIFICATE", "X509 CRL", ...).
std::string DerToPem(absl::string_view der, absl::string_view label);

// Sha256Hex returns the lowercase hex SHA-256 of data (a certificate's fingerprint when
// data is its DER).
std::string Sha256Hex(absl::string_view data);
// Sha256: the same digest, as 32 bytes.
std::string Sha256(absl::string_view data);

// SubjectOneLine returns an RFC 2253 rendering of a name, e.g. "CN=dev1,O=Acme".
std::string NameToString(const X509_NAME* name);

}  // namespace fleetca::pki
