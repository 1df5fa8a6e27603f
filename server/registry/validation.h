#pragma once

// Input rules of the device registry. Every failure is INVALID_ARGUMENT with a message that
// starts with the field's path (as the API names it) and says why, e.g.
//   device.comm_id: must be 1 to 64 characters of [A-Za-z0-9._:-], got "a/b"

#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "storage/device_store.h"

namespace fleetca::registry {

inline constexpr size_t kMaxCommIdLength = 64;
inline constexpr size_t kMaxDisplayNameBytes = 256;
inline constexpr size_t kMaxReasonBytes = 256;
inline constexpr size_t kMaxAttributes = 32;
inline constexpr size_t kMaxAttributeKeyLength = 63;
inline constexpr size_t kMaxAttributeValueBytes = 256;
inline constexpr size_t kMaxGroups = 16;
inline constexpr size_t kMaxGroupLength = 63;
inline constexpr size_t kMaxBatchSize = 10000;

// ValidateCommId: 1 to 64 characters of [A-Za-z0-9._:-], case-sensitive. The comm-ID becomes
// the certificate CN, the MQTT client id and a topic level, so '/', '+', '#', spaces, NUL and
// non-ASCII are refused.
absl::Status ValidateCommId(absl::string_view field, absl::string_view comm_id);

// ValidateCommIdPrefix: like a comm-ID but may be empty.
absl::Status ValidateCommIdPrefix(absl::string_view field, absl::string_view prefix);

// ValidateFreeText: at most max_bytes of UTF-8, no control characters.
absl::Status ValidateFreeText(absl::string_view field, absl::string_view text, size_t max_bytes);

// ValidateAttributes: at most 32 entries; keys 1 to 63 characters of [A-Za-z0-9_.-] starting
// with a letter or '_'; values free text of at most 256 bytes.
absl::Status ValidateAttributes(absl::string_view field,
                                const std::map<std::string, std::string>& attributes);

// ValidateGroupName: 1 to 63 characters of [a-z0-9._-] starting with a letter or digit.
absl::Status ValidateGroupName(absl::string_view field, absl::string_view group);

// NormalizeGroups validates each group and sorts them; duplicates are refused.
absl::Status NormalizeGroups(absl::string_view field, std::vector<std::string>* groups);

// ValidateNewDevice checks a device to register (field is "device" or "devices[7]") and
// normalizes its groups.
absl::Status ValidateNewDevice(absl::string_view field, storage::Device* device);

// Quote returns value for an error message: quoted, C-escaped, cut at 80 bytes.
std::string Quote(absl::string_view value);

}  // namespace fleetca::registry
