/* SPDX-License-Identifier: MIT */
/* Messages and names for status codes, generated from the BG_ERRNO_MAP table. */
#include "brigade/error.h"

const char *bg_strerror(int code) {
  switch (code) {
#define BG__ERR_MSG(name, value, msg)                                                              \
  case BG_##name:                                                                                  \
    return msg;
    BG_ERRNO_MAP(BG__ERR_MSG)
#undef BG__ERR_MSG
  }
  return "unknown error";
}

const char *bg_errname(int code) {
  switch (code) {
#define BG__ERR_NAME(name, value, msg)                                                             \
  case BG_##name:                                                                                  \
    return "BG_" #name;
    BG_ERRNO_MAP(BG__ERR_NAME)
#undef BG__ERR_NAME
  }
  return "BG_EUNKNOWN";
}
