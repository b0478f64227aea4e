// A small, bounds-checked reader of ZIP archives (the container torch.save writes since
// PyTorch 1.6) over a read-only mapping: end-of-central-directory (and its zip64 locator and
// record), central directory entries with zip64 extra fields, local headers. Stored entries
// (method 0, torch's default) are given zero-copy as a pointer into the mapping; deflated ones
// (method 8) are inflated with zlib into an owned buffer. Every entry read is CRC-32 checked.
// Errors are convnext::Error with one line "<file>: <problem>".
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "io/mapped_file.h"

namespace convnext::io {

struct ZipEntry {
  std::string name;
  uint16_t method = 0;  // 0 stored, 8 deflated
  uint16_t flags = 0;
  uint32_t crc = 0;
  uint64_t compressed_size = 0, size = 0;
  uint64_t local_header_offset = 0;
};

// The bytes of one entry, kept alive by `owner` (the mapping, or an inflated buffer).
struct ZipData {
  const uint8_t* data = nullptr;
  uint64_t size = 0;
  std::shared_ptr<void> owner;
  bool borrowed = false;  // true: points into the file's mapping
};

class ZipReader {
 public:
  static std::shared_ptr<ZipReader> open(const std::string& path);
  // An already-mapped file (ownership shared).
  static std::shared_ptr<ZipReader> open(std::shared_ptr<MappedFile> file);

  const std::string& path() const { return file_->path(); }
  const std::shared_ptr<MappedFile>& file() const { return file_; }
  const std::vector<ZipEntry>& entries() const { return entries_; }
  const ZipEntry* find(const std::string& name) const;
  // The entry's uncompressed bytes, CRC-checked (once per stored entry; cached).
  ZipData read(const ZipEntry& e) const;

 private:
  std::shared_ptr<MappedFile> file_;
  std::vector<ZipEntry> entries_;
  std::map<std::string, size_t> index_;
  mutable std::vector<bool> crc_ok_;
};

}  // namespace convnext::io
