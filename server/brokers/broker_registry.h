#pragma once

// BrokerRegistry: the brokers fleetca serves, and the names their server certificates may
// carry. Validation messages name the field.

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/request_context.h"
#include "storage/broker_store.h"

namespace fleetca::brokers {

// ValidateBrokerId: 1 to 63 characters of [a-z0-9._-] starting with a letter or digit.
absl::Status ValidateBrokerId(absl::string_view field, absl::string_view id);

// NormalizeDnsName lowercases and checks a DNS name: labels of 1 to 63 letters, digits and
// hyphens (not at either end), 253 characters at most; with allow_wildcard, a leading "*."
// followed by at least two labels is accepted. INVALID_ARGUMENT naming field otherwise.
absl::StatusOr<std::string> NormalizeDnsName(absl::string_view field, absl::string_view name,
                                             bool allow_wildcard);

// NormalizeIpAddress parses IPv4 or IPv6 text and returns its canonical form.
absl::StatusOr<std::string> NormalizeIpAddress(absl::string_view field, absl::string_view ip);

// DnsNameAllowed: name equals an allowed entry, or an allowed "*.suffix" covers exactly one
// label in front of suffix.
bool DnsNameAllowed(const std::string& name, const std::vector<std::string>& allowed);

struct ListBrokersPage {
  std::vector<storage::Broker> brokers;
  std::string next_page_token;
};

class BrokerRegistry {
 public:
  explicit BrokerRegistry(storage::BrokerStore& store) : store_(store) {}

  absl::StatusOr<storage::Broker> Register(storage::Broker broker, const RequestContext& ctx);
  absl::StatusOr<storage::Broker> Get(const std::string& id);
  absl::StatusOr<ListBrokersPage> List(int page_size, const std::string& page_token);
  // Update replaces the fields named (display_name, allowed_dns_names, allowed_ip_addresses).
  absl::StatusOr<storage::Broker> Update(storage::Broker broker,
                                         const std::vector<std::string>& fields,
                                         const std::string& etag, const RequestContext& ctx);
  absl::Status Delete(const std::string& id, const std::string& etag, const RequestContext& ctx);

 private:
  storage::BrokerStore& store_;
};

}  // namespace fleetca::brokers
