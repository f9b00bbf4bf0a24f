#!/usr/bin/env python3
"""A fake catalogue peer that prints one row, then is killed as the out-of-memory killer would."""
import os
import signal
import sys

print("peer\tapproach=seq\tworkers=1\tmedian=2.0\tmin=1.9\tmax=2.1\tpeak_mib=10.0\tstatus=ok")
sys.stdout.flush()
os.kill(os.getpid(), signal.SIGKILL)
