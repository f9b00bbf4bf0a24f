#!/usr/bin/env python3
"""A fake catalogue peer with fixed lines: two rows, a skipped approach, a wrong result and a
line brigade must refuse."""
print("peer\tapproach=seq\tworkers=1\tmedian=2.0\tmin=1.9\tmax=2.1\tpeak_mib=10.0\tstatus=ok")
print("peer\tapproach=joblib\tworkers=2\tmedian=1.0\tmin=0.9\tmax=1.1\tpeak_mib=20.0\tstatus=ok")
print("peer\tapproach=mpire\tstatus=skipped\twhy=mpire not installed\tfix=make bench-peers")
print("peer\tapproach=futures\tworkers=2\tmedian=0.5\tmin=0.5\tmax=0.5\tpeak_mib=20.0\tstatus=wrong")
print("peer\tapproach=seq\tworkers=1\tmedian=fast\tmin=1\tmax=1\tpeak_mib=1\tstatus=ok")
print("some chatter a peer should not print")
