/* SPDX-License-Identifier: MIT */
/* Status codes shared by every brigade call. BG_ENOTSUP means this build of the library lacks
 * something (built without OpenBLAS, MPI or CUDA): another build has it. BG_EBACKEND means the
 * build is fine but the backend chosen cannot do what was asked (a timeout on threads, which
 * cannot stop a running task): another backend of the same build can. One X-macro table generates
 * the enum, the messages returned by bg_strerror() and the names returned by bg_errname(), so they
 * can never drift apart (the libuv pattern). */
#ifndef BRIGADE_ERROR_H
#define BRIGADE_ERROR_H

#ifdef __cplusplus
extern "C" {
#endif

/* XX(name, value, message) */
#define BG_ERRNO_MAP(XX)                                                                           \
  XX(OK, 0, "success")                                                                             \
  XX(EINVAL, -1, "invalid argument")                                                               \
  XX(ENOMEM, -2, "not enough memory")                                                              \
  XX(ENOTSUP, -3, "not supported by this build")                                                   \
  XX(EUNAVAIL, -4, "not available on this machine at run time")                                    \
  XX(ESYS, -5, "operating system call failed")                                                     \
  XX(ECANCELED, -6, "operation canceled")                                                          \
  XX(ETASK, -7, "one or more tasks failed")                                                        \
  XX(EBUSY, -8, "resource busy")                                                                   \
  XX(ERANGE, -9, "size or count out of range")                                                     \
  XX(ENOENT, -10, "no such backend, file or entry")                                                \
  XX(ECRASH, -11, "a task's worker process died (a signal or an exit)")                            \
  XX(ETIMEDOUT, -12, "a task ran past its timeout")                                                \
  XX(EBACKEND, -13, "the chosen backend cannot do this; another backend can")                      \
  XX(EFORMAT, -14, "the file is not in a format brigade reads")

typedef enum bg_status {
#define BG__ERR_ENUM(name, value, msg) BG_##name = (value),
  BG_ERRNO_MAP(BG__ERR_ENUM)
#undef BG__ERR_ENUM
} bg_status_t;

/**
 * bg_strerror - a sentence describing a status code.
 * @code: 0 or a negative BG_E* value.
 *
 * Return: a static string; "unknown error" for a value outside the table. Thread-safe.
 */
const char *bg_strerror(int code);

/**
 * bg_errname - the symbolic name of a status code, such as "BG_EINVAL".
 * @code: 0 or a negative BG_E* value.
 *
 * Return: a static string; "BG_EUNKNOWN" for a value outside the table. Thread-safe.
 */
const char *bg_errname(int code);

#ifdef __cplusplus
}
#endif
#endif
