#include "common/page_token.h"

#include <openssl/sha.h>

#include <algorithm>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace fleetca {
namespace {

constexpr size_t kMaxTokenBytes = 512;

// Fingerprint: the first 8 bytes of SHA-256 over the filters, hex.
std::string Fingerprint(absl::string_view filters) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(filters.data()), filters.size(), digest);
  return absl::BytesToHexString(absl::string_view(reinterpret_cast<const char*>(digest), 8));
}

}  // namespace

absl::StatusOr<int> PageSize(int requested) {
  if (requested < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("page_size: must not be negative, got ", requested));
  }
  return requested == 0 ? kDefaultPageSize : std::min(requested, kMaxPageSize);
}

std::string EncodePageToken(absl::string_view kind, absl::string_view filters,
                            absl::string_view last_key) {
  std::string token;
  absl::WebSafeBase64Escape(absl::StrCat(kind, "|", Fingerprint(filters), "|", last_key), &token);
  return token;
}

absl::StatusOr<std::string> DecodePageToken(absl::string_view kind, absl::string_view filters,
                                            absl::string_view token) {
  if (token.empty()) return std::string();
  std::string raw;
  std::vector<std::string> parts;
  if (token.size() <= kMaxTokenBytes && absl::WebSafeBase64Unescape(token, &raw)) {
    parts = absl::StrSplit(raw, absl::MaxSplits('|', 2));
  }
  if (parts.size() != 3 || parts[0] != kind) {
    return absl::InvalidArgumentError(absl::StrCat(
        "page_token: not a token returned by this list of ", kind,
        "; send the next_page_token of the previous page, or nothing for the first page"));
  }
  if (parts[1] != Fingerprint(filters)) {
    return absl::InvalidArgumentError(
        "page_token: was issued for other filters; send the same filters as the first page");
  }
  return parts[2];
}

}  // namespace fleetca
