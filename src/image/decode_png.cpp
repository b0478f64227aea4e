// PNG: libpng reads the samples (no colour transforms: no gamma, no tRNS expansion, no 16->8
// stripping); the Pillow 9.4 mode each IHDR combination becomes (PngImagePlugin._MODES) and
// Pillow's unpacker for it are applied here:
//   grey 1 -> "1" (0/255), 2 -> "L;2" (x85), 4 -> "L;4" (x17), 8 -> "L", 16 -> "I" (values 0..65535,
//   which convert("RGB"/"L") clips at 255), RGB 8 -> "RGB", RGB 16 -> "RGB;16B" (high bytes),
//   palette 1..8 -> "P" (palette from PLTE, the rest of the 256 entries Pillow's grey ramp),
//   grey+alpha 8 -> "LA", 16 -> "LA;16B" (high bytes), RGBA 8 -> "RGBA", 16 -> "RGBA;16B" (high bytes).
// Errors from libpng come through png_error, which longjmps back to the setjmp in the function that
// called libpng; those functions keep their state behind a pointer and own nothing with a destructor.
#include <png.h>

#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <vector>

#include "image/decode_internal.h"
#include "image/png_meta.h"

namespace convnext::image::detail {
namespace {

struct Job {
  png_structp png = nullptr;
  png_infop info = nullptr;
  const uint8_t* data = nullptr;
  size_t size = 0;
  size_t pos = 0;
  bool truncated = false;
  char message[256] = {0};
  // Header.
  png_uint_32 width = 0, height = 0;
  int bit_depth = 0, color_type = 0, interlace = 0;
  // Decoding.
  size_t rowbytes = 0;
  uint8_t* raw = nullptr;        // one row, or the whole image when interlaced
  png_bytep* row_ptrs = nullptr;  // interlaced only
  uint8_t* unpacked = nullptr;    // one row in the Src layout when raw rows need unpacking
  RowConverter conv;
  uint8_t* out = nullptr;
  int64_t out_stride = 0;
  png_uint_32 rows_done = 0;
  bool idat_bytewise = false;
  char late_zlib_error[256] = {0};
};

void on_error(png_structp png, png_const_charp msg) {
  auto* j = static_cast<Job*>(png_get_error_ptr(png));
  std::snprintf(j->message, sizeof j->message, "%s", msg);
  png_longjmp(png, 1);
}

// Warnings are ignored, except a zlib error in the image data after the last row (libpng reports
// those as benign): Pillow's single inflate call over all the data it has runs into them too.
void on_warning(png_structp png, png_const_charp msg) {
  auto* j = static_cast<Job*>(png_get_error_ptr(png));
  if (std::strncmp(msg, "IDAT: ", 6) != 0 || std::strstr(msg, "image data") != nullptr ||
      std::strstr(msg, "Extra compressed data") != nullptr || j->late_zlib_error[0] != 0)
    return;
  std::snprintf(j->late_zlib_error, sizeof j->late_zlib_error, "%s", msg);
}

void on_read(png_structp png, png_bytep out, size_t n) {
  auto* j = static_cast<Job*>(png_get_io_ptr(png));
  if (n > j->size - j->pos) {
    j->truncated = true;
    png_error(png, "file ends early");
  }
  std::memcpy(out, j->data + j->pos, n);
  j->pos += n;
}

bool read_header(Job* j) {
  if (setjmp(png_jmpbuf(j->png))) return false;
  png_set_read_fn(j->png, j, on_read);
  // Pillow has no width/height cap of its own beyond MAX_IMAGE_PIXELS (checked by the caller).
  png_set_user_limits(j->png, 0x7fffffff, 0x7fffffff);
  // Pillow checks the CRC of every chunk before the image data and raises on a mismatch.
  png_set_crc_action(j->png, PNG_CRC_DEFAULT, PNG_CRC_ERROR_QUIT);
  // We read metadata ourselves (png_meta.cpp); libpng need not parse or validate ancillary chunks
  // (iCCP, text, ...) that Pillow ignores or treats differently. tRNS is kept but unused.
  png_set_keep_unknown_chunks(j->png, PNG_HANDLE_CHUNK_NEVER, nullptr, -1);
  png_set_check_for_invalid_index(j->png, 0);  // out-of-palette indices give grey, as in Pillow
  png_read_info(j->png, j->info);
  png_get_IHDR(j->png, j->info, &j->width, &j->height, &j->bit_depth, &j->color_type, &j->interlace, nullptr, nullptr);
  return true;
}

bool setup_transforms(Job* j) {
  if (setjmp(png_jmpbuf(j->png))) return false;
  if (j->bit_depth < 8) png_set_packing(j->png);  // one sample per byte, values not scaled
  if (j->interlace != PNG_INTERLACE_NONE) png_set_interlace_handling(j->png);
  png_read_update_info(j->png, j->info);
  j->rowbytes = png_get_rowbytes(j->png, j->info);
  return true;
}

// Pillow's unpacker for the raw row into the Src layout of j->conv, then the conversion.
void emit_row(Job* j, const uint8_t* raw, png_uint_32 y) {
  const int64_t w = j->width;
  const uint8_t* src = raw;
  if (j->unpacked != nullptr) {
    uint8_t* u = j->unpacked;
    if (j->bit_depth < 8 && j->color_type == PNG_COLOR_TYPE_GRAY) {
      const unsigned scale = j->bit_depth == 1 ? 255 : j->bit_depth == 2 ? 0x55 : 0x11;
      for (int64_t x = 0; x < w; ++x) u[x] = static_cast<uint8_t>(raw[x] * scale);
    } else {  // 16-bit colour / grey+alpha: the high byte of each sample
      const int64_t samples = w * RowConverter::bytes_per_pixel(j->conv.src);
      for (int64_t s = 0; s < samples; ++s) u[s] = raw[2 * s];
    }
    src = u;
  }
  j->conv.convert(src, j->out + static_cast<int64_t>(y) * j->out_stride, w);
}

// Whether libpng has delivered every row (it may read on: the rest of the zlib stream, the IDAT CRC).
bool all_rows_read(Job* j) {
  return j->interlace != PNG_INTERLACE_NONE ? png_get_current_pass_number(j->png) >= 7
                                             : png_get_current_row_number(j->png) >= j->height;
}

bool read_rows(Job* j) {
  if (setjmp(png_jmpbuf(j->png))) {
    // Pillow's decoder stops at the last row, so a file cut short after it (in the zlib checksum,
    // the last IDAT CRC, before IEND) still loads. libpng has already stored that row for us.
    if (!j->truncated || !all_rows_read(j)) return false;
    j->truncated = false;
    if (j->interlace != PNG_INTERLACE_NONE) {
      for (png_uint_32 y = 0; y < j->height; ++y) emit_row(j, j->row_ptrs[y], y);
    } else {
      for (png_uint_32 y = j->rows_done; y < j->height; ++y) emit_row(j, j->raw, y);
    }
    return true;
  }
  // libpng reads IDAT data in pieces of up to 8 KiB and cannot use part of a piece, while Pillow
  // decodes whatever bytes a cut-short file has: the retry of a truncated file reads byte by byte.
  if (j->idat_bytewise) png_set_compression_buffer_size(j->png, 1);  // on a read struct: the IDAT read size
  if (j->interlace != PNG_INTERLACE_NONE) {
    png_read_image(j->png, j->row_ptrs);
    for (png_uint_32 y = 0; y < j->height; ++y) emit_row(j, j->row_ptrs[y], y);
  } else {
    for (png_uint_32 y = 0; y < j->height; ++y) {
      png_read_row(j->png, j->raw, nullptr);
      emit_row(j, j->raw, y);
      j->rows_done = y + 1;
    }
  }
  return true;
}

[[noreturn]] void fail_png(const Job& j, const std::string& name) {
  if (j.truncated) fail(name, "truncated PNG (the file ends before the image data is complete)");
  fail(name, std::string("corrupt or unsupported PNG: ") + j.message);
}

struct JobGuard {
  Job* j;
  ~JobGuard() { png_destroy_read_struct(&j->png, j->info ? &j->info : nullptr, nullptr); }
};

// One decoding attempt. Returns false when the file ends inside the image data and the attempt was
// not byte by byte (the caller retries); throws for every other problem.
bool decode_png_once(const uint8_t* data, size_t size, const std::string& name, ColorMode mode,
                     const DecodeOptions& opt, bool bytewise, Decoded& result) {
  // The pixel limit first, straight from IHDR (libpng would otherwise read and check every chunk up
  // to the image data before we get to see the size).
  if (size >= 24 && std::memcmp(data + 12, "IHDR", 4) == 0) {
    auto be32 = [](const uint8_t* p) {
      return (int64_t{p[0]} << 24) | (int64_t{p[1]} << 16) | (int64_t{p[2]} << 8) | int64_t{p[3]};
    };
    const int64_t w = be32(data + 16), h = be32(data + 20);
    if (w > 0 && h > 0) check_size(name, w, h, opt);
  }
  Job job;
  job.idat_bytewise = bytewise;
  job.data = data;
  job.size = size;
  job.pos = 0;
  job.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &job, on_error, on_warning);
  if (job.png == nullptr) fail(name, "cannot initialise libpng");
  JobGuard guard{&job};
  job.info = png_create_info_struct(job.png);
  if (job.info == nullptr) fail(name, "cannot initialise libpng");

