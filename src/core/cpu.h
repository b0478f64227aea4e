// What the CPU can do, asked once.
#pragma once

namespace convnext {

bool cpu_has_avx512();       // AVX-512 F/BW/DQ/VL + FMA: the x86 fast kernels
bool cpu_has_avx512_bf16();  // vdpbf16ps
bool cpu_has_avx512_vnni();  // vpdpbusd
// CONVNEXT_KERNELS=reference|portable|avx2|avx512 in the environment (tests, benchmarks); empty
// means "the best this CPU runs".
const char* forced_kernels();

// The instruction set every kernel of the library uses, chosen once, in this one place: the best
// the CPU runs, or less when CONVNEXT_KERNELS asks (portable or reference: plain C++; avx2: the
// image resize's AVX2 kernels, plain C++ for the model, which has no AVX2 family). A request the
// CPU cannot run falls back to the best it can.
enum class Isa { Portable, Avx2, Avx512 };
Isa selected_isa();

}  // namespace convnext
