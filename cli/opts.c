/* SPDX-License-Identifier: MIT */
/* Number and size parsing for the CLI. strtoull alone accepts "-1" (as a huge number), leading
 * spaces and silent overflow, so each of those is checked here explicitly. */
#include "opts.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static int parse_scaled(const char *s, uint64_t unit, uint64_t *out, const char **why) {
  if (!s || !isdigit((unsigned char)s[0])) {
    *why = "expected a non-negative whole number";
    return -1;
  }
  errno = 0;
  char *end;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno == ERANGE) {
    *why = "number too large";
    return -1;
  }
  uint64_t mul = 1;
  if (*end == '.') {
    *why = "expected a whole number (no fraction: 1536M, not 1.5G)";
    return -1;
  }
  if (*end) {
    int power = 0;
    switch (toupper((unsigned char)*end)) {
    case 'K':
      power = 1;
      break;
    case 'M':
      power = 2;
      break;
    case 'G':
      power = 3;
      break;
    case 'T':
      power = 4;
      break;
    default:
      *why = "unknown suffix (use K, M, G or T, e.g. 512M)";
      return -1;
    }
    end++;
    if (*end == 'i')
      end++;
    if (*end == 'B')
      end++;
    if (*end) {
      *why = "trailing characters after the number";
      return -1;
    }
    for (int i = 0; i < power; i++)
      mul *= unit;
  }
  if (v > UINT64_MAX / mul) {
    *why = "number too large";
    return -1;
  }
  *out = (uint64_t)v * mul;
  return 0;
}

int cli_parse_count(const char *s, uint64_t min, uint64_t max, uint64_t *out, const char **why) {
  uint64_t v;
  if (parse_scaled(s, 1000, &v, why) != 0)
    return -1;
  if (v < min || v > max) {
    *why = v < min ? "number too small" : "number too large";
    return -1;
  }
  *out = v;
  return 0;
}

int cli_parse_size(const char *s, uint64_t *out, const char **why) {
  return parse_scaled(s, 1024, out, why);
}

static void vsay(const char *cmd, const char *fmt, va_list ap) {
  fprintf(stderr, "brigade%s%s: ", cmd ? " " : "", cmd ? cmd : "");
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
}

int cli_usage(const char *cmd, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsay(cmd, fmt, ap);
  va_end(ap);
  fprintf(stderr, "Try 'brigade help%s%s' for the options.\n", cmd ? " " : "", cmd ? cmd : "");
  return CLI_USAGE;
}

/* --opt=value: the option's name and its value, as the user meant them. */
static int joined(const char *opt, int *name_len, const char **value) {
  const char *eq = strchr(opt, '=');
  if (strncmp(opt, "--", 2) != 0 || !eq || eq == opt + 2)
    return 0;
  *name_len = (int)(eq - opt);
  *value = eq + 1;
  return 1;
}

int cli_unknown_option(const char *cmd, const char *opt) {
  int n;
  const char *v;
  if (joined(opt, &n, &v))
    return cli_usage(cmd,
                     "unknown option '%s': options take their value as the next word ('%.*s %s')",
                     opt, n, opt, v);
  return cli_usage(cmd, "unknown option '%s'", opt);
}

int cli_needs_value(const char *cmd, const char *opt) {
  int n;
  const char *v;
  if (joined(opt, &n, &v))
    return cli_unknown_option(cmd, opt);
  return cli_usage(cmd, "option '%s' needs a value", opt);
}

int cli_fail(const char *cmd, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsay(cmd, fmt, ap);
  va_end(ap);
  return CLI_FAIL;
}

const char *cli_bytes(uint64_t b, char *buf, size_t cap) {
  static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  double v = (double)b;
  size_t u = 0;
  while (v >= 1024 && u + 1 < sizeof units / sizeof units[0]) {
    v /= 1024;
    u++;
  }
  if (u == 0)
    snprintf(buf, cap, "%llu B", (unsigned long long)b);
  else
    snprintf(buf, cap, "%.1f %s", v, units[u]);
  return buf;
}