  if (!read_header(&job)) fail_png(job, name);
  check_size(name, job.width, job.height, opt);

  Palette palette = grey_ramp_palette();
  bool unpack = false;
  switch (job.color_type) {
    case PNG_COLOR_TYPE_GRAY:
      job.conv.src = job.bit_depth == 16 ? Src::I16BE : Src::L;
      unpack = job.bit_depth < 8;
      break;
    case PNG_COLOR_TYPE_RGB: job.conv.src = Src::RGB, unpack = job.bit_depth == 16; break;
    case PNG_COLOR_TYPE_GRAY_ALPHA: job.conv.src = Src::LA, unpack = job.bit_depth == 16; break;
    case PNG_COLOR_TYPE_RGB_ALPHA: job.conv.src = Src::RGBA, unpack = job.bit_depth == 16; break;
    case PNG_COLOR_TYPE_PALETTE: {
      job.conv.src = Src::P;
      png_colorp plte = nullptr;
      int n = 0;
      if (png_get_PLTE(job.png, job.info, &plte, &n) != 0 && plte != nullptr)
        for (int i = 0; i < n && i < 256; ++i)
          palette[3 * i] = plte[i].red, palette[3 * i + 1] = plte[i].green, palette[3 * i + 2] = plte[i].blue;
      break;
    }
    default: fail(name, "unsupported PNG colour type " + std::to_string(job.color_type));
  }
  job.conv.mode = mode;
  job.conv.palette = &palette;

