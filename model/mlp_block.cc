#include "model/mlp_block.h"

#include "kernels/cast.h"
#include "kernels/matmul.h"
#include "kernels/swiglu.h"

namespace moetrain::model {

template <typename T>
void MlpBlock<T>::DeclareActivations(SlotDeclarer* acts, int64_t n, int64_t width) {
  for (const char* s : {"a", "b", "h"}) acts->Add(s, {n, width}, DTypeOf<T>::value);
}

template <typename T>
void MlpBlock<T>::DeclareWorkspace(SlotDeclarer* ws, int64_t n, int64_t width) {
  for (const char* s : {"dh", "da", "db"}) ws->Add(s, {n, width}, DTypeOf<T>::value);
}

template <typename T>
void MlpBlock<T>::Bind(const Weights& w, const SlotBinder& acts, const SlotBinder& ws) {
  w_ = w;
  a_ = acts.Get<T>("a");
  b_ = acts.Get<T>("b");
  h_ = acts.Get<T>("h");
  dh_ = ws.Get<T>("dh");
  da_ = ws.Get<T>("da");
  db_ = ws.Get<T>("db");
}

template <typename T>
void MlpBlock<T>::Forward(T* y, const T* x) {
  kernels::LinearForward(a_, x, w_.w1, n_, c_, width_);
  kernels::LinearForward(b_, x, w_.w3, n_, c_, width_);
  kernels::RoundToDType(a_, n_ * width_, store_);
  kernels::RoundToDType(b_, n_ * width_, store_);
  kernels::SwigluForward(h_, a_, b_, n_ * width_);
  kernels::RoundToDType(h_, n_ * width_, store_);
  kernels::LinearForward(y, h_, w_.w2, n_, width_, c_);
  kernels::RoundToDType(y, n_ * c_, store_);
}

template <typename T>
void MlpBlock<T>::Backward(T* dx, bool accumulate_dx, const T* dy, const T* x) {
  kernels::LinearBackward(dh_, w_.dw2, dy, h_, w_.w2, n_, width_, c_);
  kernels::RoundToDType(dh_, n_ * width_, store_);
  kernels::SwigluBackward(da_, db_, dh_, a_, b_, n_ * width_);
  kernels::RoundToDType(da_, n_ * width_, store_);
  kernels::RoundToDType(db_, n_ * width_, store_);
  // dx = da W1 + db W3  (the first product overwrites unless accumulating)
  kernels::Matmul(dx, da_, w_.w1, n_, c_, width_, false, false, T(1), accumulate_dx ? T(1) : T(0));
  kernels::Matmul(dx, db_, w_.w3, n_, c_, width_, false, false, T(1), T(1));
  kernels::LinearBackward<T>(nullptr, w_.dw1, da_, x, w_.w1, n_, c_, width_);
  kernels::LinearBackward<T>(nullptr, w_.dw3, db_, x, w_.w3, n_, c_, width_);
  kernels::RoundToDType(dx, n_ * c_, store_);
}

template class MlpBlock<float>;
template class MlpBlock<double>;

}  // namespace moetrain::model
