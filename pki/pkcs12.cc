#include "pki/pkcs12.h"

#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pkcs12.h>
#include <openssl/x509.h>

#include <memory>
#include <set>
#include <string>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/text.h"
#include "pki/certificate_builder.h"
#include "pki/keys.h"

namespace fleetca::pki {
namespace {

template <typename T, void (*kFree)(T*)>
using Owned = std::unique_ptr<T, OpenSslDeleter<T, kFree>>;

void FreeSafeBags(STACK_OF(PKCS12_SAFEBAG) * bags) {
  sk_PKCS12_SAFEBAG_pop_free(bags, PKCS12_SAFEBAG_free);
}
void FreeSafes(STACK_OF(PKCS7) * safes) { sk_PKCS7_pop_free(safes, PKCS7_free); }

using SafeBagPtr = Owned<PKCS12_SAFEBAG, PKCS12_SAFEBAG_free>;
using SafeBagsPtr = Owned<STACK_OF(PKCS12_SAFEBAG), FreeSafeBags>;
using Pkcs7Ptr = Owned<PKCS7, PKCS7_free>;
using SafesPtr = Owned<STACK_OF(PKCS7), FreeSafes>;
using Pkcs12Ptr = Owned<PKCS12, PKCS12_free>;
using Pkcs8Ptr = Owned<PKCS8_PRIV_KEY_INFO, PKCS8_PRIV_KEY_INFO_free>;
using Asn1ObjectPtr = Owned<ASN1_OBJECT, ASN1_OBJECT_free>;

// A friendlyName is a BMPString to Java; 255 bytes is far more than an issuer id or a
// device's comm-ID needs, and keeps a name from growing the file without bound.
constexpr size_t kMaxAliasBytes = 255;

// NIST SP 800-132 section 5.1: at least 128 bits of salt. OpenSSL draws each salt at random
// when given a length and no salt.
constexpr int kSaltBytes = 16;

struct Algorithms {
  int key_pbe;  // a cipher NID selects PBES2 with it; a PBE NID, PKCS#12's own PBE
  int cert_pbe;
  const EVP_MD* mac;
};

Algorithms AlgorithmsFor(Pkcs12Encryption encryption) {
  switch (encryption) {
    case Pkcs12Encryption::kLegacy:
      return {NID_pbe_WithSHA1And3_Key_TripleDES_CBC, NID_pbe_WithSHA1And3_Key_TripleDES_CBC,
              EVP_sha1()};
    case Pkcs12Encryption::kAes256:
      break;
  }
  // PBES2 with AES-256-CBC: OpenSSL 3.0 picks PBKDF2 with hmacWithSHA256 (the PRF it uses
  // when the cipher states no preference), as Java 8u301 and later expect.
  return {NID_aes_256_cbc, NID_aes_256_cbc, EVP_sha256()};
}

absl::Status Invalid(absl::string_view field, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", why));
}

absl::Status CheckPassword(absl::string_view password) {
  if (password.empty()) {
    return Invalid("password", "required");
  }
  if (password.size() > kMaxPkcs12PasswordBytes) {
    return Invalid("password", absl::StrCat("at most ", kMaxPkcs12PasswordBytes, " bytes"));
  }
  // PKCS#12's key derivation reads the password as UTF-8 (as BMPString characters, like
  // Java's char[]), and falls back to treating each byte as a character when it is not
  // UTF-8, which no Java client could type; OpenSSL's command line cuts it at a NUL.
  if (password.find('\0') != absl::string_view::npos) {
    return Invalid("password", "must not contain NUL");
  }
  if (!IsValidUtf8(password)) {
    return Invalid("password", "not valid UTF-8");
  }
  return absl::OkStatus();
}

absl::Status CheckAlias(absl::string_view field, absl::string_view alias) {
  if (alias.empty()) {
    return Invalid(field, "required");
  }
  if (alias.size() > kMaxAliasBytes) {
    return Invalid(field, absl::StrCat("at most ", kMaxAliasBytes, " bytes"));
  }
  if (!IsValidUtf8(alias)) {
    return Invalid(field, "not valid UTF-8");
  }
  if (HasControlCharacters(alias)) {
    return Invalid(field, "contains control characters");
  }
  return absl::OkStatus();
}

// NewCertBag makes a certificate bag with a friendlyName (unless alias is empty).
absl::StatusOr<SafeBagPtr> NewCertBag(const X509* cert, absl::string_view alias) {
  // PKCS12_SAFEBAG_create_cert encodes a copy of the certificate; it does not change it.
  SafeBagPtr bag(PKCS12_SAFEBAG_create_cert(const_cast<X509*>(cert)));
  if (bag == nullptr) {
    return OpenSslError("PKCS12_SAFEBAG_create_cert");
  }
  // _utf8, not _asc: _asc would turn each byte of a UTF-8 alias into a character.
  if (!alias.empty() &&
      PKCS12_add_friendlyname_utf8(bag.get(), alias.data(), static_cast<int>(alias.size())) != 1) {
    return OpenSslError("PKCS12_add_friendlyname_utf8");
  }
  return bag;
}

// AddJavaTrust adds Java's trusted-certificate attribute (trustedKeyUsage, a SET holding
// the anyExtendedKeyUsage OID) to a certificate bag: what makes Java's PKCS12KeyStore load
// the certificate as a trustedCertEntry; to Java a certificate bag without it is only a
// chain certificate of some key entry, and a truststore of such bags lists no entry.
//
// OpenSSL 3.2 writes it with PKCS12_SAFEBAG_set0_attrs and NID_oracle_jdk_trustedkeyusage,
// neither of which 3.0 has. PKCS12_add1_attr_by_txt adds to the bag's own attribute set
// (creating it when needed): its value, with len -1, is passed to ASN1_TYPE_set1 as the
// object of type V_ASN1_OBJECT and copied (X509_ATTRIBUTE_set1_data), so the ASN1_OBJECT
// pointer travels through the `const unsigned char*` parameter by design. The attribute
// type is given as dotted text: 3.0 has no NID for it, and OBJ_create would register one
// in OpenSSL's process-wide table.
absl::Status AddJavaTrust(PKCS12_SAFEBAG* bag) {
  Asn1ObjectPtr any_eku(OBJ_txt2obj(kAnyExtendedKeyUsageOid, /*no_name=*/1));
  if (any_eku == nullptr) {
    return OpenSslError("OBJ_txt2obj");
  }
  if (PKCS12_add1_attr_by_txt(bag, kOracleTrustedKeyUsageOid, V_ASN1_OBJECT,
                              reinterpret_cast<const unsigned char*>(any_eku.get()),
                              /*len=*/-1) != 1) {
    return OpenSslError("PKCS12_add1_attr_by_txt");
  }
  return absl::OkStatus();
}

absl::Status PushBag(STACK_OF(PKCS12_SAFEBAG) * bags, SafeBagPtr bag) {
  if (sk_PKCS12_SAFEBAG_push(bags, bag.get()) <= 0) {
    return OpenSslError("sk_PKCS12_SAFEBAG_push");
  }
  bag.release();  // the stack owns it now
  return absl::OkStatus();
}

absl::Status PushSafe(STACK_OF(PKCS7) * safes, PKCS7* safe, absl::string_view what) {
  Pkcs7Ptr owned(safe);
  if (owned == nullptr) {
    return OpenSslError(what);
  }
  if (sk_PKCS7_push(safes, owned.get()) <= 0) {
    return OpenSslError("sk_PKCS7_push");
  }
  owned.release();  // the stack owns it now
  return absl::OkStatus();
}

// AddEncryptedSafe packs bags into an encrypted safe (EncryptedData) under password.
absl::Status AddEncryptedSafe(STACK_OF(PKCS7) * safes, STACK_OF(PKCS12_SAFEBAG) * bags, int pbe,
                              absl::string_view password) {
  return PushSafe(safes,
                  PKCS12_pack_p7encdata(pbe, password.data(), static_cast<int>(password.size()),
                                        /*salt=*/nullptr, kSaltBytes, kPkcs12Iterations, bags),
                  "PKCS12_pack_p7encdata");
}

// Finish packs the safes into a PFX (RFC 7292 section 4), adds the password MAC and
// encodes it.
absl::StatusOr<std::string> Finish(STACK_OF(PKCS7) * safes, absl::string_view password,
                                   const EVP_MD* mac) {
  // The PFX's authSafe is plain data (NID_pkcs7_data): integrity comes from the MAC.
  Pkcs12Ptr p12(PKCS12_add_safes(safes, NID_pkcs7_data));
  if (p12 == nullptr) {
    return OpenSslError("PKCS12_add_safes");
  }
  if (PKCS12_set_mac(p12.get(), password.data(), static_cast<int>(password.size()),
                     /*salt=*/nullptr, kSaltBytes, kPkcs12Iterations, mac) != 1) {
    return OpenSslError("PKCS12_set_mac");
  }
  const int len = i2d_PKCS12(p12.get(), nullptr);
  if (len <= 0) {
    return OpenSslError("i2d_PKCS12");
  }
  std::string der(static_cast<size_t>(len), '\0');
  unsigned char* p = reinterpret_cast<unsigned char*>(der.data());
  if (i2d_PKCS12(p12.get(), &p) != len) {
    return OpenSslError("i2d_PKCS12");
  }
  return der;
}

absl::StatusOr<SafeBagsPtr> NewBags() {
  SafeBagsPtr bags(sk_PKCS12_SAFEBAG_new_null());
  if (bags == nullptr) {
    return OpenSslError("sk_PKCS12_SAFEBAG_new_null");
  }
  return bags;
}

absl::StatusOr<SafesPtr> NewSafes() {
  SafesPtr safes(sk_PKCS7_new_null());
  if (safes == nullptr) {
    return OpenSslError("sk_PKCS7_new_null");
  }
  return safes;
}

}  // namespace

absl::StatusOr<std::string> BuildTrustStorePkcs12(const std::vector<TrustStoreEntry>& entries,
                                                  absl::string_view password,
                                                  Pkcs12Encryption encryption) {
  RETURN_IF_ERROR(CheckPassword(password));
  if (entries.empty()) {
    return Invalid("entries", "at least one certificate is required");
  }
  std::set<std::string> lowered;
  for (size_t i = 0; i < entries.size(); ++i) {
    const std::string field = absl::StrCat("entries[", i, "]");
    RETURN_IF_ERROR(CheckAlias(absl::StrCat(field, ".alias"), entries[i].alias));
    if (entries[i].certificate == nullptr) {
      return Invalid(absl::StrCat(field, ".certificate"), "required");
    }
    // Java keeps entries by lowercased alias: a second one would replace the first.
    if (!lowered.insert(absl::AsciiStrToLower(entries[i].alias)).second) {
      return Invalid(absl::StrCat(field, ".alias"),
                     "the same as an earlier alias (Java ignores case)");
    }
  }
  const Algorithms alg = AlgorithmsFor(encryption);

  // 1. One certificate bag per entry: friendlyName and Java's trust attribute.
  ASSIGN_OR_RETURN(SafeBagsPtr bags, NewBags());
  for (const TrustStoreEntry& entry : entries) {
    ASSIGN_OR_RETURN(SafeBagPtr bag, NewCertBag(entry.certificate, entry.alias));
    RETURN_IF_ERROR(AddJavaTrust(bag.get()));
    RETURN_IF_ERROR(PushBag(bags.get(), std::move(bag)));
  }
  // 2. One encrypted safe for them all, as OpenSSL and Java write certificates.
  ASSIGN_OR_RETURN(SafesPtr safes, NewSafes());
  RETURN_IF_ERROR(AddEncryptedSafe(safes.get(), bags.get(), alg.cert_pbe, password));
  // 3. The PFX and its MAC.
  return Finish(safes.get(), password, alg.mac);
}

absl::StatusOr<std::string> BuildKeyStorePkcs12(const X509* certificate,
                                                const std::vector<const X509*>& chain,
                                                absl::string_view private_key_pem,
                                                absl::string_view password,
                                                absl::string_view friendly_name,
                                                Pkcs12Encryption encryption) {
  // 1. Check the inputs; the key must be the certificate's.
  if (certificate == nullptr) {
    return Invalid("certificate", "required");
  }
  for (size_t i = 0; i < chain.size(); ++i) {
    if (chain[i] == nullptr) {
      return Invalid(absl::StrCat("chain[", i, "]"), "null certificate");
    }
  }
  RETURN_IF_ERROR(CheckPassword(password));
  std::string alias(friendly_name);
  if (alias.empty()) {
    ASSIGN_OR_RETURN(const CertificateInfo info, InspectCertificate(certificate));
    if (info.common_name.empty()) {
      return Invalid("friendly_name", "required: the certificate has no Common Name");
    }
    alias = info.common_name;
  }
  RETURN_IF_ERROR(CheckAlias("friendly_name", alias));
  auto key = PrivateKeyFromPem(private_key_pem, /*password=*/"");
  if (!key.ok()) {
    return Invalid("private_key_pem", key.status().message());
  }
  if (!PublicKeysMatch(X509_get0_pubkey(certificate), key->get())) {
    return Invalid("private_key_pem", "does not match the certificate's public key");
  }
  const Algorithms alg = AlgorithmsFor(encryption);

  // 2. localKeyID ties the key bag to its certificate bag (RFC 7292 section 4.2); Java
  // pairs them by it. The certificate's SHA-1, as OpenSSL's PKCS12_create sets it.
  unsigned char key_id[EVP_MAX_MD_SIZE];
  unsigned int key_id_len = 0;
  if (X509_digest(certificate, EVP_sha1(), key_id, &key_id_len) != 1) {
    return OpenSslError("X509_digest");
  }
  const int id_len = static_cast<int>(key_id_len);

  // 3. The certificates: the entry's own (friendlyName, localKeyID), then the chain, in an
  // encrypted safe.
  ASSIGN_OR_RETURN(SafeBagsPtr cert_bags, NewBags());
  {
    ASSIGN_OR_RETURN(SafeBagPtr bag, NewCertBag(certificate, alias));
    if (PKCS12_add_localkeyid(bag.get(), key_id, id_len) != 1) {
      return OpenSslError("PKCS12_add_localkeyid");
    }
    RETURN_IF_ERROR(PushBag(cert_bags.get(), std::move(bag)));
  }
  for (const X509* ca : chain) {
    ASSIGN_OR_RETURN(SafeBagPtr bag, NewCertBag(ca, /*alias=*/""));
    RETURN_IF_ERROR(PushBag(cert_bags.get(), std::move(bag)));
  }
  ASSIGN_OR_RETURN(SafesPtr safes, NewSafes());
  RETURN_IF_ERROR(AddEncryptedSafe(safes.get(), cert_bags.get(), alg.cert_pbe, password));

  // 4. The key: a PKCS#8 shrouded key bag (encrypted itself), in a plain-data safe, as
  // OpenSSL's PKCS12_create writes it. PKCS8_PRIV_KEY_INFO_free clears the plaintext.
  Pkcs8Ptr p8(EVP_PKEY2PKCS8(key->get()));
  if (p8 == nullptr) {
    return OpenSslError("EVP_PKEY2PKCS8");
  }
  SafeBagPtr key_bag(PKCS12_SAFEBAG_create_pkcs8_encrypt(
      alg.key_pbe, password.data(), static_cast<int>(password.size()), /*salt=*/nullptr, kSaltBytes,
      kPkcs12Iterations, p8.get()));
  if (key_bag == nullptr) {
    return OpenSslError("PKCS12_SAFEBAG_create_pkcs8_encrypt");
  }
  if (PKCS12_add_friendlyname_utf8(key_bag.get(), alias.data(), static_cast<int>(alias.size())) !=
      1) {
    return OpenSslError("PKCS12_add_friendlyname_utf8");
  }
  if (PKCS12_add_localkeyid(key_bag.get(), key_id, id_len) != 1) {
    return OpenSslError("PKCS12_add_localkeyid");
  }
  ASSIGN_OR_RETURN(SafeBagsPtr key_bags, NewBags());
  RETURN_IF_ERROR(PushBag(key_bags.get(), std::move(key_bag)));
  RETURN_IF_ERROR(PushSafe(safes.get(), PKCS12_pack_p7data(key_bags.get()), "PKCS12_pack_p7data"));

  // 5. The PFX and its MAC.
  return Finish(safes.get(), password, alg.mac);
}

}  // namespace fleetca::pki
