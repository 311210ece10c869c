// MPI error handling: MPI return codes become a Status naming the call, file:line and
// MPI_Error_string. Communicators created by this folder use MPI_ERRORS_RETURN so that failures
// reach these checks instead of aborting the job inside MPI.
// Include only from parallel/*.cc and tests (it pulls in <mpi.h>).
#pragma once

#include <mpi.h>

#include "core/status.h"

namespace moetrain::parallel {

// OK for MPI_SUCCESS; otherwise InternalError("MPI_Allreduce failed at f.cc:12: <MPI text> ...").
// `call` may be the whole call expression; only the part before the first '(' is reported.
absl::Status MpiStatus(int err, const char* call, const char* file, int line);

}  // namespace moetrain::parallel

#define MPI_RETURN_IF_ERROR(call) \
  RETURN_IF_ERROR(::moetrain::parallel::MpiStatus((call), #call, __FILE__, __LINE__))
