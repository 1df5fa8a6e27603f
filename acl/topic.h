#pragma once

// MQTT topic names and topic filters: validation and matching (MQTT 3.1.1 and 5.0,
// section 4.7). Shared by the server and the mosquitto plugin, so it depends on Abseil and
// the standard library only.

#include <cstddef>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace fleetca::acl {

// kMaxTopicSize is the largest topic name or filter MQTT can carry (a two-byte length).
inline constexpr size_t kMaxTopicSize = 65535;

// ValidateTopicName checks a topic name a client publishes to (or receives on): 1 to 65,535
// bytes of well-formed UTF-8 (no overlong form, no surrogate, nothing above U+10FFFF), no
// NUL, and no wildcard ('+' or '#'). Returns INVALID_ARGUMENT naming the reason and the
// byte offset, for example "topic holds the wildcard '+' at offset 4".
absl::Status ValidateTopicName(absl::string_view topic);

// ValidateTopicFilter checks a topic filter a client subscribes to: the UTF-8, NUL and size
// rules of ValidateTopicName, '+' only as a whole level, '#' only as a whole and last level.
// Returns INVALID_ARGUMENT naming the reason and the byte offset.
absl::Status ValidateTopicFilter(absl::string_view filter);

// IsValidTopicName and IsValidTopicFilter are the checks above without the message; they
// never allocate, for hot paths that only need a yes or no.
bool IsValidTopicName(absl::string_view topic);
bool IsValidTopicFilter(absl::string_view filter);

// FilterMatchesTopic reports whether the topic filter matches the topic name (MQTT 4.7):
// levels split on '/', empty levels count ("a//b" has three); '+' matches exactly one
// level, empty included; '#' matches its parent level and any number of child levels
// ("a/#" matches "a" and "a/b/c"); a topic starting with '$' is never matched by a filter
// whose first level is '+' or '#' (4.7.2). Never allocates.
//
// Both arguments must be valid (see above). On a malformed filter or topic the result is
// false or a literal comparison, never a crash; a '#' that is not the last level matches
// nothing.
bool FilterMatchesTopic(absl::string_view filter, absl::string_view topic);

// FilterCoversFilter reports whether every topic the `requested` filter can match is also
// matched by the `rule` filter: the check for a SUBSCRIBE. "devices/x/#" covers
// "devices/x/+/status" and "devices/x/#", not "devices/+/status" nor "#". Since '#' also
// matches its parent level, "a/+/#" does not cover "a/#" (which matches "a"); but "+/#"
// covers "#" and "/+/#" covers "/#", whose parent would be the empty topic, which does not
// exist. A rule whose first level is '+' or '#' covers no filter whose first level starts
// with '$' (4.7.2). The answer is exact: true if and only if the topic sets nest. Never
// allocates.
//
// Both arguments must be valid filters; on malformed input the result is false or a
// literal comparison, never a crash.
bool FilterCoversFilter(absl::string_view rule, absl::string_view requested);

namespace internal {

// IsValidUtf8 reports whether s is well-formed UTF-8 (no overlong form, no surrogate,
// nothing above U+10FFFF; NUL is allowed here). acl/ cannot use common/text.h: the plugin
// links this library alone.
bool IsValidUtf8(absl::string_view s);

// CheckFilter is ValidateTopicFilter with the size limit and the noun that starts the
// message ("filter", "pattern") given by the caller; TopicPattern::Parse uses it.
absl::Status CheckFilter(absl::string_view noun, absl::string_view text, size_t max_size);

}  // namespace internal
}  // namespace fleetca::acl
