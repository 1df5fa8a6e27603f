#include "server/brokers/broker_registry.h"

#include <arpa/inet.h>

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/page_token.h"
#include "common/status_macros.h"
#include "server/registry/registry.h"
#include "server/registry/validation.h"

namespace fleetca::brokers {
namespace {

constexpr size_t kMaxNames = 64;
constexpr char kPageTokenKind[] = "brokers";

absl::Status Invalid(absl::string_view field, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", why));
}

absl::Status NormalizeNames(absl::string_view field, std::vector<std::string>* dns,
                            std::vector<std::string>* ips) {
  if (dns->size() > kMaxNames || ips->size() > kMaxNames) {
    return Invalid(field, absl::StrCat("at most ", kMaxNames, " names and ", kMaxNames, " addresses"));
  }
  for (size_t i = 0; i < dns->size(); ++i) {
    ASSIGN_OR_RETURN((*dns)[i], NormalizeDnsName(absl::StrCat(field, "allowed_dns_names[", i, "]"),
                                                 (*dns)[i], /*allow_wildcard=*/true));
  }
  for (size_t i = 0; i < ips->size(); ++i) {
    ASSIGN_OR_RETURN((*ips)[i], NormalizeIpAddress(
                                    absl::StrCat(field, "allowed_ip_addresses[", i, "]"), (*ips)[i]));
  }
  std::sort(dns->begin(), dns->end());
  dns->erase(std::unique(dns->begin(), dns->end()), dns->end());
  std::sort(ips->begin(), ips->end());
  ips->erase(std::unique(ips->begin(), ips->end()), ips->end());
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateBrokerId(absl::string_view field, absl::string_view id) {
  const bool ok = !id.empty() && id.size() <= 63 &&
                  (absl::ascii_islower(id[0]) || absl::ascii_isdigit(id[0])) &&
                  std::all_of(id.begin(), id.end(), [](char c) {
                    return absl::ascii_islower(c) || absl::ascii_isdigit(c) || c == '.' ||
                           c == '_' || c == '-';
                  });
  if (!ok) {
    return Invalid(field, absl::StrCat("must be 1 to 63 characters of [a-z0-9._-] starting with a "
                                       "letter or digit, got ",
                                       registry::Quote(id)));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> NormalizeDnsName(absl::string_view field, absl::string_view name,
                                             bool allow_wildcard) {
  std::string n = absl::AsciiStrToLower(name);
  if (!n.empty() && n.back() == '.') n.pop_back();  // absolute form
  absl::string_view rest = n;
  const bool wildcard = allow_wildcard && absl::StartsWith(rest, "*.");
  if (wildcard) rest.remove_prefix(2);
  const std::vector<absl::string_view> labels = absl::StrSplit(rest, '.');
  // Single-label host names ("localhost", intranet names) are fine; a wildcard must cover a
  // label under a name of two labels at least ("*.example.com", not "*.com").
  bool ok = !rest.empty() && n.size() <= 253 && (!wildcard || labels.size() >= 2);
  for (absl::string_view l : labels) {
    ok = ok && !l.empty() && l.size() <= 63 && l.front() != '-' && l.back() != '-' &&
         std::all_of(l.begin(), l.end(), [](char c) {
           return absl::ascii_isalnum(c) || c == '-';
         });
  }
  if (!ok) {
    return Invalid(field, absl::StrCat("not a valid DNS name", allow_wildcard ? " (or *.name)" : "",
                                       ": ", registry::Quote(name)));
  }
  return n;
}

absl::StatusOr<std::string> NormalizeIpAddress(absl::string_view field, absl::string_view ip) {
  const std::string s(ip);
  unsigned char buf[16];
  char out[INET6_ADDRSTRLEN];
  if (inet_pton(AF_INET, s.c_str(), buf) == 1) {
    inet_ntop(AF_INET, buf, out, sizeof(out));
    return std::string(out);
  }
  if (inet_pton(AF_INET6, s.c_str(), buf) == 1) {
    inet_ntop(AF_INET6, buf, out, sizeof(out));
    return std::string(out);
  }
  return Invalid(field, absl::StrCat("not an IPv4 or IPv6 address: ", registry::Quote(ip)));
}

bool DnsNameAllowed(const std::string& name, const std::vector<std::string>& allowed) {
  for (const std::string& a : allowed) {
    if (a == name) return true;
    if (absl::StartsWith(a, "*.")) {
      const absl::string_view suffix = absl::string_view(a).substr(1);  // ".example.com"
      if (absl::EndsWith(name, suffix) && name.size() > suffix.size()) {
        const absl::string_view label = absl::string_view(name).substr(0, name.size() - suffix.size());
        if (label.find('.') == absl::string_view::npos && label != "*") return true;
      }
    }
  }
  return false;
}

absl::StatusOr<storage::Broker> BrokerRegistry::Register(storage::Broker broker,
                                                         const RequestContext& ctx) {
  RETURN_IF_ERROR(ValidateBrokerId("broker.broker_id", broker.name));
  RETURN_IF_ERROR(registry::ValidateFreeText("broker.display_name", broker.display_name, 256));
  RETURN_IF_ERROR(
      NormalizeNames("broker.", &broker.allowed_dns_names, &broker.allowed_ip_addresses));
  return store_.Create(broker, ctx);
}

absl::StatusOr<storage::Broker> BrokerRegistry::Get(const std::string& id) {
  RETURN_IF_ERROR(ValidateBrokerId("broker_id", id));
  return store_.Get(id);
}

absl::StatusOr<ListBrokersPage> BrokerRegistry::List(int page_size, const std::string& page_token) {
  ASSIGN_OR_RETURN(const int size, PageSize(page_size));
  ASSIGN_OR_RETURN(std::string after, DecodePageToken(kPageTokenKind, "", page_token));
  ASSIGN_OR_RETURN(std::vector<storage::Broker> brokers, store_.List(after, size + 1));
  ListBrokersPage page;
  if (brokers.size() > static_cast<size_t>(size)) {
    brokers.resize(size);
    page.next_page_token = EncodePageToken(kPageTokenKind, "", brokers.back().name);
  }
  page.brokers = std::move(brokers);
  return page;
}

absl::StatusOr<storage::Broker> BrokerRegistry::Update(storage::Broker broker,
                                                       const std::vector<std::string>& fields,
                                                       const std::string& etag,
                                                       const RequestContext& ctx) {
  RETURN_IF_ERROR(ValidateBrokerId("broker.broker_id", broker.name));
  if (fields.empty()) {
    return Invalid("update_mask",
                   "name at least one of display_name, allowed_dns_names, allowed_ip_addresses");
  }
  RETURN_IF_ERROR(
      NormalizeNames("broker.", &broker.allowed_dns_names, &broker.allowed_ip_addresses));
  storage::BrokerUpdate update;
  for (const std::string& f : fields) {
    if (f == "display_name") {
      RETURN_IF_ERROR(registry::ValidateFreeText("broker.display_name", broker.display_name, 256));
      update.display_name = broker.display_name;
    } else if (f == "allowed_dns_names") {
      update.allowed_dns_names = broker.allowed_dns_names;
    } else if (f == "allowed_ip_addresses") {
      update.allowed_ip_addresses = broker.allowed_ip_addresses;
    } else {
      return Invalid("update_mask", absl::StrCat(registry::Quote(f), " cannot be updated"));
    }
  }
  ASSIGN_OR_RETURN(std::optional<int64_t> version, registry::ParseEtag("etag", etag));
  return store_.Update(broker.name, update, version, ctx);
}

absl::Status BrokerRegistry::Delete(const std::string& id, const std::string& etag,
                                    const RequestContext& ctx) {
  RETURN_IF_ERROR(ValidateBrokerId("broker_id", id));
  ASSIGN_OR_RETURN(std::optional<int64_t> version, registry::ParseEtag("etag", etag));
  return store_.Delete(id, version, ctx);
}

}  // namespace fleetca::brokers
