#!/usr/bin/env python3
"""A fake knn peer in plain Python (no NumPy needed): numpy answers the smallest case right and
fails the others the way NumPy fails at the memory wall; torch answers wrong; faiss claims a
time but writes no answer, only a stray file brigade must still clean up. Answers go where
brigade asked, in brigade's format."""
import argparse
import array
import operator
import os

p = argparse.ArgumentParser()
for opt in ("--approach", "--inputs"):
    p.add_argument(opt, required=True)
for opt in ("--nb-txt", "--dim", "--nb-new", "--workers", "--repeat"):
    p.add_argument(opt, type=int, required=True)
p.add_argument("--row-seconds", type=float, required=True)
a = p.parse_args()


def load(name, rows):
    v = array.array("f")
    with open(os.path.join(a.inputs, name), "rb") as f:
        v.fromfile(f, rows * a.dim)
    return [v[i * a.dim:(i + 1) * a.dim] for i in range(rows)]


def answer(ids):
    with open(os.path.join(a.inputs, a.approach + ".i64"), "wb") as f:
        array.array("q", ids).tofile(f)


line = f"peer\tapproach={a.approach}\tworkers={a.workers}"
if a.approach == "faiss":
    with open(os.path.join(a.inputs, "faiss-scratch.tmp"), "w") as f:
        f.write("left behind")
    print(f"{line}\tmedian=0.001\tmin=0.001\tmax=0.001\tpeak_mib=1.0\tstatus=ok")
elif a.approach == "torch":
    answer([0] * a.nb_new)
    print(f"{line}\tmedian=0.0005\tmin=0.0005\tmax=0.0005\tpeak_mib=1.0\tstatus=ok")
elif a.nb_txt * a.nb_new > 100000:
    print(f"{line}\tstatus=failed\twhy=MemoryError: Unable to allocate (fake)")
else:
    db, queries = load("db.f32", a.nb_txt), load("queries.f32", a.nb_new)
    best = []
    for q in queries:
        scores = [sum(map(operator.mul, q, x)) for x in db]
        best.append(max(range(a.nb_txt), key=lambda i: (scores[i], -i)))
    answer(best)
    print(f"{line}\tmedian=0.001\tmin=0.001\tmax=0.001\tpeak_mib=1.0\tstatus=ok")
