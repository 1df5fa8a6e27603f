#include "server/registry/validation.h"

#include <algorithm>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/text.h"

namespace fleetca::registry {
namespace {

bool IsAlnum(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}
bool IsCommIdChar(char c) { return IsAlnum(c) || c == '.' || c == ':' || c == '-'; }
bool IsLowerOrDigit(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

absl::Status Invalid(absl::string_view field, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", why));
}

constexpr char kCommIdRule[] = "must be 1 to 64 characters of [A-Za-z0-9._:-]";

absl::Status CheckCommIdChars(absl::string_view field, absl::string_view value) {
  for (size_t i = 0; i < value.size(); ++i) {
    const char c = value[i];
    if (!IsCommIdChar(c)) {
      const char* what = "a character outside [A-Za-z0-9._:-]";
      if (c == '/' || c == '+' || c == '#') {
        what = "an MQTT topic separator or wildcard";
      } else if (c == ' ') {
        what = "a space";
      } else if (c == '\0') {
        what = "a NUL byte";
      } else if (static_cast<unsigned char>(c) >= 0x80) {
        what = "a non-ASCII byte";
      } else if (static_cast<unsigned char>(c) < 0x20) {
        what = "a control character";
      }
      return Invalid(field, absl::StrCat(kCommIdRule, ", got ", Quote(value), " with ", what,
                                         " at offset ", i));
    }
  }
  return absl::OkStatus();
}

}  // namespace

std::string Quote(absl::string_view value) {
  constexpr size_t kMax = 80;
  const bool cut = value.size() > kMax;
  return absl::StrCat("\"", absl::CHexEscape(value.substr(0, kMax)), cut ? "...\"" : "\"");
}

absl::Status ValidateCommId(absl::string_view field, absl::string_view comm_id) {
  if (comm_id.empty()) return Invalid(field, "is required");
  if (comm_id.size() > kMaxCommIdLength) {
    return Invalid(field, absl::StrCat(kCommIdRule, ", got ", comm_id.size(), " bytes"));
  }
  return CheckCommIdChars(field, comm_id);
}

absl::Status ValidateCommIdPrefix(absl::string_view field, absl::string_view prefix) {
  if (prefix.size() > kMaxCommIdLength) {
    return Invalid(field, absl::StrCat("must be at most 64 characters, got ", prefix.size()));
  }
  return CheckCommIdChars(field, prefix);
}

absl::Status ValidateFreeText(absl::string_view field, absl::string_view text, size_t max_bytes) {
  if (text.size() > max_bytes) {
    return Invalid(field, absl::StrCat("must be at most ", max_bytes, " bytes, got ", text.size()));
  }
  if (!IsValidUtf8(text)) return Invalid(field, "must be valid UTF-8");
  if (HasControlCharacters(text)) {
    return Invalid(field, "must not contain control characters (NUL, newline, ...)");
  }
  return absl::OkStatus();
}

absl::Status ValidateAttributes(absl::string_view field,
                                const std::map<std::string, std::string>& attributes) {
  if (attributes.size() > kMaxAttributes) {
    return Invalid(field, absl::StrCat("at most ", kMaxAttributes, " attributes, got ",
                                       attributes.size()));
  }
  for (const auto& [key, value] : attributes) {
    const bool key_ok = !key.empty() && key.size() <= kMaxAttributeKeyLength &&
                        ((IsAlnum(key[0]) && !(key[0] >= '0' && key[0] <= '9')) ||
                         key[0] == '_') &&
                        std::all_of(key.begin(), key.end(), [](char c) {
                          return IsAlnum(c) || c == '_' || c == '.' || c == '-';
                        });
    if (!key_ok) {
      return Invalid(field, absl::StrCat("key ", Quote(key),
                                         " must be 1 to 63 characters of [A-Za-z0-9_.-] "
                                         "starting with a letter or '_'"));
    }
    RETURN_IF_ERROR(
        ValidateFreeText(absl::StrCat(field, "[", key, "]"), value, kMaxAttributeValueBytes));
  }
  return absl::OkStatus();
}

absl::Status ValidateGroupName(absl::string_view field, absl::string_view group) {
  const bool ok = !group.empty() && group.size() <= kMaxGroupLength && IsLowerOrDigit(group[0]) &&
                  std::all_of(group.begin(), group.end(), [](char c) {
                    return IsLowerOrDigit(c) || c == '.' || c == '_' || c == '-';
                  });
  if (!ok) {
    return Invalid(field, absl::StrCat("must be 1 to 63 characters of [a-z0-9._-] starting "
                                       "with a letter or digit, got ",
                                       Quote(group)));
  }
  return absl::OkStatus();
}

absl::Status NormalizeGroups(absl::string_view field, std::vector<std::string>* groups) {
  if (groups->size() > kMaxGroups) {
    return Invalid(field,
                   absl::StrCat("at most ", kMaxGroups, " groups, got ", groups->size()));
  }
  for (size_t i = 0; i < groups->size(); ++i) {
    RETURN_IF_ERROR(ValidateGroupName(absl::StrCat(field, "[", i, "]"), (*groups)[i]));
  }
  std::sort(groups->begin(), groups->end());
  auto dup = std::adjacent_find(groups->begin(), groups->end());
  if (dup != groups->end()) {
    return Invalid(field, absl::StrCat("group ", Quote(*dup), " is listed twice"));
  }
  return absl::OkStatus();
}

absl::Status ValidateNewDevice(absl::string_view field, storage::Device* device) {
  RETURN_IF_ERROR(ValidateCommId(absl::StrCat(field, ".comm_id"), device->comm_id));
  RETURN_IF_ERROR(ValidateFreeText(absl::StrCat(field, ".display_name"), device->display_name,
                                   kMaxDisplayNameBytes));
  RETURN_IF_ERROR(ValidateFreeText(absl::StrCat(field, ".status_reason"),
                                   device->status_reason, kMaxReasonBytes));
  RETURN_IF_ERROR(ValidateAttributes(absl::StrCat(field, ".attributes"), device->attributes));
  return NormalizeGroups(absl::StrCat(field, ".groups"), &device->groups);
}

}  // namespace fleetca::registry
