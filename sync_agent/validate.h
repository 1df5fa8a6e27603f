#pragma once

// Checks of the rendered files before they replace what mosquitto reads. A file that fails
// is not written: mosquitto 2.0.11 fails open on a bad file at reload (an unreadable
// crlfile lets revoked certificates in; an acl_file it cannot parse leaves every client
// allowed everything), so nothing doubtful may reach it.

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "pki/openssl_util.h"

namespace fleetca::sync_agent {

// PemBlock is one "-----BEGIN <label>-----" ... "-----END <label>-----" block, decoded.
struct PemBlock {
  std::string label;
  std::string der;
};

// SplitPem decodes text made of PEM blocks and nothing else but white space between them.
// INVALID_ARGUMENT naming the block (1-based) for text outside a block, a block without its
// END line (a truncated file), mismatched labels, headers, or base64 that does not decode.
absl::StatusOr<std::vector<PemBlock>> SplitPem(absl::string_view text);

// ValidateCaFile checks a cafile: at least one block, every block a CERTIFICATE whose DER
// OpenSSL parses whole and that is a CA (basicConstraints CA:TRUE, X509_check_ca). Returns
// the certificates. INVALID_ARGUMENT naming the block otherwise.
absl::StatusOr<std::vector<pki::X509Ptr>> ValidateCaFile(absl::string_view pem);

// ValidateCrlFile checks a crlfile: at least one block (mosquitto refuses a crlfile without
// a CRL), every block an X509 CRL whose DER OpenSSL parses whole and whose signature
// verifies (X509_CRL_verify) with the key of one of `issuers` named as its issuer.
// INVALID_ARGUMENT naming the block otherwise. A CRL past its nextUpdate (or before its
// thisUpdate) at `now` is accepted with a warning: mosquitto then refuses that issuer's
// clients (fails closed) until a fresh CRL arrives.
absl::Status ValidateCrlFile(absl::string_view pem, const std::vector<const X509*>& issuers,
                             absl::Time now, std::vector<std::string>* warnings);

// CheckAclFile re-parses an acl_file the way mosquitto 2.0.11 does and accepts only what
// RenderAclFile writes: lines ending in '\n', each empty, a comment ("#" first), "user
// <name>" or "topic <read|write|readwrite|deny> <filter>", with single spaces, no control
// character, no leading or trailing white space in the name or filter, every filter a valid
// MQTT topic filter, and no topic line before the first user line (it would apply to
// clients without a username). INVALID_ARGUMENT naming the line (1-based) otherwise.
absl::Status CheckAclFile(absl::string_view text);

}  // namespace fleetca::sync_agent
