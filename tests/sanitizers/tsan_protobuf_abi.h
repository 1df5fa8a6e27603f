// tsan_protobuf_abi.h: force-included (-include) before every C++ file of a ThreadSanitizer
// build (tests/sanitizers/CMakeLists.txt); does nothing in any other build.
//
// Why: protobuf 3.21's map_field.h gives MapFieldBase two extra members (seq1_, seq2_, its
// own race check) when __SANITIZE_THREAD__ is defined. Debian's libprotobuf.so and our
// generated code (proto/, compiled without -fsanitize=thread) have the layout without them,
// so every message with a map field (SyncDevice.attributes, ...) would have two layouts in
// one program: instrumented code writes past the object, and the tests crash or corrupt the
// heap before TSan can say anything useful. Including map_field.h first with the macro
// hidden gives every translation unit the library's layout; the header guard keeps it.
#pragma once

#if defined(__cplusplus) && defined(__SANITIZE_THREAD__)
// libstdc++'s configuration first, with the macro visible (_GLIBCXX_TSAN).
#include <cstddef>
#if __has_include(<google/protobuf/map_field.h>)
#pragma push_macro("__SANITIZE_THREAD__")
#undef __SANITIZE_THREAD__
#include <google/protobuf/map_field.h>
#pragma pop_macro("__SANITIZE_THREAD__")
#endif
#endif
