// The EXIF orientation Pillow 9.4 sees in a PNG (internal to the PNG decoder).
#pragma once
#include <cstddef>
#include <cstdint>

namespace convnext::image::detail {

struct PngMeta {
  int orientation = 1;         // what exif_transpose acts on: 2..8, else 1
  bool truncated_tail = false;  // a chunk after the image data is cut short: Pillow's load() raises
  bool bad_ztxt = false;        // a zTXt before the image data with an unknown compression method:
                                // Pillow's Image.open raises SyntaxError
};

// Walks the chunks (bounds-checked; CRCs are libpng's business) and reproduces what Image.getexif()
// finds for a PngImageFile when exif_transpose calls it before the pixels are loaded:
//   * info["exif"] comes from an eXIf chunk ("Exif\0\0" + data) or a tEXt chunk keyed "exif";
//     if one appears before the first IDAT, getexif uses the chunks before IDAT only, otherwise
//     it loads the image first and so also sees the chunks after the image data (last one wins);
//   * without "exif": the hex dump in a tEXt/zTXt/iTXt "Raw profile type exif" (ImageMagick);
//   * when that EXIF has no Orientation tag: tiff:Orientation in a tEXt/zTXt/iTXt
//     "XML:com.adobe.xmp" packet (regex tiff:Orientation(="|>)([0-9])).
PngMeta png_metadata(const uint8_t* data, size_t size);

}  // namespace convnext::image::detail
