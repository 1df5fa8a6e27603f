// fleetca-server: the composition root lives in server/app; main only calls it.
#include "server/app/app.h"

int main(int argc, char** argv) { return fleetca::app::Main(argc, argv); }
