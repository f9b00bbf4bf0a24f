/* SPDX-License-Identifier: MIT */
/* Contention: how much of the machine other processes took while a row ran. A speedup measured
 * while another program held a core is not the code's, and the reader must be told. The whole
 * machine's CPU time comes from /proc/stat (steal included: a hypervisor's other guests count
 * as other processes); the bench's own from getrusage. */
#ifndef BRIGADE_BENCH_CONTENTION_H
#define BRIGADE_BENCH_CONTENTION_H

/* The machine's CPU time since boot, in seconds summed over its CPUs. */
typedef struct bench_machine_cpu {
  double busy;  /* user, nice, system, irq, softirq (guest time is inside user) */
  double steal; /* taken by the hypervisor for other guests */
  double total; /* everything, idle and iowait included: CPUs x elapsed time */
  double grain; /* what one reading may be off by: a tick per CPU */
  int ok;       /* 0 where /proc/stat could not be read */
} bench_machine_cpu;

/* The share of the machine's CPU capacity below which nobody else is said to have run: what
 * the bench's own bookkeeping, the kernel's threads and /proc/stat's 10 ms ticks show on an
 * idle machine stays well under it. */
#define BENCH_OTHERS_NOTICEABLE 0.10

/* Capacity a measurement needs (CPU-seconds) before its share means anything: /proc/stat
 * counts in ticks of 1/USER_HZ (10 ms) per CPU, so shorter rows are left unmeasured. */
#define BENCH_OTHERS_MIN_CAPACITY 0.25

/* The machine's counters now; ok is 0 without /proc/stat. */
bench_machine_cpu bench_machine_cpu_now(void);

/* Parses the "cpu " line of a /proc/stat text into *out (ticks converted with @hz). Returns 0,
 * or -1 when the text has no such line. Separate from reading so that tests can feed it. */
int bench_machine_cpu_parse(const char *stat, double hz, bench_machine_cpu *out);

/* Accumulates the difference b - a into *sum (ok only if both readings were), with the
 * uncertainty of both readings. */
void bench_machine_cpu_add(bench_machine_cpu *sum, const bench_machine_cpu *a,
                           const bench_machine_cpu *b);

/* The share (0..1) of the machine's CPU capacity in @d (a sum of differences) that went to
 * other processes while this one used @own_cpu_s of CPU time (its reaped children included),
 * less what the ticks' rounding could account for: a lower bound, so that an idle machine never
 * reads as busy. -1 when it cannot be told: no /proc/stat, or less than
 * BENCH_OTHERS_MIN_CAPACITY CPU-seconds measured. */
double bench_others_share(const bench_machine_cpu *d, double own_cpu_s);

/* The window over which bench_wait_quiet() judges the machine, in seconds: long enough for
 * /proc/stat's ticks to measure a share on one CPU, short enough not to wait long once the
 * other work has ended. */
#define BENCH_QUIET_WINDOW 1.0

/* Waits until other processes used less than BENCH_OTHERS_NOTICEABLE of the machine's CPU
 * over one BENCH_QUIET_WINDOW, for at most @max_s seconds. Returns the seconds waited; -1 when
 * the machine stayed busy that long, when it cannot be told (no /proc/stat), or when a Ctrl-C
 * (bench_interrupted) stopped the wait. */
double bench_wait_quiet(double max_s);

#endif
