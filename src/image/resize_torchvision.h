// torchvision's resize of uint8 images on CPU (what transformers 5's default ConvNextImageProcessor
// runs): separable antialiased bilinear / bicubic with int16 weights, and nearest-exact.
#pragma once
#include "image/image.h"

namespace convnext::image {

// Filter::Bilinear and Filter::Bicubic use the antialiased int16 path; Filter::Nearest is
// "nearest-exact"; the other filters are not torchvision interpolations and fall back to bicubic,
// as transformers does.
Image resize_torchvision(const Image& in, int64_t out_width, int64_t out_height, Filter filter);

}  // namespace convnext::image
