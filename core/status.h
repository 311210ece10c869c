// Status plumbing for moetrain.
//
// Contract: every function that can fail for reasons outside the program (files, recipes, MPI, CUDA,
// HDF5, user input) returns absl::Status or absl::StatusOr<T>. These macros keep call sites short.
// Broken invariants (programming errors) are not Statuses: MT_CHECK aborts with file:line and a message.
// Only main() turns a Status into an exit code.
#pragma once

#include <cstdio>
#include <cstdlib>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

#define MT_CONCAT_INNER_(a, b) a##b
#define MT_CONCAT_(a, b) MT_CONCAT_INNER_(a, b)

// RETURN_IF_ERROR(expr): evaluates expr (a Status); returns it from the caller if not OK.
#define RETURN_IF_ERROR(expr)                                  \
  do {                                                         \
    ::absl::Status mt_status_ = (expr);                        \
    if (!mt_status_.ok()) return mt_status_;                   \
  } while (0)

// ASSIGN_OR_RETURN(lhs, expr): evaluates expr (a StatusOr<T>); on error returns its status, else
// move-assigns the value to lhs (which may be a declaration, e.g. `auto x`).
#define ASSIGN_OR_RETURN(lhs, expr) \
  MT_ASSIGN_OR_RETURN_IMPL_(MT_CONCAT_(mt_statusor_, __LINE__), lhs, expr)
#define MT_ASSIGN_OR_RETURN_IMPL_(var, lhs, expr) \
  auto var = (expr);                              \
  if (!var.ok()) return var.status();             \
  lhs = std::move(var).value()

namespace moetrain {
[[noreturn]] void CheckFailed(const char* file, int line, const char* cond, const std::string& msg);
}  // namespace moetrain

// MT_CHECK(cond) << nothing; use MT_CHECK_MSG for a message. Aborts on a broken invariant.
#define MT_CHECK(cond) \
  do { if (!(cond)) ::moetrain::CheckFailed(__FILE__, __LINE__, #cond, ""); } while (0)
#define MT_CHECK_MSG(cond, ...) \
  do { if (!(cond)) ::moetrain::CheckFailed(__FILE__, __LINE__, #cond, ::absl::StrCat(__VA_ARGS__)); } while (0)

// MT_CHECK_OK(status_expr): aborts with the Status message when not OK. Only for failures that leave
// the process unable to continue consistently (a collective that failed mid-step: the other ranks
// are out of step too); under mpirun the abort takes the whole job down instead of hanging it.
#define MT_CHECK_OK(expr)                                                                   \
  do {                                                                                      \
    ::absl::Status mt_check_status_ = (expr);                                               \
    if (!mt_check_status_.ok())                                                             \
      ::moetrain::CheckFailed(__FILE__, __LINE__, #expr, mt_check_status_.ToString());     \
  } while (0)
