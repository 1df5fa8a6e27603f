#include "pki/openssl_util.h"

#include <openssl/err.h>
#include <openssl/pem.h>

#include <climits>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace fleetca::pki {
namespace {

// PEM parsing reports "no start line" when a BIO holds no further block; that is the end of
// a bundle, not an error.
bool IsPemNoStartLine(unsigned long err) {
  return ERR_GET_LIB(err) == ERR_LIB_PEM && ERR_GET_REASON(err) == PEM_R_NO_START_LINE;
}

absl::StatusOr<BioPtr> MemBio(absl::string_view data) {
  if (data.size() > static_cast<size_t>(INT_MAX)) {
    return absl::InvalidArgumentError("input is too large");
  }
  BioPtr bio(BIO_new_mem_buf(data.data(), static_cast<int>(data.size())));
  if (bio == nullptr) {
    return OpenSslError("BIO_new_mem_buf");
  }
  return bio;
}

// BioContents copies everything written to a memory BIO.
std::string BioContents(BIO* bio) {
  char* data = nullptr;
  // BIO_get_mem_data without its C-style cast.
  const long len = BIO_ctrl(bio, BIO_CTRL_INFO, 0, &data);
  if (len <= 0 || data == nullptr) {
    return std::string();
  }
  return std::string(data, static_cast<size_t>(len));
}

// I2d encodes an ASN.1 object with one of OpenSSL's i2d functions into a string.
template <typename T>
absl::StatusOr<std::string> I2d(const T* obj, int (*i2d)(const T*, unsigned char**),
                                absl::string_view what) {
  if (obj == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": null object"));
  }
  const int len = i2d(obj, nullptr);
  if (len <= 0) {
    return OpenSslError(what);
  }
  std::string out(static_cast<size_t>(len), '\0');
  unsigned char* p = reinterpret_cast<unsigned char*>(out.data());
  if (i2d(obj, &p) != len) {
    return OpenSslError(what);
  }
  return out;
}

}  // namespace

absl::Status OpenSslError(absl::string_view what) {
  std::string message(what);
  bool first = true;
  const char* file = nullptr;
  int line = 0;
  const char* func = nullptr;
  const char* data = nullptr;
  int flags = 0;
  unsigned long err;
  while ((err = ERR_get_error_all(&file, &line, &func, &data, &flags)) != 0) {
    char buf[256];
    ERR_error_string_n(err, buf, sizeof(buf));
    absl::StrAppend(&message, first ? ": " : "; ", buf);
    if (data != nullptr && (flags & ERR_TXT_STRING) != 0 && data[0] != '\0') {
      absl::StrAppend(&message, " (", data, ")");
    }
    first = false;
  }
  if (first) {
    absl::StrAppend(&message, ": failed (no OpenSSL error reported)");
  }
  return absl::InternalError(message);
}

void ClearOpenSslErrors() { ERR_clear_error(); }

absl::StatusOr<std::string> CertificateToPem(const X509* cert) {
  if (cert == nullptr) {
    return absl::InvalidArgumentError("certificate: null");
  }
  ASSIGN_OR_RETURN(const std::string der, CertificateToDer(cert));
  return DerToPem(der, "CERTIFICATE");
}

absl::StatusOr<std::string> CertificateToDer(const X509* cert) {
  return I2d<X509>(cert, &i2d_X509, "i2d_X509");
}

absl::StatusOr<X509Ptr> CertificateFromPem(absl::string_view pem) {
  auto bio = MemBio(pem);
  if (!bio.ok()) {
    return bio.status();
  }
  X509Ptr cert(PEM_read_bio_X509(bio->get(), nullptr, nullptr, nullptr));
  if (cert == nullptr) {
    ClearOpenSslErrors();
    return absl::InvalidArgumentError("not a PEM CERTIFICATE");
  }
  return cert;
}

