// SHA-256 (FIPS 180-4), implemented here (no OpenSSL dependency).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace convnext::io {

class Sha256 {
 public:
  Sha256();
  void update(const void* data, size_t n);
  std::string hex_digest();  // finishes; call once

 private:
  void block(const unsigned char* p);
  uint32_t h_[8];
  unsigned char buf_[64];
  size_t buf_len_ = 0;
  uint64_t total_ = 0;
};

std::string sha256_hex(const void* data, size_t n);
std::string sha256_hex_of_file(const std::string& path);  // throws Error when it cannot be opened

}  // namespace convnext::io
