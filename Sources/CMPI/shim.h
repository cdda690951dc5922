// OpenMPI defines its predefined handles (MPI_COMM_WORLD, MPI_FLOAT, MPI_SUM, ...) as macros
// that expand to casts of global symbols; Swift cannot import those. These inline functions
// return them as values Swift can use.
#pragma once
#include <mpi.h>

static inline MPI_Comm dpt_comm_world(void) { return MPI_COMM_WORLD; }
static inline MPI_Datatype dpt_float(void) { return MPI_FLOAT; }
static inline MPI_Datatype dpt_double(void) { return MPI_DOUBLE; }
static inline MPI_Datatype dpt_int32(void) { return MPI_INT32_T; }
static inline MPI_Datatype dpt_uint64(void) { return MPI_UINT64_T; }
static inline MPI_Datatype dpt_uint16(void) { return MPI_UINT16_T; }
static inline MPI_Datatype dpt_byte(void) { return MPI_BYTE; }
static inline MPI_Op dpt_op_sum(void) { return MPI_SUM; }
static inline MPI_Op dpt_op_max(void) { return MPI_MAX; }
static inline MPI_Op dpt_op_min(void) { return MPI_MIN; }
static inline void *dpt_in_place(void) { return MPI_IN_PLACE; }
static inline MPI_Errhandler dpt_errors_return(void) { return MPI_ERRORS_RETURN; }
static inline int dpt_comm_type_shared(void) { return MPI_COMM_TYPE_SHARED; }
static inline MPI_Info dpt_info_null(void) { return MPI_INFO_NULL; }
static inline int dpt_success(void) { return MPI_SUCCESS; }
static inline int dpt_max_error_string(void) { return MPI_MAX_ERROR_STRING; }
static inline int dpt_undefined(void) { return MPI_UNDEFINED; }
static inline int dpt_mode_nocheck(void) { return MPI_MODE_NOCHECK; }
static inline MPI_Comm dpt_comm_null(void) { return MPI_COMM_NULL; }
static inline MPI_Win dpt_win_null(void) { return MPI_WIN_NULL; }
static inline int dpt_thread_serialized(void) { return MPI_THREAD_SERIALIZED; }
static inline MPI_Status *dpt_status_ignore(void) { return MPI_STATUS_IGNORE; }