absl::StatusOr<X509Ptr> CertificateFromDer(absl::string_view der) {
  if (der.empty() || der.size() > static_cast<size_t>(LONG_MAX)) {
    return absl::InvalidArgumentError("not a DER certificate");
  }
  const unsigned char* p = reinterpret_cast<const unsigned char*>(der.data());
  const unsigned char* const end = p + der.size();
  X509Ptr cert(d2i_X509(nullptr, &p, static_cast<long>(der.size())));
  if (cert == nullptr) {
    ClearOpenSslErrors();
    return absl::InvalidArgumentError("not a DER certificate");
  }
  if (p != end) {
    return absl::InvalidArgumentError("trailing bytes after the DER certificate");
  }
  return cert;
}

absl::StatusOr<std::vector<X509Ptr>> CertificatesFromPem(absl::string_view pem) {
  auto bio = MemBio(pem);
  if (!bio.ok()) {
    return bio.status();
  }
  ClearOpenSslErrors();
  std::vector<X509Ptr> certs;
  for (;;) {
    char* name = nullptr;
    char* header = nullptr;
    unsigned char* data = nullptr;
    long len = 0;
    if (PEM_read_bio(bio->get(), &name, &header, &data, &len) != 1) {
      const unsigned long err = ERR_peek_last_error();
      ClearOpenSslErrors();
      if (IsPemNoStartLine(err)) {
        break;  // end of the bundle
      }
      return absl::InvalidArgumentError(
          absl::StrCat("malformed PEM block after certificate ", certs.size()));
    }
    const bool is_cert = std::strcmp(name, "CERTIFICATE") == 0;
    X509Ptr cert;
    bool trailing = false;
    if (is_cert) {
      const unsigned char* p = data;
      cert.reset(d2i_X509(nullptr, &p, len));
      trailing = cert != nullptr && p != data + len;
    }
    OPENSSL_free(name);
    OPENSSL_free(header);
    OPENSSL_free(data);
    if (!is_cert) {
      continue;  // other blocks (keys, parameters) are not certificates: skip them
    }
    if (cert == nullptr || trailing) {
      ClearOpenSslErrors();
      return absl::InvalidArgumentError(
          absl::StrCat("CERTIFICATE block ", certs.size() + 1, " is not a valid certificate"));
    }
    certs.push_back(std::move(cert));
  }
  if (certs.empty()) {
    return absl::InvalidArgumentError("no CERTIFICATE block");
  }
  return certs;
}

absl::StatusOr<std::string> CsrToPem(const X509_REQ* req) {
  if (req == nullptr) {
    return absl::InvalidArgumentError("CSR: null");
  }
  ASSIGN_OR_RETURN(const std::string der, CsrToDer(req));
  return DerToPem(der, "CERTIFICATE REQUEST");
}

absl::StatusOr<std::string> CsrToDer(const X509_REQ* req) {
  return I2d<X509_REQ>(req, &i2d_X509_REQ, "i2d_X509_REQ");
}

std::string DerToPem(absl::string_view der, absl::string_view label) {
  const std::string b64 = absl::Base64Escape(der);
  std::string out = absl::StrCat("-----BEGIN ", label, "-----\n");
  // RFC 7468 section 2: 64 characters per line.
  for (size_t i = 0; i < b64.size(); i += 64) {
    absl::StrAppend(&out, absl::string_view(b64).substr(i, 64), "\n");
  }
  absl::StrAppend(&out, "-----END ", label, "-----\n");
  return out;
}

std::string Sha256(absl::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr) != 1) {
    // SHA-256 is always available in the default provider; failing here is a broken
    // installation, not bad input.
    ClearOpenSslErrors();
    return std::string();
  }
  return std::string(reinterpret_cast<const char*>(md), static_cast<size_t>(len));
}

std::string Sha256Hex(absl::string_view data) { return absl::BytesToHexString(Sha256(data)); }

std::string NameToString(const X509_NAME* name) {
  if (name == nullptr) {
    return std::string();
  }
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (bio == nullptr) {
    ClearOpenSslErrors();
    return std::string();
  }
  // RFC 2253 escaping, but keep UTF-8 as UTF-8 instead of \XX escapes.
  const unsigned long flags = XN_FLAG_RFC2253 & ~static_cast<unsigned long>(ASN1_STRFLGS_ESC_MSB);
  if (X509_NAME_print_ex(bio.get(), name, 0, flags) < 0) {
    ClearOpenSslErrors();
    return std::string();
  }
  return BioContents(bio.get());
}

}  // namespace fleetca::pki
