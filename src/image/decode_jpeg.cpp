// JPEG through libjpeg-turbo, set up as Pillow 9.4 does (src/libImaging/JpegDecode.c and
// JpegImagePlugin.py):
//   * libjpeg's defaults otherwise: JDCT_ISLOW, fancy upsampling, block smoothing (no draft mode);
//   * jpeg_color_space left as libjpeg detects it (Pillow's jpegmode is ""), out_color_space from the
//     component count: 1 -> JCS_GRAYSCALE ("L"), 3 -> JCS_RGB ("RGB"), 4 -> JCS_CMYK read with rawmode
//     "CMYK;I", i.e. every byte inverted ("assume adobe conventions", also for YCCK and non-Adobe files);
//   * EXIF from the first APP1 segment that starts with "Exif\0";
//   * a file that ends before the last scanline is an error ("image file is truncated"), one that
//     ends after it is complete, and libjpeg-turbo's other warnings (corrupt data it can skip) are
//     ignored, as Pillow ignores them.
// libjpeg reports errors through error_exit, which must not return: ours longjmps back into the
// function that called libjpeg. Those functions keep all state behind a pointer and own nothing with
// a destructor, so the jump skips no C++ cleanup.
#include <algorithm>
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <vector>

// clang-format off
#include <jpeglib.h>
#include <jerror.h>
// clang-format on

#include "image/decode_internal.h"

