#include "pki/der.h"

#include <cstdio>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/time/civil_time.h"
#include "common/text.h"

namespace fleetca::pki::der {

bool Reader::Next(uint8_t* tag, absl::string_view* contents, absl::string_view* element) {
  const absl::string_view in = rest_;
  rest_ = absl::string_view();  // failed until proven otherwise
  if (in.size() < 2) return false;
  const uint8_t t = static_cast<uint8_t>(in[0]);
  if ((t & 0x1f) == 0x1f) return false;  // high tag numbers: not used by X.509
  size_t pos = 1;
  const uint8_t first = static_cast<uint8_t>(in[pos++]);
  size_t length = 0;
  if (first < 0x80) {
    length = first;
  } else {
    const size_t octets = first & 0x7f;
    // 0x80 is BER's indefinite length; more than 4 length octets is never needed here.
    if (octets == 0 || octets > 4 || in.size() - pos < octets) return false;
    for (size_t i = 0; i < octets; ++i) {
      length = (length << 8) | static_cast<uint8_t>(in[pos++]);
    }
    // Minimal: the short form where it fits, no leading zero octet.
    if (length < 0x80 || static_cast<uint8_t>(in[2]) == 0) return false;
  }
  if (in.size() - pos < length) return false;
  *tag = t;
  if (contents != nullptr) *contents = in.substr(pos, length);
  if (element != nullptr) *element = in.substr(0, pos + length);
  rest_ = in.substr(pos + length);
  return true;
}

bool Reader::Expect(uint8_t tag, absl::string_view* contents, absl::string_view* element) {
  uint8_t t = 0;
  if (!Next(&t, contents, element)) return false;
  if (t != tag) {
    rest_ = absl::string_view();
    return false;
  }
  return true;
}

bool Reader::PeekTag(uint8_t* tag) const {
  if (rest_.empty()) return false;
  *tag = static_cast<uint8_t>(rest_[0]);
  return true;
}

std::string OidToText(absl::string_view contents) {
  if (contents.empty()) return std::string();
  std::string out;
  uint64_t arc = 0;
  bool first = true;
  bool in_arc = false;
  for (size_t i = 0; i < contents.size(); ++i) {
    const uint8_t b = static_cast<uint8_t>(contents[i]);
    if (!in_arc && b == 0x80) return std::string();    // non-minimal
    if (arc > (UINT64_MAX >> 8)) return std::string();  // too large
    arc = (arc << 7) | (b & 0x7f);
    in_arc = (b & 0x80) != 0;
    if (in_arc) continue;
    if (first) {
      // The first subidentifier packs two arcs (X.690 section 8.19.4).
      const uint64_t top = arc < 40 ? 0 : arc < 80 ? 1 : 2;
      out = std::to_string(top) + "." + std::to_string(arc - 40 * top);
      first = false;
    } else {
      out += "." + std::to_string(arc);
    }
    arc = 0;
  }
  if (in_arc) return std::string();  // truncated
  return out;
}

std::string OidFromText(absl::string_view text) {
  std::vector<uint64_t> arcs;
  for (absl::string_view part : absl::StrSplit(text, '.')) {
    uint64_t v = 0;
    if (part.empty() || !absl::SimpleAtoi(part, &v)) return std::string();
    arcs.push_back(v);
  }
  if (arcs.size() < 2 || arcs[0] > 2 || (arcs[0] < 2 && arcs[1] >= 40)) return std::string();
  std::string out;
  auto append = [&out](uint64_t v) {
    char buf[10];
    int n = 0;
    do {
      buf[n++] = static_cast<char>(v & 0x7f);
      v >>= 7;
    } while (v != 0);
    while (n > 0) {
      --n;
      out.push_back(static_cast<char>(buf[n] | (n > 0 ? 0x80 : 0)));
    }
  };
  append(arcs[0] * 40 + arcs[1]);
  for (size_t i = 2; i < arcs.size(); ++i) append(arcs[i]);
  return out;
}

void AppendHeader(std::string* out, uint8_t tag, size_t length) {
  out->push_back(static_cast<char>(tag));
  if (length < 0x80) {
    out->push_back(static_cast<char>(length));
    return;
  }
  char buf[sizeof(size_t)];
  int n = 0;
  while (length != 0) {
    buf[n++] = static_cast<char>(length & 0xff);
    length >>= 8;
  }
  out->push_back(static_cast<char>(0x80 | n));
  while (n > 0) out->push_back(buf[--n]);
}

void AppendElement(std::string* out, uint8_t tag, absl::string_view contents) {
  AppendHeader(out, tag, contents.size());
  out->append(contents.data(), contents.size());
}

std::string Element(uint8_t tag, absl::string_view contents) {
  std::string out;
  out.reserve(contents.size() + 6);
  AppendElement(&out, tag, contents);
  return out;
}

void AppendUnsignedInteger(std::string* out, absl::string_view magnitude) {
  while (magnitude.size() > 1 && magnitude[0] == 0) magnitude.remove_prefix(1);
  if (magnitude.empty()) {
    AppendElement(out, kInteger, absl::string_view("\0", 1));
    return;
  }
  const bool pad = (static_cast<uint8_t>(magnitude[0]) & 0x80) != 0;
  AppendHeader(out, kInteger, magnitude.size() + (pad ? 1 : 0));
  if (pad) out->push_back('\0');
  out->append(magnitude.data(), magnitude.size());
}

void AppendBitString(std::string* out, absl::string_view bytes) {
  AppendHeader(out, kBitString, bytes.size() + 1);
  out->push_back('\0');
  out->append(bytes.data(), bytes.size());
}

void AppendTime(std::string* out, absl::Time t) {
  const absl::CivilSecond c = absl::ToCivilSecond(t, absl::UTCTimeZone());
  // Digits written by hand: a CRL of a million entries writes a million times.
  char buf[16];
  char* p = buf;
  auto two = [&p](int v) {
    *p++ = static_cast<char>('0' + v / 10);
    *p++ = static_cast<char>('0' + v % 10);
  };
  const int year = static_cast<int>(c.year());
  const bool utc_time = year >= 1950 && year <= 2049;
  if (utc_time) {
    two(year % 100);
  } else {
    two(year / 100);
    two(year % 100);
  }
  two(c.month());
  two(c.day());
  two(c.hour());
  two(c.minute());
  two(c.second());
  *p++ = 'Z';
  AppendElement(out, utc_time ? kUtcTime : kGeneralizedTime,
                absl::string_view(buf, static_cast<size_t>(p - buf)));
}

namespace {

// Wide decodes BMPString (width 2) or UniversalString (width 4): big-endian code points,
// no surrogates, nothing above U+10FFFF.
bool Wide(absl::string_view s, size_t width, std::string* utf8) {
  if (s.size() % width != 0) return false;
  for (size_t i = 0; i < s.size(); i += width) {
    uint32_t cp = 0;
    for (size_t j = 0; j < width; ++j) cp = (cp << 8) | static_cast<uint8_t>(s[i + j]);
    if ((cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff) return false;
    AppendUtf8(utf8, cp);
  }
  return true;
}

}  // namespace

bool Utf8Value(uint8_t tag, absl::string_view s, std::string* utf8) {
  utf8->clear();
  switch (tag) {
    case kUtf8String:
      if (!IsValidUtf8(s)) return false;
      utf8->assign(s.data(), s.size());
      return true;
    case kPrintableString:  // read leniently, as OpenSSL does: any ASCII
    case kIa5String:
      for (const char c : s) {
        if (static_cast<uint8_t>(c) >= 0x80) return false;
      }
      utf8->assign(s.data(), s.size());
      return true;
    case kTeletexString:  // read as Latin-1, as OpenSSL does
      for (const char c : s) AppendUtf8(utf8, static_cast<uint8_t>(c));
      return true;
    case kBmpString:
      return Wide(s, 2, utf8);
    case kUniversalString:
      return Wide(s, 4, utf8);
    default:
      return false;
  }
}

}  // namespace fleetca::pki::der
