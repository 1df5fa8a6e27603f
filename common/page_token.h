#pragma once

// Page tokens for keyset pagination, shared by every List RPC: an opaque base64url string
// carrying the last key of the page and a fingerprint of the query's filters, so a token
// sent with other filters fails loudly instead of silently skipping rows.

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace fleetca {

inline constexpr int kDefaultPageSize = 100;
inline constexpr int kMaxPageSize = 1000;

// PageSize applies every List RPC's page_size rule: 0 means kDefaultPageSize, larger than
// kMaxPageSize is capped, negative is INVALID_ARGUMENT "page_size: ...".
absl::StatusOr<int> PageSize(int requested);

// EncodePageToken: `kind` names the list ("devices", "certificates"...), `filters` is a
// canonical rendering of the query's filters, `last_key` the last key returned.
std::string EncodePageToken(absl::string_view kind, absl::string_view filters,
                            absl::string_view last_key);

// DecodePageToken returns the last key ("" for an empty token). INVALID_ARGUMENT
// "page_token: ..." when the token is not one of ours for this kind or was issued for other
// filters.
absl::StatusOr<std::string> DecodePageToken(absl::string_view kind, absl::string_view filters,
                                            absl::string_view token);

}  // namespace fleetca
