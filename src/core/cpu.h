// What the CPU can do, asked once.
#pragma once

namespace convnext {

bool cpu_has_avx512();       // AVX-512 F/BW/DQ/VL + FMA: the x86 fast kernels
bool cpu_has_avx512_bf16();  // vdpbf16ps
// CONVNEXT_KERNELS=reference|portable|avx512 in the environment forces a kernel family
// (for tests and benchmarks); empty means "the best this CPU runs".
const char* forced_kernels();

}  // namespace convnext
