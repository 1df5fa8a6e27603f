// fleetca: the command-line client of the fleetca API (docs/cli.md).

#include "cli/cli.h"

int main(int argc, char** argv) { return fleetca::cli::Run(argc, argv); }
