// Handing memory back to the system.
#pragma once
#include <cstddef>

namespace convnext {

// madvise(MADV_DONTNEED) on the whole pages inside [p, p + bytes) of a private file mapping that
// was never written: they leave the process's resident set and are read again from the page
// cache if touched. Never call it on anonymous (heap) memory still in use.
void release_pages(const void* p, size_t bytes);

}  // namespace convnext
