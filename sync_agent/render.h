#pragma once

// Rendering a PolicyState into the three files a stock mosquitto (2.0.11, no plugin)
// enforces: `cafile` (the CAs client certificates may chain to), `crlfile` (their CRLs) and
// `acl_file` (each active principal's topic rules). Pure functions of the state: the same
// state always gives the same bytes, so an unchanged state is never written (nor the broker
// signalled) again.

#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "sync_agent/state.h"

namespace fleetca::sync_agent {

// RenderNote is something rendering left out or found doubtful, to be logged.
struct RenderNote {
  enum class Severity { kWarning, kError };
  Severity severity = Severity::kWarning;
  std::string message;  // e.g. "issuer devices-2 has no CRL: ..."
  bool operator==(const RenderNote& other) const {
    return severity == other.severity && message == other.message;
  }
};

// RenderedFiles are the three files' contents, and what the CRL check needs.
struct RenderedFiles {
  std::string cafile;
  std::string crlfile;
  std::string acl_file;
  // The certificates (PEM) of every issuer of the state, whatever its purpose: the CRLs of
  // crlfile are verified against them before it is written.
  std::vector<std::string> issuer_pems;
  std::vector<RenderNote> notes;
};

// TrustedForClients: whether client certificates may chain to this issuer, so that it
// belongs in the cafile: ROOT, DEVICES and OPERATORS issuers of fleetca, and enabled
// external CAs. Never BROKERS: a broker's server certificate must not authenticate as an
// MQTT client.
bool TrustedForClients(const v1::SyncIssuer& issuer);

// RenderCaFile: the certificate_pem of every issuer TrustedForClients, by issuer_id, each
// ending in one newline. Not parsed here (ValidateCaFile does that before writing).
std::string RenderCaFile(const PolicyState& state, std::vector<RenderNote>* notes);

// RenderCrlFile: the CRL (DER turned into PEM "X509 CRL") of every issuer of the cafile
// that has one, by issuer_id. mosquitto's `crlfile` sets X509_V_FLAG_CRL_CHECK (the leaf
// only), which fails for a client whose issuer has no CRL: a DEVICES, OPERATORS or external
// issuer without a CRL gets a warning (its clients are refused: fail closed).
std::string RenderCrlFile(const PolicyState& state, std::vector<RenderNote>* notes);

// MosquittoAccess: the acl_file access word of an AclAccess ("read", "write", "readwrite",
// "deny"), or "" for a rule left out. SUBSCRIBE is left out: mosquitto 2.0.11's acl_file
// checks allow every SUBSCRIBE and check each delivered message against `read` rules, so
// there is no subscribe-only grant, and writing `read` would let the client receive what
// fleetca forbids it (see docs/fleetca-sync.md). Without a line the client may still
// subscribe and receives exactly what its READ and READWRITE rules allow, as fleetca says.
absl::string_view MosquittoAccess(v1::AclAccess access);

// ExpressibleInAclFile: whether mosquitto's acl_file parser reads `filter` back unchanged
// on a `topic <access> <filter>` line (and accepts it): a valid MQTT topic filter with no
// control character and no leading or trailing white space (the parser trims them).
bool ExpressibleInAclFile(absl::string_view filter);

// ExpressibleUsername: the same for `user <name>` (a certificate CN under
// use_identity_as_username).
bool ExpressibleUsername(absl::string_view name);

// RenderAclFile: for every ACTIVE device (by comm_id) and ACTIVE identity (by name), a
// `user <name>` line and its resolved rules (server/policy ResolveRules: the server's own
// algorithm), DENY rules first, as `topic <access> <filter>` lines. mosquitto evaluates
// `deny` lines of a user before its allow lines whatever their order (deny wins, as in
// fleetca). Left out, with a note: principals that are not ACTIVE (they get no rule, so
// mosquitto denies them everything), rules whose filter cannot be expressed (an allow rule
// is dropped; a DENY rule drops the principal's whole block, so the file never allows more
// than fleetca), SUBSCRIBE rules (see MosquittoAccess), and a name held by both an active
// device and an active identity (mosquitto has one username namespace: neither gets rules).
std::string RenderAclFile(const PolicyState& state, std::vector<RenderNote>* notes);

// Render renders the three files and collects the issuers' certificates and the notes.
RenderedFiles Render(const PolicyState& state);

}  // namespace fleetca::sync_agent
