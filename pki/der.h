#pragma once

// A small strict DER (X.690 section 10) reader and writer for the hot path of issuance:
// reading a CSR and assembling a certificate's TBSCertificate directly, without OpenSSL 3's
// object model, whose decode/encode round trips cost more than the signature itself
// (openssl#19119, #17950, #20698; figures in docs/performance.md).
//
// Only what X.509 needs: one-byte tags (tag numbers below 31), definite minimal lengths.
// Anything else is refused by the reader, which never reads past its input.

#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace fleetca::pki::der {

// Tags (identifier octets) used by X.509.
inline constexpr uint8_t kBoolean = 0x01;
inline constexpr uint8_t kInteger = 0x02;
inline constexpr uint8_t kBitString = 0x03;
inline constexpr uint8_t kOctetString = 0x04;
inline constexpr uint8_t kNull = 0x05;
inline constexpr uint8_t kOid = 0x06;
inline constexpr uint8_t kUtf8String = 0x0c;
inline constexpr uint8_t kPrintableString = 0x13;
inline constexpr uint8_t kTeletexString = 0x14;
inline constexpr uint8_t kIa5String = 0x16;
inline constexpr uint8_t kUtcTime = 0x17;
inline constexpr uint8_t kGeneralizedTime = 0x18;
inline constexpr uint8_t kUniversalString = 0x1c;
inline constexpr uint8_t kBmpString = 0x1e;
inline constexpr uint8_t kSequence = 0x30;
inline constexpr uint8_t kSet = 0x31;
// Context-specific tags: [n] IMPLICIT primitive, [n] constructed (EXPLICIT or IMPLICIT
// constructed).
constexpr uint8_t ContextPrimitive(int n) { return static_cast<uint8_t>(0x80 | n); }
constexpr uint8_t ContextConstructed(int n) { return static_cast<uint8_t>(0xa0 | n); }

// Reader walks the elements of one level of DER: construct it over a whole encoding or over
// the contents of a constructed element, and read elements in order.
class Reader {
 public:
  explicit Reader(absl::string_view data) : rest_(data) {}

  bool empty() const { return rest_.empty(); }

  // Next reads the next element: false (and the reader is left failed, empty) when what is
  // left is not a well-formed DER element. `contents` and `element` may be null; `element`
  // is the whole encoding (identifier, length and contents).
  bool Next(uint8_t* tag, absl::string_view* contents, absl::string_view* element = nullptr);
  // Expect reads the next element and requires its tag.
  bool Expect(uint8_t tag, absl::string_view* contents, absl::string_view* element = nullptr);
  // PeekTag reports the next element's tag without reading it (false when empty).
  bool PeekTag(uint8_t* tag) const;

 private:
  absl::string_view rest_;
};

// OidToText renders the contents of an OBJECT IDENTIFIER as dotted decimal ("2.5.29.17");
// "" when they are not a valid encoding (empty, non-minimal, or an arc above 2^63).
std::string OidToText(absl::string_view contents);
// OidFromText encodes dotted decimal as OBJECT IDENTIFIER contents; "" when malformed.
std::string OidFromText(absl::string_view text);

// Writers: each appends one complete element to *out.
void AppendHeader(std::string* out, uint8_t tag, size_t length);
void AppendElement(std::string* out, uint8_t tag, absl::string_view contents);
std::string Element(uint8_t tag, absl::string_view contents);
// AppendUnsignedInteger writes big-endian magnitude bytes (no leading zero bytes) as a
// positive INTEGER, adding the 0x00 octet DER needs when the top bit is set.
void AppendUnsignedInteger(std::string* out, absl::string_view magnitude);
// AppendBitString writes whole octets (no unused bits).
void AppendBitString(std::string* out, absl::string_view bytes);
// AppendTime writes a certificate validity time (RFC 5280 section 4.1.2.5): UTCTime for
// 1950 through 2049, GeneralizedTime otherwise, to the second, in UTC. The caller keeps t
// within the years 1950 to 9999.
void AppendTime(std::string* out, absl::Time t);

// Utf8Value converts a directory string's contents (UTF8String, PrintableString, IA5String,
// TeletexString read as Latin-1, BMPString, UniversalString) to UTF-8: false when the
// contents are not valid for their type or the tag is not a string type.
bool Utf8Value(uint8_t tag, absl::string_view contents, std::string* utf8);

}  // namespace fleetca::pki::der
