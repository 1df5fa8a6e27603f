#pragma once

// The composition root of fleetca-server: wires config, storage, domain and gRPC services.

namespace fleetca::app {

// Main runs `fleetca-server [serve|migrate]` and returns the process exit code:
// 0 success, 1 runtime failure (database unreachable, migration failed, cannot listen),
// 2 bad configuration.
int Main(int argc, char** argv);

}  // namespace fleetca::app
