// CONVNEXT_API marks the public API: the library is compiled with -fvisibility=hidden, so in a
// shared libconvnext only what carries it is exported (and the internals stay free to change).
// Every function and class declared in include/convnext/ that is defined in the library needs it;
// inline functions and plain structs without out-of-line members do not.
#pragma once

#if defined(__GNUC__) || defined(__clang__)
#define CONVNEXT_API __attribute__((visibility("default")))
#else
#define CONVNEXT_API
#endif
