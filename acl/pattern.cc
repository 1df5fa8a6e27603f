#include "acl/pattern.h"

#include <algorithm>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "acl/topic.h"

namespace fleetca::acl {
namespace {

constexpr size_t kMaxAttributeNameLength = 63;

bool IsAlnum(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

bool IsValidAttributeName(absl::string_view name) {
  if (name.empty() || name.size() > kMaxAttributeNameLength || !IsAlnum(name[0])) {
    return false;
  }
  return std::all_of(name.begin(), name.end(),
                     [](char c) { return IsAlnum(c) || c == '_' || c == '.' || c == '-'; });
}

// CheckValue checks one value substituted into a pattern. A value must stay inside the
// level that holds it and be plain text there: '/' would add levels, '+' and '#' would
// widen the rule, NUL and malformed UTF-8 would make the filter invalid. An empty value is
// refused too, so "devices/%c/#" cannot become "devices//#" for a principal with no id.
absl::Status CheckValue(absl::string_view what, absl::string_view value, bool starts_filter) {
  if (value.empty()) return absl::FailedPreconditionError(absl::StrCat(what, " is empty"));
  for (const char c : value) {
    if (c == '/' || c == '+' || c == '#') {
      return absl::FailedPreconditionError(absl::StrCat(what, " holds '", std::string(1, c), "'"));
    }
    if (c == '\0') return absl::FailedPreconditionError(absl::StrCat(what, " holds a NUL byte"));
  }
  if (!internal::IsValidUtf8(value)) {
    return absl::FailedPreconditionError(absl::StrCat(what, " is not valid UTF-8"));
  }
  // MQTT 4.7.2: topics starting with '$' belong to the broker ($SYS/...), and no wildcard
  // rule reaches them. A value opening the filter with '$' would turn "%{site}/#" into
  // "$SYS/#": refuse it, as for the other characters that change what a rule means.
  if (starts_filter && value[0] == '$') {
    return absl::FailedPreconditionError(
        absl::StrCat(what, " starts with '$' at the start of the filter"));
  }
  return absl::OkStatus();
}

absl::Status Invalid(absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat("pattern ", why));
}

}  // namespace

std::optional<absl::string_view> MapAttributeSource::Attribute(absl::string_view name) const {
  for (const auto& [key, value] : attributes_) {
    if (key == name) return absl::string_view(value);
  }
  return std::nullopt;
}

absl::StatusOr<TopicPattern> TopicPattern::Parse(absl::string_view pattern) {
  // 1. The filter rules, on the raw text. A valid '%' sequence holds no '/', '+' or '#',
  //    so checking the raw text is checking the filter with every substitution read as
  //    opaque literal text, as AclRule.topic_pattern defines it; an invalid one fails
  //    below if not here.
  if (absl::Status s = internal::CheckFilter("pattern", pattern, kMaxPatternSize); !s.ok()) {
    return s;
  }

  // 2. The '%' sequences, left to right ("%%c" is a literal '%' then 'c').
  TopicPattern result;
  result.text_ = std::string(pattern);
  std::string literal;
  const auto flush_literal = [&result, &literal]() {
    if (!literal.empty()) {
      result.pieces_.push_back({Piece::Kind::kLiteral, std::move(literal)});
      literal.clear();
    }
  };
  const size_t n = pattern.size();
  for (size_t i = 0; i < n; ++i) {
    const char c = pattern[i];
    if (c != '%') {
      literal.push_back(c);
      continue;
    }
    if (i + 1 == n) {
      return Invalid(
          absl::StrCat("ends with a lone '%' (at offset ", i, "); write \"%%\" for a literal '%'"));
    }
    switch (pattern[i + 1]) {
      case '%':
        literal.push_back('%');
        break;
      case 'c':
        flush_literal();
        result.pieces_.push_back({Piece::Kind::kClientId, ""});
        break;
      case 'u':
        flush_literal();
        result.pieces_.push_back({Piece::Kind::kUsername, ""});
        break;
      case '{': {
        const size_t close = pattern.find('}', i + 2);
        if (close == absl::string_view::npos) {
          return Invalid(absl::StrCat("holds an unterminated \"%{\" at offset ", i));
        }
        const absl::string_view name = pattern.substr(i + 2, close - i - 2);
        if (!IsValidAttributeName(name)) {
          return Invalid(absl::StrCat(
              "holds an invalid attribute name \"", absl::CHexEscape(name), "\" at offset ", i,
              "; a name is 1 to 63 characters of [A-Za-z0-9_.-] starting with a letter or "
              "a digit"));
        }
        flush_literal();
        result.pieces_.push_back({Piece::Kind::kAttribute, std::string(name)});
        if (std::find(result.attributes_.begin(), result.attributes_.end(), name) ==
            result.attributes_.end()) {
          result.attributes_.emplace_back(name);
        }
        i = close - 1;  // the ++i below and the loop's step land just past the '}'
        break;
      }
      default:
        return Invalid(absl::StrCat("holds an unknown substitution \"",
                                    absl::CHexEscape(pattern.substr(i, 2)), "\" at offset ", i,
                                    "; use %c, %u, %{name}, or %% for a literal '%'"));
    }
    ++i;  // the character after the '%'
  }
  flush_literal();
  result.has_substitutions_ =
      std::any_of(result.pieces_.begin(), result.pieces_.end(),
                  [](const Piece& p) { return p.kind != Piece::Kind::kLiteral; });
  return result;
}

absl::StatusOr<std::string> TopicPattern::Substitute(const Substitutions& values) const {
  std::string out;
  out.reserve(text_.size() + 64);
  for (const Piece& piece : pieces_) {
    absl::string_view value;
    absl::Status status;
    switch (piece.kind) {
      case Piece::Kind::kLiteral:
        out.append(piece.text);
        continue;
      case Piece::Kind::kClientId:
        value = values.client_id;
        status = CheckValue("client id", value, out.empty());
        break;
      case Piece::Kind::kUsername:
        value = values.username;
        status = CheckValue("username", value, out.empty());
        break;
      case Piece::Kind::kAttribute: {
        std::optional<absl::string_view> found;
        if (values.attributes != nullptr) found = values.attributes->Attribute(piece.text);
        if (!found.has_value()) {
          return absl::FailedPreconditionError(
              absl::StrCat("attribute ", piece.text, " is not set"));
        }
        value = *found;
        status = CheckValue(absl::StrCat("attribute ", piece.text), value, out.empty());
        break;
      }
    }
    if (!status.ok()) return status;
    out.append(value.data(), value.size());
  }
  // The values cannot break the filter rules (checked above), but they can make it too
  // long; check the result as a whole anyway, so a bug here cannot emit a bad filter.
  if (absl::Status s = internal::CheckFilter("substituted filter", out, kMaxTopicSize); !s.ok()) {
    return absl::FailedPreconditionError(s.message());
  }
  return out;
}

}  // namespace fleetca::acl
