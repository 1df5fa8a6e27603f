#include "acl/topic.h"

#include "absl/strings/str_cat.h"

namespace fleetca::acl {
namespace {

// Utf8SequenceLength returns the length of the well-formed UTF-8 sequence starting at
// s[i] (a byte >= 0x80), or 0 when it is malformed. The ranges of the second byte are
// those of RFC 3629 section 4: they exclude overlong forms, surrogates and code points
// above U+10FFFF.
size_t Utf8SequenceLength(absl::string_view s, size_t i) {
  const auto c = static_cast<unsigned char>(s[i]);
  size_t len;
  unsigned char lo = 0x80, hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    len = 3;
    if (c == 0xE0) lo = 0xA0;  // overlong
    if (c == 0xED) hi = 0x9F;  // surrogates U+D800..U+DFFF
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4;
    if (c == 0xF0) lo = 0x90;  // overlong
    if (c == 0xF4) hi = 0x8F;  // above U+10FFFF
  } else {
    return 0;  // a continuation byte, C0/C1 (always overlong) or F5..FF
  }
  if (len > s.size() - i) return 0;
  const auto c1 = static_cast<unsigned char>(s[i + 1]);
  if (c1 < lo || c1 > hi) return 0;
  for (size_t k = 2; k < len; ++k) {
    const auto ck = static_cast<unsigned char>(s[i + k]);
    if (ck < 0x80 || ck > 0xBF) return 0;
  }
  return len;
}

enum class Kind { kTopicName, kFilter };

// Problem is the first defect found in a topic or filter. Checking builds no message, so
// the bool checks never allocate; Describe turns it into one for the Validate functions.
struct Problem {
  enum class Code {
    kNone,
    kEmpty,
    kTooLong,
    kBadUtf8,
    kNul,
    kWildcardInName,
    kPlusInsideLevel,
    kHashInsideLevel,
    kHashNotLast,
  };
  Code code = Code::kNone;
  size_t offset = 0;
};

Problem Check(absl::string_view s, Kind kind, size_t max_size) {
  using Code = Problem::Code;
  if (s.empty()) return {Code::kEmpty, 0};
  if (s.size() > max_size) return {Code::kTooLong, 0};
  const size_t n = s.size();
  size_t level_start = 0;
  for (size_t i = 0; i < n; ++i) {
    const char c = s[i];
    if (static_cast<unsigned char>(c) >= 0x80) {
      const size_t len = Utf8SequenceLength(s, i);
      if (len == 0) return {Code::kBadUtf8, i};
      i += len - 1;
      continue;
    }
    switch (c) {
      case '\0':
        // MQTT 1.5.4: a UTF-8 string must not hold U+0000.
        return {Code::kNul, i};
      case '/':
        level_start = i + 1;
        break;
      case '+':
      case '#': {
        if (kind == Kind::kTopicName) return {Code::kWildcardInName, i};
        // MQTT 4.7.1: a wildcard occupies a whole level, and '#' must be the last one.
        const bool whole = i == level_start && (i + 1 == n || s[i + 1] == '/');
        if (!whole) return {c == '+' ? Code::kPlusInsideLevel : Code::kHashInsideLevel, i};
        if (c == '#' && i + 1 != n) return {Code::kHashNotLast, i};
        break;
      }
      default:
        break;
    }
  }
  return {};
}

absl::Status Describe(absl::string_view noun, absl::string_view s, size_t max_size,
                      const Problem& p) {
  using Code = Problem::Code;
  const size_t at = p.offset;
  switch (p.code) {
    case Code::kNone:
      return absl::OkStatus();
    case Code::kEmpty:
      return absl::InvalidArgumentError(absl::StrCat(noun, " is empty"));
    case Code::kTooLong:
      return absl::InvalidArgumentError(
          absl::StrCat(noun, " is ", s.size(), " bytes, more than the ", max_size, " allowed"));
    case Code::kBadUtf8:
      return absl::InvalidArgumentError(
          absl::StrCat(noun, " is not valid UTF-8 (at offset ", at, ")"));
    case Code::kNul:
      return absl::InvalidArgumentError(absl::StrCat(noun, " holds a NUL byte at offset ", at));
    case Code::kWildcardInName:
      return absl::InvalidArgumentError(absl::StrCat(noun, " holds a wildcard ('", s.substr(at, 1),
                                                     "' at offset ", at,
                                                     "); wildcards are for subscriptions only"));
    case Code::kPlusInsideLevel:
      return absl::InvalidArgumentError(absl::StrCat(noun, " holds '+' inside a level (at offset ",
                                                     at, "); '+' must be a whole level"));
    case Code::kHashInsideLevel:
      return absl::InvalidArgumentError(absl::StrCat(noun, " holds '#' inside a level (at offset ",
                                                     at, "); '#' must be a whole level"));
    case Code::kHashNotLast:
      return absl::InvalidArgumentError(absl::StrCat(noun,
                                                     " holds '#' before its last level (at offset ",
                                                     at, "); '#' must be the last level"));
  }
  return absl::InternalError("unknown topic problem");
}

// NextLevel returns the level of s starting at `start` (up to the next '/' or the end) and
// sets *end to the offset just past it: s.size() for the last level.
absl::string_view NextLevel(absl::string_view s, size_t start, size_t* end) {
  size_t e = s.find('/', start);
  if (e == absl::string_view::npos) e = s.size();
  *end = e;
  return s.substr(start, e - start);
}

}  // namespace

