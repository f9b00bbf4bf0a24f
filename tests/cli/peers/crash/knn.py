#!/usr/bin/env python3
"""A fake knn peer killed as the out-of-memory killer kills NumPy at the lecture's memory wall."""
import os
import signal

os.kill(os.getpid(), signal.SIGKILL)
