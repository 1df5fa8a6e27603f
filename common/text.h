#pragma once

// Text checks shared by every input validator.

#include "absl/strings/string_view.h"

namespace fleetca {

// IsValidUtf8 reports whether s is well-formed UTF-8 (no overlong forms, no surrogates,
// nothing above U+10FFFF).
bool IsValidUtf8(absl::string_view s);

// HasControlCharacters reports whether s contains a C0 control character (NUL included)
// or DEL.
bool HasControlCharacters(absl::string_view s);

}  // namespace fleetca
