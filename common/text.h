#pragma once

// Text checks shared by every input validator.

#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"

namespace fleetca {

// IsValidUtf8 reports whether s is well-formed UTF-8 (no overlong forms, no surrogates,
// nothing above U+10FFFF).
bool IsValidUtf8(absl::string_view s);

// HasControlCharacters reports whether s contains a C0 control character (NUL included)
// or DEL.
bool HasControlCharacters(absl::string_view s);

// AppendUtf8 appends the code point cp (at most U+10FFFF, not a surrogate: callers check)
// to out as UTF-8.
void AppendUtf8(std::string* out, uint32_t cp);

}  // namespace fleetca
