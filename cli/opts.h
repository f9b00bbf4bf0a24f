/* SPDX-License-Identifier: MIT */
/* Argument checking shared by the subcommands: numbers and sizes with overflow checks, and the
 * usage-error message every command prints the same way. */
#ifndef BRIGADE_CLI_OPTS_H
#define BRIGADE_CLI_OPTS_H

#include <stdint.h>
#include <stdio.h>

/* Exit codes: 2 is a usage error (the command line is wrong), 1 a failure while running. */
enum cli_exit { CLI_OK = 0, CLI_FAIL = 1, CLI_USAGE = 2 };

/* Parses a decimal count with an optional K, M or G suffix (powers of 1000 for counts, so
 * "1M" items is a million) in [min, max]. Returns 0, or -1 with a reason in *why. */
int cli_parse_count(const char *s, uint64_t min, uint64_t max, uint64_t *out, const char **why);

/* Parses a byte size with an optional K, M, G or T suffix (powers of 1024). */
int cli_parse_size(const char *s, uint64_t *out, const char **why);

/* Prints "brigade CMD: <message>" and a pointer to the command's help to stderr; returns 2. */
int cli_usage(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The usage errors of an option the command does not know, and of one given without its value.
 * Both name the cause when the option was written --opt=value: the value is the next word. */
int cli_unknown_option(const char *cmd, const char *opt);
int cli_needs_value(const char *cmd, const char *opt);

/* Prints "brigade CMD: <message>" to stderr; returns 1. */
int cli_fail(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Formats a byte count as "1.5 GiB" into buf. */
const char *cli_bytes(uint64_t b, char *buf, size_t cap);

#endif
