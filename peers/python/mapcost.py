#!/usr/bin/env python3
"""What one small map costs Python's reused process pool: the overhead suite's map-cost section.

Creates multiprocessing.Pool(workers) once (outside the timed region), maps once to warm it up,
then times each of `maps` calls of pool.map(square, range(n)), the loop an iterative program or
a service runs. Every result is checked. Prints one line for `brigade bench --suite overhead
--peers python` to merge, the times per map in seconds:

  peer<TAB>approach=multiprocessing<TAB>workers=2<TAB>median=0.00045<TAB>min=...<TAB>max=...<TAB>peak_mib=...<TAB>status=ok

Usage: mapcost.py --n N --maps M --workers W
"""
import argparse
import multiprocessing
import resource
import statistics
import time


def square(i):
    return i * i


def peak_mib():
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, kids) / 1024


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, required=True)
    p.add_argument("--maps", type=int, required=True)
    p.add_argument("--workers", type=int, required=True)
    a = p.parse_args()
    want = [square(i) for i in range(a.n)]
    times, ok = [], True
    with multiprocessing.Pool(a.workers) as pool:
        ok = pool.map(square, range(a.n)) == want
        for _ in range(a.maps):
            t0 = time.perf_counter()
            got = pool.map(square, range(a.n))
            times.append(time.perf_counter() - t0)
            ok = ok and got == want
    fields = {"approach": "multiprocessing", "workers": a.workers,
              "median": f"{statistics.median(times):.9f}", "min": f"{min(times):.9f}",
              "max": f"{max(times):.9f}", "peak_mib": f"{peak_mib():.1f}",
              "status": "ok" if ok else "wrong"}
    print("peer\t" + "\t".join(f"{k}={v}" for k, v in fields.items()), flush=True)


if __name__ == "__main__":
    main()
