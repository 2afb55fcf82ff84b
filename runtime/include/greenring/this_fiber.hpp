// greenring/this_fiber.hpp: kept for discoverability; the declarations live in spawn.hpp.
#pragma once
#include <greenring/spawn.hpp>
