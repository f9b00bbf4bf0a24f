/* SPDX-License-Identifier: MIT */
/* Writing a .npy file: the preamble NumPy writes for format 1.0, then the data, to a
 * descriptor or atomically to a path (internal/afile.h). */
#include "internal/afile.h"
#include "internal/npy.h"

#include "brigade/error.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* The arguments both calls take, checked once; *bytes is the data's size. */
static int check_array(bg_npy_dtype_t dtype, int ndim, const size_t *shape, const void *data,
                       size_t *bytes, bg_npy_error_t *err) {
  size_t e = bg__npy_elem_size(dtype);
  if (!e || ndim < 0 || ndim > BG_NPY_MAX_DIMS || (ndim && !shape))
    return bg__npy_fail(err, BG_NPY_ARG, BG_EINVAL,
                        "bg_npy_write: an unknown dtype (%d), or %d dimensions (0 to %d, with a "
                        "shape)",
                        (int)dtype, ndim, BG_NPY_MAX_DIMS);
  if (bg__npy_bytes(ndim, shape, e, bytes) != 0)
    return bg__npy_fail(err, BG_NPY_SHAPE, BG_EINVAL,
                        "bg_npy_write: the shape is too large to address");
  if (*bytes && !data)
    return bg__npy_fail(err, BG_NPY_ARG, BG_EINVAL, "bg_npy_write: data is NULL");
  return 0;
}

static int write_full(int fd, const void *buf, size_t n) {
  /* Writes of at most 1 GiB: Linux moves at most 2 GiB - 4 kB in one call anyway. */
  for (size_t done = 0; done < n;) {
    size_t chunk = n - done < (1u << 30) ? n - done : (1u << 30);
    ssize_t w = write(fd, (const char *)buf + done, chunk);
    if (w < 0 && errno == EINTR)
      continue;
    if (w == 0)
      errno = EIO; /* a write that moves nothing would loop forever */
    if (w <= 0)
      return -1;
    done += (size_t)w;
  }
  return 0;
}

/* Writes without checking the arguments again. */
static int write_array(int fd, bg_npy_dtype_t dtype, int ndim, const size_t *shape,
                       const void *data, size_t bytes, bg_npy_error_t *err) {
  char head[1024];
  size_t len = bg__npy_format_header(head, sizeof head, dtype, ndim, shape);
  if (write_full(fd, head, len) != 0 || write_full(fd, data, bytes) != 0)
    return bg__npy_fail(err, BG_NPY_IO, BG_ESYS, "write failed: %s", strerror(errno));
  return 0;
}

int bg_npy_write_fd(int fd, bg_npy_dtype_t dtype, int ndim, const size_t *shape, const void *data,
                    bg_npy_error_t *err) {
  if (err)
    *err = (bg_npy_error_t){0};
  size_t bytes;
  int rc = check_array(dtype, ndim, shape, data, &bytes, err);
  if (rc != 0)
    return rc;
  if (fd < 0)
    return bg__npy_fail(err, BG_NPY_ARG, BG_EINVAL, "bg_npy_write_fd: a negative descriptor");
  return write_array(fd, dtype, ndim, shape, data, bytes, err);
}

int bg_npy_write(const char *path, bg_npy_dtype_t dtype, int ndim, const size_t *shape,
                 const void *data, bg_npy_error_t *err) {
  if (err)
    *err = (bg_npy_error_t){0};
  size_t bytes;
  int rc = check_array(dtype, ndim, shape, data, &bytes, err);
  if (rc != 0)
    return rc;
  if (!path)
    return bg__npy_fail(err, BG_NPY_ARG, BG_EINVAL, "bg_npy_write: path is NULL");
  bg__afile_t f;
  char msg[sizeof err->msg];
  rc = bg__afile_prepare(&f, path, msg, sizeof msg);
  if (rc == 0)
    rc = bg__afile_create(&f, msg, sizeof msg);
  if (rc == 0) {
    bg_npy_error_t werr;
    rc = write_array(f.fd, dtype, ndim, shape, data, bytes, &werr) != 0
             ? bg__afile_abandon(&f, werr.msg, msg, sizeof msg)
             : bg__afile_commit(&f, msg, sizeof msg);
  }
  if (rc != 0)
    return bg__npy_fail(err, rc == BG_ERANGE ? BG_NPY_ARG : BG_NPY_IO, rc, "%s", msg);
  return 0;
}
