#pragma once

// `fleetca-server verify-audit`: verifies the audit log's hash chain from the host, without
// the API, and prints the result for an operator.

#include <cstdint>
#include <string>

#include "storage/connection_pool.h"

namespace fleetca::app {

// RunVerifyAudit verifies the chain from `from` to `to` (0: the first / the newest event),
// checking `anchor` ("SEQ:HEX", a sequence and the hash recorded for it by an earlier run;
// empty for none). Prints the outcome to stdout: intact, or the first break and its reason;
// events checked; the last sequence and hash, to record as the next anchor. Returns 0 when
// the chain is intact, 3 when it is broken, 1 on error (bad arguments, database
// unreachable), with the reason on stderr.
int RunVerifyAudit(storage::ConnectionPool& pool, int64_t from, int64_t to,
                   const std::string& anchor);

}  // namespace fleetca::app