  if (!setup_transforms(&job)) fail_png(job, name);
  result.image = Image(job.width, job.height, job.conv.out_channels());
  job.out = result.image.pixels.data();
  job.out_stride = result.image.width * result.image.channels;

  std::vector<uint8_t> raw, unpacked;
  std::vector<png_bytep> row_ptrs;
  if (job.interlace != PNG_INTERLACE_NONE) {
    raw.resize(job.rowbytes * job.height);
    row_ptrs.resize(job.height);
    for (png_uint_32 y = 0; y < job.height; ++y) row_ptrs[y] = raw.data() + y * job.rowbytes;
    job.row_ptrs = row_ptrs.data();
  } else {
    raw.resize(job.rowbytes);
  }
  job.raw = raw.data();
  if (unpack) {
    unpacked.resize(static_cast<size_t>(job.width) * static_cast<size_t>(RowConverter::bytes_per_pixel(job.conv.src)));
    job.unpacked = unpacked.data();
  }
  if (!read_rows(&job)) {
    if (job.truncated && !bytewise) return false;
    fail_png(job, name);
  }

  if (job.late_zlib_error[0] != 0) fail(name, std::string("corrupt PNG: ") + job.late_zlib_error);
  const PngMeta meta = png_metadata(data, size);
  if (meta.truncated_tail) fail(name, "truncated PNG (a chunk after the image data is cut short)");
  if (meta.bad_ztxt) fail(name, "corrupt PNG: zTXt chunk with an unknown compression method");
  result.orientation = meta.orientation;
  return true;
}

}  // namespace

Decoded decode_png(const uint8_t* data, size_t size, const std::string& name, ColorMode mode, const DecodeOptions& opt) {
  Decoded result;
  if (!decode_png_once(data, size, name, mode, opt, false, result))
    decode_png_once(data, size, name, mode, opt, true, result);
  return result;
}

}  // namespace convnext::image::detail
