#pragma once

// ACL topic patterns (AclRule.topic_pattern): a topic filter holding substitutions that
// are resolved per principal into the filter a rule applies to.

#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace fleetca::acl {

// kMaxPatternSize is the largest topic pattern, in bytes (AclRule.topic_pattern).
inline constexpr size_t kMaxPatternSize = 1024;

// AttributeSource gives the device attributes that "%{name}" substitutes. An interface,
// not a map type, because the server holds attributes in a std::map and the plugin in a
// protobuf map: each wraps what it has, and a lookup neither copies the map nor builds a
// key string.
class AttributeSource {
 public:
  virtual ~AttributeSource() = default;
  // Attribute returns the value of the attribute `name`, or nullopt when it is not set.
  // The value must stay valid until the Substitute call that asked for it returns.
  virtual std::optional<absl::string_view> Attribute(absl::string_view name) const = 0;
};

// MapAttributeSource reads attributes from a std::map it borrows (it must outlive this
// object). Lookups scan the map (a device has at most 32 attributes) instead of building
// a std::string key for find().
class MapAttributeSource final : public AttributeSource {
 public:
  explicit MapAttributeSource(const std::map<std::string, std::string>& attributes)
      : attributes_(attributes) {}
  std::optional<absl::string_view> Attribute(absl::string_view name) const override;

 private:
  const std::map<std::string, std::string>& attributes_;
};

// Substitutions are the values of one principal. The views are borrowed for the duration
// of a Substitute call.
struct Substitutions {
  // client_id is the MQTT client id (%c): the comm-ID of a device, the name of an identity.
  absl::string_view client_id;
  // username is the MQTT username (%u), set by the broker from the certificate CN.
  absl::string_view username;
  // attributes give %{name}; null means no attribute is set (an identity has none).
  const AttributeSource* attributes = nullptr;
};

// TopicPattern is a parsed, valid topic pattern. Copyable; immutable once parsed.
class TopicPattern {
 public:
  // Parse checks a pattern: 1 to 1,024 bytes of UTF-8 without NUL, a valid topic filter
  // ('+' and '#' as whole levels, '#' last) when substitutions are read as literal text,
  // and only these '%' sequences: "%c" (client id), "%u" (username), "%{name}" (device
  // attribute; name is 1 to 63 characters of [A-Za-z0-9_.-] starting with a letter or a
  // digit) and "%%" (a literal '%'). Returns INVALID_ARGUMENT naming the reason and the
  // byte offset, for example "pattern holds an unknown substitution \"%x\" at offset 8".
  static absl::StatusOr<TopicPattern> Parse(absl::string_view pattern);

  // text is the pattern as given to Parse.
  const std::string& text() const { return text_; }

  // has_substitutions is true when the pattern uses %c, %u or %{name} (a "%%" alone does
  // not count: it resolves the same for everyone).
  bool has_substitutions() const { return has_substitutions_; }

  // attributes are the attribute names the pattern uses, in order of first use, each once.
  const std::vector<std::string>& attributes() const { return attributes_; }

  // Substitute returns the topic filter for one principal. FAILED_PRECONDITION, naming
  // the value and the reason ("attribute site is not set", "client id is empty",
  // "username holds '/'"), when a value the pattern uses is missing or empty, holds '/',
  // '+', '#' or NUL, is not valid UTF-8, or starts with '$' at the very start of the
  // filter: a substituted value can never widen the rule, change its level structure or
  // reach the broker's '$' topics. Also FAILED_PRECONDITION if the result is not a valid
  // topic filter (longer than 65,535 bytes).
  absl::StatusOr<std::string> Substitute(const Substitutions& values) const;

 private:
  // Piece is a run of literal text (with "%%" already turned into '%') or a substitution.
  struct Piece {
    enum class Kind { kLiteral, kClientId, kUsername, kAttribute };
    Kind kind;
    std::string text;  // the literal text, or the attribute name
  };

  TopicPattern() = default;

  std::string text_;
  std::vector<Piece> pieces_;
  std::vector<std::string> attributes_;
  bool has_substitutions_ = false;
};

}  // namespace fleetca::acl
