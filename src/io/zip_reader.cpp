#include "io/zip_reader.h"

#include <zlib.h>

#include <algorithm>
#include <limits>

#include "convnext/error.h"

namespace convnext::io {

namespace {

[[noreturn]] void fail(const std::string& path, const std::string& what) { throw Error(path + ": " + what); }

uint64_t le(const uint8_t* p, int n) {
  uint64_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

constexpr uint32_t kEocd = 0x06054b50, kEocd64 = 0x06064b50, kLocator = 0x07064b50;
constexpr uint32_t kCentral = 0x02014b50, kLocal = 0x04034b50;

}  // namespace

std::shared_ptr<ZipReader> ZipReader::open(const std::string& path) { return open(MappedFile::open(path)); }

std::shared_ptr<ZipReader> ZipReader::open(std::shared_ptr<MappedFile> file) {
  auto z = std::make_shared<ZipReader>();
  z->file_ = std::move(file);
  const std::string& path = z->file_->path();
  const uint8_t* b = z->file_->data();
  const uint64_t fsize = z->file_->size();
  if (fsize < 22) fail(path, "not a zip archive (" + std::to_string(fsize) + " bytes, too short for an end-of-central-directory record)");

  // End of central directory: the last signature within the final 64 KiB + 22 bytes.
  uint64_t eocd = std::numeric_limits<uint64_t>::max();
  const uint64_t lowest = fsize > 22 + 65535 ? fsize - 22 - 65535 : 0;
  for (uint64_t pos = fsize - 22 + 1; pos-- > lowest;) {
    if (le(b + pos, 4) == kEocd && pos + 22 + le(b + pos + 20, 2) <= fsize) {
      eocd = pos;
      break;
    }
  }
  if (eocd == std::numeric_limits<uint64_t>::max())
    fail(path, "not a zip archive, or truncated (no end-of-central-directory record)");
  uint64_t disk = le(b + eocd + 4, 2), cd_disk = le(b + eocd + 6, 2);
  uint64_t n_disk = le(b + eocd + 8, 2), n_total = le(b + eocd + 10, 2);
  uint64_t cd_size = le(b + eocd + 12, 4), cd_off = le(b + eocd + 16, 4);
  const bool want64 = n_disk == 0xffff || n_total == 0xffff || cd_size == 0xffffffffu || cd_off == 0xffffffffu;
  if (eocd >= 20 && le(b + eocd - 20, 4) == kLocator) {
    const uint64_t rec = le(b + eocd - 20 + 8, 8);
    if (le(b + eocd - 20 + 16, 4) > 1) fail(path, "multi-disk zip archives are not supported");
    if (rec > eocd - 20 || eocd - 20 - rec < 56) fail(path, "zip64 end-of-central-directory locator points outside the file");
    if (le(b + rec, 4) != kEocd64) fail(path, "zip64 end-of-central-directory record has a bad signature");
    disk = le(b + rec + 16, 4);
    cd_disk = le(b + rec + 20, 4);
    n_disk = le(b + rec + 24, 8);
    n_total = le(b + rec + 32, 8);
    cd_size = le(b + rec + 40, 8);
    cd_off = le(b + rec + 48, 8);
  } else if (want64) {
    fail(path, "zip64 end-of-central-directory locator missing");
  }
  if (disk != 0 || cd_disk != 0 || n_disk != n_total) fail(path, "multi-disk zip archives are not supported");
  if (cd_off > eocd || cd_size > eocd - cd_off)
    fail(path, "central directory [" + std::to_string(cd_off) + ", +" + std::to_string(cd_size) +
                   ") lies outside the file (truncated?)");
  if (n_total > cd_size / 46) fail(path, std::to_string(n_total) + " entries cannot fit in a central directory of " + std::to_string(cd_size) + " bytes");

  uint64_t pos = cd_off;
  const uint64_t cd_end = cd_off + cd_size;
  for (uint64_t i = 0; i < n_total; ++i) {
    if (cd_end - pos < 46 || le(b + pos, 4) != kCentral) fail(path, "central directory entry " + std::to_string(i) + " is damaged");
    ZipEntry e;
    e.flags = static_cast<uint16_t>(le(b + pos + 8, 2));
    e.method = static_cast<uint16_t>(le(b + pos + 10, 2));
    e.crc = static_cast<uint32_t>(le(b + pos + 16, 4));
    e.compressed_size = le(b + pos + 20, 4);
    e.size = le(b + pos + 24, 4);
    const uint64_t nlen = le(b + pos + 28, 2), xlen = le(b + pos + 30, 2), clen = le(b + pos + 32, 2);
    uint64_t edisk = le(b + pos + 34, 2);
    e.local_header_offset = le(b + pos + 42, 4);
    if (cd_end - pos - 46 < nlen + xlen + clen) fail(path, "central directory entry " + std::to_string(i) + " runs past the directory");
    e.name.assign(reinterpret_cast<const char*>(b + pos + 46), nlen);
    // zip64 extra field: the 64-bit values of exactly those fields stored as all ones.
    const uint8_t* x = b + pos + 46 + nlen;
    for (uint64_t xp = 0; xp + 4 <= xlen;) {
      const uint64_t id = le(x + xp, 2), len = le(x + xp + 2, 2);
      if (xp + 4 + len > xlen) fail(path, "entry '" + e.name + "': extra field runs past its end");
      if (id == 1) {
        const uint8_t* f = x + xp + 4;
        uint64_t left = len;
        auto take = [&](uint64_t& v, int n) {
          if (left < static_cast<uint64_t>(n)) fail(path, "entry '" + e.name + "': zip64 extra field too short");
          v = le(f, n);
          f += n;
          left -= static_cast<uint64_t>(n);
        };
        if (e.size == 0xffffffffu) take(e.size, 8);
        if (e.compressed_size == 0xffffffffu) take(e.compressed_size, 8);
        if (e.local_header_offset == 0xffffffffu) take(e.local_header_offset, 8);
        if (edisk == 0xffff) take(edisk, 4);
      }
      xp += 4 + len;
    }
    if (edisk != 0) fail(path, "entry '" + e.name + "' is on another disk (multi-disk archives are not supported)");
    if (e.flags & 1u) fail(path, "entry '" + e.name + "' is encrypted");
    if (e.method != 0 && e.method != 8)
      fail(path, "entry '" + e.name + "' uses compression method " + std::to_string(e.method) + " (only stored and deflate are supported)");
    if (e.method == 0 && e.compressed_size != e.size)
      fail(path, "entry '" + e.name + "' is stored but its sizes differ (" + std::to_string(e.compressed_size) + " vs " + std::to_string(e.size) + ")");
    if (e.local_header_offset > cd_off || cd_off - e.local_header_offset < 30)
      fail(path, "entry '" + e.name + "': local header offset " + std::to_string(e.local_header_offset) + " is outside the file data");
    if (z->index_.count(e.name)) fail(path, "entry '" + e.name + "' appears twice");
    z->index_[e.name] = z->entries_.size();
    z->entries_.push_back(std::move(e));
    pos += 46 + nlen + xlen + clen;
  }
  z->crc_ok_.assign(z->entries_.size(), false);
  return z;
}

const ZipEntry* ZipReader::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &entries_[it->second];
}

ZipData ZipReader::read(const ZipEntry& e) const {
  const std::string& p = path();
  const uint8_t* b = file_->data();
  const uint64_t fsize = file_->size();
  const uint64_t lh = e.local_header_offset;  // validated at open: lh + 30 <= central directory
  if (le(b + lh, 4) != kLocal) fail(p, "entry '" + e.name + "': bad local header signature");
  const uint64_t nlen = le(b + lh + 26, 2), xlen = le(b + lh + 28, 2);
  const uint64_t start = lh + 30 + nlen + xlen;
  if (start > fsize || e.compressed_size > fsize - start)
    fail(p, "entry '" + e.name + "': data [" + std::to_string(start) + ", +" + std::to_string(e.compressed_size) +
                ") runs past the end of the file (truncated?)");
  if (std::string_view(reinterpret_cast<const char*>(b + lh + 30), nlen) != e.name)
    fail(p, "entry '" + e.name + "': local header names a different file");
  const size_t idx = static_cast<size_t>(&e - entries_.data());
  ZipData out;
  if (e.method == 0) {
    out.data = b + start;
    out.size = e.size;
    out.owner = file_;
    out.borrowed = true;
  } else {
    // Deflate cannot expand more than ~1032:1; refuse claimed sizes beyond that (zip bombs).
    if (e.size / 1032 > e.compressed_size + 1) fail(p, "entry '" + e.name + "': uncompressed size " + std::to_string(e.size) + " is implausible");
    auto buf = std::make_shared<std::vector<uint8_t>>(static_cast<size_t>(e.size));
    z_stream s{};
    if (inflateInit2(&s, -MAX_WBITS) != Z_OK) fail(p, "zlib inflateInit failed");
    uint64_t in_left = e.compressed_size, out_left = e.size;
    const uint8_t* in = b + start;
    uint8_t* outp = buf->data();
    int rc = Z_OK;
    while (rc == Z_OK) {
      const uInt ci = static_cast<uInt>(std::min<uint64_t>(in_left, 1u << 30));
      const uInt co = static_cast<uInt>(std::min<uint64_t>(out_left, 1u << 30));
      s.next_in = const_cast<Bytef*>(in);
      s.avail_in = ci;
      s.next_out = outp;
      s.avail_out = co;
      rc = inflate(&s, Z_NO_FLUSH);
      in += ci - s.avail_in;
      in_left -= ci - s.avail_in;
      outp += co - s.avail_out;
      out_left -= co - s.avail_out;
      if (rc == Z_OK && ci == s.avail_in && co == s.avail_out) rc = Z_BUF_ERROR;  // no progress
    }
    inflateEnd(&s);
    if (rc != Z_STREAM_END || out_left != 0)
      fail(p, "entry '" + e.name + "': deflate data is corrupt or does not match its size " + std::to_string(e.size));
    out.data = buf->data();
    out.size = e.size;
    out.owner = buf;
  }
  if (!crc_ok_[idx] || e.method != 0) {
    uLong c = crc32(0L, Z_NULL, 0);
    for (uint64_t off = 0; off < out.size;) {
      const uInt n = static_cast<uInt>(std::min<uint64_t>(out.size - off, 1u << 30));
      c = crc32(c, out.data + off, n);
      off += n;
    }
    if (static_cast<uint32_t>(c) != e.crc) fail(p, "entry '" + e.name + "': CRC-32 mismatch (corrupt file)");
    crc_ok_[idx] = true;
  }
  return out;
}

}  // namespace convnext::io