absl::Status ValidateTopicName(absl::string_view topic) {
  return Describe("topic", topic, kMaxTopicSize, Check(topic, Kind::kTopicName, kMaxTopicSize));
}

absl::Status ValidateTopicFilter(absl::string_view filter) {
  return internal::CheckFilter("filter", filter, kMaxTopicSize);
}

bool IsValidTopicName(absl::string_view topic) {
  return Check(topic, Kind::kTopicName, kMaxTopicSize).code == Problem::Code::kNone;
}

bool IsValidTopicFilter(absl::string_view filter) {
  return Check(filter, Kind::kFilter, kMaxTopicSize).code == Problem::Code::kNone;
}

bool FilterMatchesTopic(absl::string_view filter, absl::string_view topic) {
  if (filter.empty() || topic.empty()) return false;
  // MQTT 4.7.2: topics starting with '$' (such as $SYS/) are for the server; a filter whose
  // first level is a wildcard must not match them, only a filter naming '$' literally.
  if (topic[0] == '$' && (filter[0] == '+' || filter[0] == '#')) return false;
  size_t f = 0;  // start of the current filter level
  size_t t = 0;  // start of the current topic level
  bool topic_done = false;
  for (;;) {
    size_t f_end;
    const absl::string_view f_level = NextLevel(filter, f, &f_end);
    const bool f_last = f_end == filter.size();
    // '#' matches whatever is left, including nothing: "a/#" matches "a" (MQTT 4.7.1.2).
    if (f_level == "#") return f_last;
    if (topic_done) return false;
    size_t t_end;
    const absl::string_view t_level = NextLevel(topic, t, &t_end);
    const bool t_last = t_end == topic.size();
    if (f_level != "+" && f_level != t_level) return false;
    if (f_last) return t_last;
    f = f_end + 1;
    if (t_last) {
      topic_done = true;
    } else {
      t = t_end + 1;
    }
  }
}

bool FilterCoversFilter(absl::string_view rule, absl::string_view requested) {
  if (rule.empty() || requested.empty()) return false;
  // MQTT 4.7.2: a requested filter whose first level starts with '$' matches only '$'
  // topics, which a rule starting with a wildcard never matches. A requested filter that
  // starts with a wildcard matches no '$' topic, so it loses nothing to the rule.
  if (requested[0] == '$' && (rule[0] == '+' || rule[0] == '#')) return false;
  size_t q = 0;  // start of the current rule level
  size_t r = 0;  // start of the current requested level
  bool requested_done = false;
  for (size_t level = 0;; ++level) {
    size_t q_end;
    const absl::string_view q_level = NextLevel(rule, q, &q_end);
    const bool q_last = q_end == rule.size();
    // A rule '#' matches whatever the requested filter has left, including nothing (the
    // requested filter ended one level up, or its own '#' matches this parent level).
    if (q_level == "#") return q_last;
    if (requested_done) return false;
    size_t r_end;
    const absl::string_view r_level = NextLevel(requested, r, &r_end);
    const bool r_last = r_end == requested.size();
    if (r_level == "#") {
      // A requested '#' matches this level's parent as well as deeper topics, and a rule
      // level that is not '#' needs this level to exist: "a/+/#" does not cover "a/#",
      // which matches "a". Unless that parent is the empty string, which is no topic
      // (MQTT 4.7.3: a topic name has at least one character): for "#" and "/#" the
      // requested filter only matches deeper topics, and "+/#" from here on covers them
      // ("+/#" covers "#", "/+/#" covers "/#").
      const bool parent_is_empty = level == 0 || (level == 1 && requested[0] == '/');
      return parent_is_empty && q_level == "+" && rule.substr(q_end) == "/#";
    }
    // A rule '+' covers any single level (a literal or '+'); a literal only itself.
    if (q_level != "+" && q_level != r_level) return false;
    if (q_last) return r_last;
    q = q_end + 1;
    if (r_last) {
      requested_done = true;
    } else {
      r = r_end + 1;
    }
  }
}

namespace internal {

bool IsValidUtf8(absl::string_view s) {
  for (size_t i = 0; i < s.size(); ++i) {
    if (static_cast<unsigned char>(s[i]) < 0x80) continue;
    const size_t len = Utf8SequenceLength(s, i);
    if (len == 0) return false;
    i += len - 1;
  }
  return true;
}

absl::Status CheckFilter(absl::string_view noun, absl::string_view text, size_t max_size) {
  return Describe(noun, text, max_size, Check(text, Kind::kFilter, max_size));
}

}  // namespace internal
}  // namespace fleetca::acl
