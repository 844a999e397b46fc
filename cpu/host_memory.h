// How much memory this process may still take on the host.
#pragma once

#include <cstddef>

namespace sculpt {

// The kernel's MemAvailable (free plus reclaimable page cache), lowered to what the process's
// cgroup (v2: memory.max - memory.current) still allows, so that a container's limit counts.
size_t HostAvailableMemory();

}  // namespace sculpt
