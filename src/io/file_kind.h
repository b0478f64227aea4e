// What a file holds, judged from its first bytes, for the files that are plainly not a
// checkpoint: `convnext info photo.jpg` should say "a JPEG image", not report a safetensors
// header length read from JPEG markers.
#pragma once
#include <string>

namespace convnext::io {

// "a PNG image", "a text file", "unrecognised binary data", ...; empty when the file may be a
// checkpoint (safetensors, a torch zip or pickle, HDF5), which the readers then judge in full.
std::string non_checkpoint_kind(const std::string& path);

}  // namespace convnext::io
