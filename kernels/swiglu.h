// SwiGLU activation: h = silu(a) * b, silu(a) = a * sigmoid(a). a is the gate (w1 x), b the up (w3 x).
// float uses a vectorised float exp inside the sigmoid (relative error < 1e-7); double uses std::exp.
#pragma once

#include <cstdint>

namespace moetrain::kernels {

template <typename T>
void SwigluForward(T* h, const T* a, const T* b, int64_t n);

// da, db overwritten.
template <typename T>
void SwigluBackward(T* da, T* db, const T* dh, const T* a, const T* b, int64_t n);

}  // namespace moetrain::kernels
