#pragma once

// The migrations of migrations/*.sql, compiled in (see embed.cmake).

#include <vector>

#include "storage/migrator.h"

namespace fleetca {

// EmbeddedMigrations returns every migration in version order.
const std::vector<storage::Migration>& EmbeddedMigrations();

}  // namespace fleetca
