#pragma once

// PKCS#12 (RFC 7292) files for Java and other clients that want a keystore: a truststore of
// trusted certificate entries (GetTrustBundle with TRUST_BUNDLE_FORMAT_PKCS12) and a key
// store holding one private key entry (ExportPkcs12). Both are readable by `openssl pkcs12`
// and by Java's PKCS12KeyStore (keytool).
//
// The files are password-based: every safe (the certificates, the shrouded key) is
// encrypted and the whole file carries a MAC, all under the one password, as OpenSSL and
// Java write them. Iteration count: kPkcs12Iterations for every key derivation (the key
// and certificate encryption and the MAC), the count Java's PKCS12KeyStore has written by
// default since 8u301 / 11.0.12 (OpenSSL's own default is 2048). A file costs two or three
// derivations: a few milliseconds of CPU.
//
// JKS is not written here: no maintained C++ library in Debian writes it.

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "pki/openssl_util.h"

namespace fleetca::pki {

// Pkcs12Encryption mirrors fleetca.v1.Pkcs12Encryption (pki does not link the generated
// proto code; the API layer maps UNSPECIFIED to kAes256).
enum class Pkcs12Encryption {
  // PBES2 (PBKDF2 with HMAC-SHA256, AES-256-CBC, 16-byte random salts) for the key and the
  // certificates, a SHA-256 MAC: OpenSSL 3's default, readable by Java 8u301, 11.0.12 and
  // later.
  kAes256,
  // pbeWithSHA1And3-KeyTripleDES-CBC for the key and the certificates, a SHA-1 MAC: for old
  // Java runtimes and devices that cannot read PBES2. (OpenSSL's own `-legacy` encrypts
  // certificates with RC2-40, which OpenSSL 3 reads only with its legacy provider; 3DES is
  // read by every OpenSSL and Java.)
  kLegacy,
};

// kPkcs12Iterations: see the comment at the top.
inline constexpr int kPkcs12Iterations = 10000;
// kMaxPkcs12PasswordBytes: the API's limit on a keystore password (1 to 128 bytes).
inline constexpr size_t kMaxPkcs12PasswordBytes = 128;

// Java's trusted-certificate attribute on a certificate bag (Oracle's trustedKeyUsage,
// as Java's PKCS12KeyStore and OpenSSL 3.2's `pkcs12 -jdktrust` write it), and the value
// written: anyExtendedKeyUsage (trusted for every purpose).
inline constexpr char kOracleTrustedKeyUsageOid[] = "2.16.840.1.113894.746875.1.1";
inline constexpr char kAnyExtendedKeyUsageOid[] = "2.5.29.37.0";

// TrustStoreEntry is one trusted certificate of a truststore.
struct TrustStoreEntry {
  // alias is the entry's friendlyName: 1 to 255 bytes of UTF-8 without control
  // characters. Java compares aliases case-insensitively (keytool lists them lowercased),
  // so two aliases of a store may not differ only in ASCII case.
  std::string alias;
  const X509* certificate = nullptr;  // borrowed
};

// BuildTrustStorePkcs12 returns the DER of a PKCS#12 file holding one certificate bag per
// entry, in order, each with its friendlyName (the alias) and Java's trusted-certificate
// attribute, so that Java lists each as a trustedCertEntry; there is no key. The
// certificates are encrypted and the file MACed with password (see Pkcs12Encryption).
// INVALID_ARGUMENT naming the field: "password" (empty, over 128 bytes, a NUL or not
// UTF-8), "entries" (none), "entries[i].alias" (empty, too long, not UTF-8, control
// characters, or the same as an earlier one), "entries[i].certificate" (null). INTERNAL
// when OpenSSL fails.
absl::StatusOr<std::string> BuildTrustStorePkcs12(const std::vector<TrustStoreEntry>& entries,
                                                  absl::string_view password,
                                                  Pkcs12Encryption encryption);

// BuildKeyStorePkcs12 returns the DER of a PKCS#12 file holding one private key entry:
// the key (a PKCS#8 shrouded key bag) and certificate, which both carry friendly_name and
// the same localKeyID (the SHA-1 of the certificate, as OpenSSL's PKCS12_create sets it),
// followed by a certificate bag for each certificate of chain, in order, without
// attributes (Java builds the entry's chain from them by issuer name, so pass the issuing
// CAs up to the root; an empty chain gives an entry of the certificate alone). The key is
// only used to build the file: the caller owns private_key_pem and should wipe it.
//
// private_key_pem: PEM, PKCS#8 or traditional, unencrypted. friendly_name: the alias;
// empty means the certificate's Common Name. INVALID_ARGUMENT naming the field:
// "certificate" (null), "chain[i]" (null), "private_key_pem" (does not parse, is not a
// private key, or does not match the certificate's public key), "password" (as above),
// "friendly_name" (as an alias above, or empty and the certificate has no Common Name).
// INTERNAL when OpenSSL fails.
absl::StatusOr<std::string> BuildKeyStorePkcs12(const X509* certificate,
                                                const std::vector<const X509*>& chain,
                                                absl::string_view private_key_pem,
                                                absl::string_view password,
                                                absl::string_view friendly_name,
                                                Pkcs12Encryption encryption);

}  // namespace fleetca::pki
