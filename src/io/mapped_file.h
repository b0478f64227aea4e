// A read-only view of a whole file through mmap (copy-on-write private mapping, so tensors
// borrowed from it can be written by training without touching the file).
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace convnext::io {

class MappedFile {
 public:
  static std::shared_ptr<MappedFile> open(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }
  // madvise(MADV_DONTNEED): unwritten pages of the private mapping leave this process's RSS and
  // are read again from the page cache when touched.
  void release_resident_pages() const;

 private:
  MappedFile() = default;
  std::string path_;
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace convnext::io
