#include "core/cpu.h"

#include <cstdlib>
#include <string>

namespace convnext {

bool cpu_has_avx512() {
  static const bool ok = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("fma");
  }();
  return ok;
}

bool cpu_has_avx512_bf16() {
  static const bool ok = [] {
    unsigned eax, ebx, ecx, edx;
    // CPUID leaf 7 sub-leaf 1, EAX bit 5 = AVX512_BF16.
    __asm__ volatile("cpuid" : "=a"(eax), "=b"(ebx), "=c"(ecx), "=d"(edx) : "a"(7), "c"(1));
    return cpu_has_avx512() && ((eax >> 5) & 1u);
  }();
  return ok;
}

bool cpu_has_avx512_vnni() {
  static const bool ok = [] {
    __builtin_cpu_init();
    return cpu_has_avx512() && __builtin_cpu_supports("avx512vnni");
  }();
  return ok;
}

const char* forced_kernels() {
  static const char* v = [] {
    const char* e = std::getenv("CONVNEXT_KERNELS");
    return e ? e : "";
  }();
  return v;
}

namespace {
bool cpu_has_avx2() {
  static const bool ok = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  }();
  return ok;
}
}  // namespace

Isa selected_isa() {
  static const Isa isa = [] {
    const std::string forced = forced_kernels();
    if (forced == "portable" || forced == "reference") return Isa::Portable;
    if (forced == "avx2" && cpu_has_avx2()) return Isa::Avx2;
    if (cpu_has_avx512()) return Isa::Avx512;
    return cpu_has_avx2() ? Isa::Avx2 : Isa::Portable;
  }();
  return isa;
}

}  // namespace convnext
