// Tests for the strict DER reader and writer used on the issuance hot path, checked
// against OpenSSL's own encoders where it has one.
#include "pki/der.h"

#include <openssl/asn1.h>
#include <openssl/objects.h>

#include <string>

#include "absl/strings/escaping.h"
#include "absl/time/civil_time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pki/openssl_util.h"

namespace fleetca::pki::der {
namespace {

std::string Bytes(std::initializer_list<int> bytes) {
  std::string out;
  for (int b : bytes) out.push_back(static_cast<char>(b));
  return out;
}

TEST(DerReaderTest, ReadsElementsInOrder) {
  const std::string data = Bytes({0x30, 0x03, 0x02, 0x01, 0x05, 0x04, 0x00});
  Reader r(data);
  uint8_t tag = 0;
  absl::string_view contents, element;
  ASSERT_TRUE(r.Next(&tag, &contents, &element));
  EXPECT_EQ(tag, kSequence);
  EXPECT_EQ(contents, Bytes({0x02, 0x01, 0x05}));
  EXPECT_EQ(element, data.substr(0, 5));
  ASSERT_TRUE(r.Expect(kOctetString, &contents));
  EXPECT_TRUE(contents.empty());
  EXPECT_TRUE(r.empty());
  EXPECT_FALSE(r.Next(&tag, &contents));
}

TEST(DerReaderTest, LongLengths) {
  std::string data = Bytes({0x04, 0x81, 0x80}) + std::string(0x80, 'x');
  Reader r(data);
  absl::string_view contents;
  ASSERT_TRUE(r.Expect(kOctetString, &contents));
  EXPECT_EQ(contents.size(), 0x80u);
  std::string big = Bytes({0x04, 0x82, 0x01, 0x00}) + std::string(0x100, 'y');
  Reader r2(big);
  ASSERT_TRUE(r2.Expect(kOctetString, &contents));
  EXPECT_EQ(contents.size(), 0x100u);
}

TEST(DerReaderTest, RefusesWhatIsNotDer) {
  const std::string cases[] = {
      Bytes({0x30}),                                  // no length
      Bytes({0x30, 0x05, 0x00}),                      // length past the end
      Bytes({0x30, 0x80, 0x00, 0x00}),                // BER indefinite length
      Bytes({0x04, 0x81, 0x05, 1, 2, 3, 4, 5}),       // long form where short fits
      Bytes({0x04, 0x82, 0x00, 0x80}),                // leading zero length octet
      Bytes({0x1f, 0x81, 0x00, 0x00}),                // high tag number
      Bytes({0x04, 0x85, 1, 0, 0, 0, 0}),             // five length octets
  };
  for (const std::string& c : cases) {
    Reader r(c);
    uint8_t tag = 0;
    absl::string_view contents;
    EXPECT_FALSE(r.Next(&tag, &contents)) << absl::BytesToHexString(c);
    EXPECT_TRUE(r.empty()) << "a failed reader reads nothing more";
  }
  const std::string integer = Bytes({0x02, 0x01, 0x00});  // Reader keeps a view: keep it alive
  Reader wrong_tag(integer);
  absl::string_view contents;
  EXPECT_FALSE(wrong_tag.Expect(kSequence, &contents));
}

TEST(DerOidTest, RoundTripsAndAgreesWithOpenSsl) {
  for (const char* text : {"2.5.29.17", "1.2.840.10045.3.1.7", "1.3.132.0.34", "2.999.3",
                           "1.3.6.1.4.1.311.2.1.14", "0.9.2342.19200300.100.1.1"}) {
    const std::string contents = OidFromText(text);
    ASSERT_FALSE(contents.empty()) << text;
    EXPECT_EQ(OidToText(contents), text);
    ASN1_OBJECT* obj = OBJ_txt2obj(text, /*no_name=*/1);
    ASSERT_NE(obj, nullptr) << text;
    const std::string openssl(reinterpret_cast<const char*>(OBJ_get0_data(obj)),
                              OBJ_length(obj));
    ASN1_OBJECT_free(obj);
    EXPECT_EQ(contents, openssl) << text;
  }
  for (const char* bad : {"", "1", "3.1", "1.40", "1..2", "1.2.x"}) {
    EXPECT_EQ(OidFromText(bad), "") << bad;
  }
  EXPECT_EQ(OidToText(""), "");
  EXPECT_EQ(OidToText(Bytes({0x2a, 0x80, 0x01})), "") << "non-minimal arc";
  EXPECT_EQ(OidToText(Bytes({0x2a, 0x86})), "") << "truncated arc";
}

TEST(DerWriterTest, IntegersAndBitStrings) {
  std::string out;
  AppendUnsignedInteger(&out, Bytes({0x7f}));
  AppendUnsignedInteger(&out, Bytes({0x80}));
  AppendUnsignedInteger(&out, Bytes({0x00, 0x00, 0x01}));
  AppendUnsignedInteger(&out, "");
  AppendBitString(&out, Bytes({0xab}));
  EXPECT_EQ(out, Bytes({0x02, 0x01, 0x7f, 0x02, 0x02, 0x00, 0x80, 0x02, 0x01, 0x01, 0x02, 0x01,
                        0x00, 0x03, 0x02, 0x00, 0xab}));
  std::string long_element;
  AppendElement(&long_element, kOctetString, std::string(300, 'z'));
  EXPECT_EQ(long_element.substr(0, 4), Bytes({0x04, 0x82, 0x01, 0x2c}));
}

TEST(DerWriterTest, TimesMatchOpenSsl) {
  // UTCTime through 2049, GeneralizedTime from 2050 (RFC 5280 section 4.1.2.5).
  const absl::CivilSecond cases[] = {
      absl::CivilSecond(1950, 1, 1, 0, 0, 0),   absl::CivilSecond(1999, 12, 31, 23, 59, 59),
      absl::CivilSecond(2026, 11, 23, 7, 8, 9), absl::CivilSecond(2049, 12, 31, 23, 59, 59),
      absl::CivilSecond(2050, 1, 1, 0, 0, 0),   absl::CivilSecond(9999, 12, 31, 23, 59, 59)};
  for (const absl::CivilSecond& c : cases) {
    const absl::Time t = absl::FromCivil(c, absl::UTCTimeZone());
    std::string mine;
    AppendTime(&mine, t);
    ASN1_TIME* theirs = ASN1_TIME_set(nullptr, absl::ToTimeT(t));
    ASSERT_NE(theirs, nullptr);
    unsigned char* encoded = nullptr;
    const int len = i2d_ASN1_TIME(theirs, &encoded);
    ASSERT_GT(len, 0);
    EXPECT_EQ(mine, std::string(reinterpret_cast<const char*>(encoded), len)) << c;
    OPENSSL_free(encoded);
    ASN1_TIME_free(theirs);
  }
}

TEST(DerStringTest, DirectoryStringsToUtf8) {
  std::string out;
  EXPECT_TRUE(Utf8Value(kUtf8String, "d\xc3\xa9v", &out));
  EXPECT_EQ(out, "d\xc3\xa9v");
  EXPECT_FALSE(Utf8Value(kUtf8String, "\xc3", &out));
  EXPECT_TRUE(Utf8Value(kPrintableString, "dev-1", &out));
  EXPECT_FALSE(Utf8Value(kIa5String, "\xe9", &out));
  EXPECT_TRUE(Utf8Value(kTeletexString, "d\xe9v", &out));
  EXPECT_EQ(out, "d\xc3\xa9v");
  EXPECT_TRUE(Utf8Value(kBmpString, Bytes({0x00, 'd', 0x00, 0xe9}), &out));
  EXPECT_EQ(out, "d\xc3\xa9");
  EXPECT_FALSE(Utf8Value(kBmpString, Bytes({0x00}), &out)) << "odd length";
  EXPECT_FALSE(Utf8Value(kBmpString, Bytes({0xd8, 0x00}), &out)) << "surrogate";
  EXPECT_TRUE(Utf8Value(kUniversalString, Bytes({0, 1, 0xf6, 0x00}), &out));
  EXPECT_EQ(out, "\xf0\x9f\x98\x80");
  EXPECT_FALSE(Utf8Value(kUniversalString, Bytes({0, 0x11, 0, 0}), &out)) << "above U+10FFFF";
  EXPECT_FALSE(Utf8Value(kOctetString, "x", &out)) << "not a string type";
}

}  // namespace
}  // namespace fleetca::pki::der