namespace convnext::image::detail {
namespace {

constexpr int kMaxRows = 16;  // scanlines per jpeg_read_scanlines call (rec_outbuf_height is at most 4)

struct ErrorManager {
  jpeg_error_mgr pub;
  std::jmp_buf jump;
  bool all_rows_read = false;
  bool truncated = false;
  bool ended_after_rows = false;
  char message[JMSG_LENGTH_MAX] = {0};
};

void on_error_exit(j_common_ptr ci) {
  auto* e = reinterpret_cast<ErrorManager*>(ci->err);
  (*ci->err->format_message)(ci, e->message);
  std::longjmp(e->jump, 1);
}

// Warnings: running out of data before the last scanline is fatal (Pillow's suspending source never
// reaches the end of the scan and ImageFile.load raises); everything else is counted and ignored.
void on_emit_message(j_common_ptr ci, int level) {
  auto* e = reinterpret_cast<ErrorManager*>(ci->err);
  if (level >= 0) return;  // trace messages
  if (ci->err->msg_code == JWRN_JPEG_EOF) {
    // Before the last scanline: truncated. After it, Pillow's jpeg_finish_decompress would suspend
    // for more data and Pillow call the image complete: stop here too, rather than let libjpeg parse
    // the fake EOI it inserts.
    (e->all_rows_read ? e->ended_after_rows : e->truncated) = true;
    std::longjmp(e->jump, 1);
  }
  ci->err->num_warnings++;
}

void on_output_message(j_common_ptr) {}

struct Job {
  jpeg_decompress_struct ci;
  ErrorManager err;
  bool created = false;
  const uint8_t* data = nullptr;
  size_t size = 0;
  // Decompression target.
  J_COLOR_SPACE out_space = JCS_RGB;
  int components = 3;
  bool invert = false;  // Pillow's "CMYK;I" rawmode
  RowConverter conv;
  uint8_t* out = nullptr;  // output image rows
  int64_t out_stride = 0;
  uint8_t* tmp = nullptr;  // kMaxRows rows of decoder output when conv is not the identity
  int64_t tmp_stride = 0;
};

bool read_header(Job* j) {
  if (setjmp(j->err.jump)) return false;
  jpeg_create_decompress(&j->ci);
  j->created = true;
  jpeg_mem_src(&j->ci, j->data, static_cast<unsigned long>(j->size));
  jpeg_save_markers(&j->ci, JPEG_APP0 + 1, 0xffff);
  jpeg_read_header(&j->ci, TRUE);
  return true;
}

bool decompress(Job* j) {
  if (setjmp(j->err.jump)) return j->err.ended_after_rows;
  j_decompress_ptr ci = &j->ci;
  ci->out_color_space = j->out_space;
  jpeg_start_decompress(ci);
  if (ci->output_components != j->components || ci->output_width != ci->image_width ||
      ci->output_height != ci->image_height) {
    std::snprintf(j->err.message, sizeof j->err.message, "unexpected output layout %ux%u with %d components",
                  ci->output_width, ci->output_height, ci->output_components);
    return false;
  }
  const bool direct = j->conv.identity();
  while (ci->output_scanline < ci->output_height) {
    const JDIMENSION y = ci->output_scanline;
    const JDIMENSION k = std::min<JDIMENSION>(kMaxRows, ci->output_height - y);
    JSAMPROW rows[kMaxRows];
    for (JDIMENSION i = 0; i < k; ++i)
      rows[i] = direct ? j->out + (y + i) * j->out_stride : j->tmp + i * j->tmp_stride;
    const JDIMENSION got = jpeg_read_scanlines(ci, rows, k);
    if (got == 0) {  // cannot happen with a memory source; be safe rather than loop forever
      j->err.truncated = true;
      return false;
    }
    if (!direct) {
      for (JDIMENSION i = 0; i < got; ++i) {
        uint8_t* r = rows[i];
        if (j->invert)
          for (int64_t b = 0; b < j->tmp_stride; ++b) r[b] = static_cast<uint8_t>(~r[b]);
        j->conv.convert(r, j->out + (y + i) * j->out_stride, ci->output_width);
      }
    }
  }
  // Past the last scanline Pillow stops caring: a missing EOI or trailing junk is not an error.
  j->err.all_rows_read = true;
  jpeg_finish_decompress(ci);
  return true;
}

[[noreturn]] void fail_jpeg(Job& j, const std::string& name) {
  if (j.err.truncated) fail(name, "truncated JPEG (the file ends before the image data is complete)");
  fail(name, std::string("corrupt or unsupported JPEG: ") + j.err.message);
}

// Pillow keeps the APP1 payload of the first "Exif\0" segment before the first scan.
int jpeg_orientation(const jpeg_decompress_struct& ci) {
  for (jpeg_saved_marker_ptr m = ci.marker_list; m != nullptr; m = m->next) {
    if (m->marker != JPEG_APP0 + 1 || m->data_length < 5 || std::memcmp(m->data, "Exif\0", 5) != 0) continue;
    return usable_orientation(exif_orientation(m->data, m->data_length).value);
  }
  return 1;
}

struct JobGuard {
  Job* j;
  ~JobGuard() {
    if (j->created) jpeg_destroy_decompress(&j->ci);
  }
};

}  // namespace

Decoded decode_jpeg(const uint8_t* data, size_t size, const std::string& name, ColorMode mode, const DecodeOptions& opt) {
  Job job;
  std::memset(&job.ci, 0, sizeof job.ci);
  job.ci.err = jpeg_std_error(&job.err.pub);
  job.err.pub.error_exit = on_error_exit;
  job.err.pub.emit_message = on_emit_message;
  job.err.pub.output_message = on_output_message;
  job.data = data;
  job.size = size;
  JobGuard guard{&job};

  if (!read_header(&job)) fail_jpeg(job, name);
  const jpeg_decompress_struct& ci = job.ci;
  // JpegImagePlugin.SOF: 8-bit samples, 1, 3 or 4 layers.
  if (ci.data_precision != 8) fail(name, "unsupported JPEG: " + std::to_string(ci.data_precision) + "-bit samples");
  switch (ci.num_components) {
    case 1: job.out_space = JCS_GRAYSCALE, job.components = 1, job.conv.src = Src::L; break;
    case 3: job.out_space = JCS_RGB, job.components = 3, job.conv.src = Src::RGB; break;
    case 4: job.out_space = JCS_CMYK, job.components = 4, job.conv.src = Src::CMYK, job.invert = true; break;
    default: fail(name, "unsupported JPEG: " + std::to_string(ci.num_components) + " colour components");
  }
  check_size(name, ci.image_width, ci.image_height, opt);

  Decoded result;
  result.orientation = jpeg_orientation(ci);
  job.conv.mode = mode;
  result.image = Image(ci.image_width, ci.image_height, job.conv.out_channels());
  job.out = result.image.pixels.data();
  job.out_stride = result.image.width * result.image.channels;
  std::vector<uint8_t> tmp;
  if (!job.conv.identity()) {
    job.tmp_stride = static_cast<int64_t>(ci.image_width) * job.components;
    tmp.resize(static_cast<size_t>(job.tmp_stride) * kMaxRows);
    job.tmp = tmp.data();
  }
  if (!decompress(&job)) fail_jpeg(job, name);
  return result;
}

}  // namespace convnext::image::detail
