// WebP as Pillow 9.4 reads it (WebPImagePlugin.py with _webp.HAVE_WEBPANIM, src/_webp.c): libwebp's
// WebPAnimDecoder with default options (MODE_RGBA, straight alpha, no threads), first frame of the
// canvas; mode "RGBA" when WebPGetFeatures reports alpha, else "RGB" (rawmode "RGBX"). Either way
// convert("RGB") keeps the first three bytes. EXIF from the first "EXIF" chunk.
#include <webp/decode.h>
#include <webp/demux.h>

#include <memory>

#include "image/decode_internal.h"

namespace convnext::image::detail {

Decoded decode_webp(const uint8_t* data, size_t size, const std::string& name, ColorMode mode, const DecodeOptions& opt) {
  WebPBitstreamFeatures features;
  const VP8StatusCode status = WebPGetFeatures(data, size, &features);
  if (status == VP8_STATUS_NOT_ENOUGH_DATA) fail(name, "truncated WebP (the file ends inside its header)");
  if (status != VP8_STATUS_OK) fail(name, "corrupt or unsupported WebP (libwebp status " + std::to_string(status) + ")");
  check_size(name, features.width, features.height, opt);  // before the decoder allocates its canvas

  struct Deleter {
    void operator()(WebPAnimDecoder* d) const { WebPAnimDecoderDelete(d); }
  };
  const WebPData input{data, size};
  std::unique_ptr<WebPAnimDecoder, Deleter> dec(WebPAnimDecoderNew(&input, nullptr));
  if (!dec) fail(name, "corrupt or truncated WebP (libwebp cannot parse the file)");
  WebPAnimInfo info;
  if (!WebPAnimDecoderGetInfo(dec.get(), &info)) fail(name, "corrupt WebP (no canvas information)");
  check_size(name, info.canvas_width, info.canvas_height, opt);
  uint8_t* rgba = nullptr;
  int timestamp = 0;
  if (!WebPAnimDecoderGetNext(dec.get(), &rgba, &timestamp) || rgba == nullptr)
    fail(name, "corrupt or truncated WebP (failed to decode the first frame)");

  Decoded result;
  RowConverter conv;
  conv.src = Src::RGBA;
  conv.mode = mode;
  result.image = Image(info.canvas_width, info.canvas_height, conv.out_channels());
  const int64_t w = info.canvas_width;
  for (int64_t y = 0; y < result.image.height; ++y) conv.convert(rgba + y * w * 4, result.image.row(y), w);

  WebPChunkIterator chunk;
  if (WebPDemuxGetChunk(WebPAnimDecoderGetDemuxer(dec.get()), "EXIF", 1, &chunk)) {
    if (chunk.chunk.size > 0)
      result.orientation = usable_orientation(exif_orientation(chunk.chunk.bytes, chunk.chunk.size).value);
    WebPDemuxReleaseChunkIterator(&chunk);
  }
  return result;
}

}  // namespace convnext::image::detail
