// Rotary position embedding, Hugging Face "rotate half" convention: for head dim D and i < D/2,
//   (x_i, x_{i+D/2}) -> (x_i cos - x_{i+D/2} sin, x_{i+D/2} cos + x_i sin),
// angle(pos, i) = pos * theta^(-2i/D), computed in float64 and stored as T.
#pragma once

#include <cstdint>

namespace moetrain::kernels {

// cos, sin: (max_pos, D/2). REQUIRES: D even.
template <typename T>
void RopeTable(T* cos, T* sin, int64_t max_pos, int64_t d, double theta);

// x(B,S,H,D) rotated in place; position of token s is s (each sequence starts at 0).
// REQUIRES: S <= max_pos of the table.
template <typename T>
void RopeForward(T* x, const T* cos, const T* sin, int64_t b, int64_t s, int64_t h, int64_t d);

// The adjoint (inverse rotation) of RopeForward, in place: dx = R^T dy.
template <typename T>
void RopeBackward(T* dx, const T* cos, const T* sin, int64_t b, int64_t s, int64_t h, int64_t d);

}  // namespace moetrain::kernels
