#!/usr/bin/env python3
"""Times commands in interleaved rounds: each round runs every command once, in a fresh random
order, so that a change in the machine's load falls on all of them alike. Prints one line per
command (median, quartiles, min, in ms) and the load average.

Usage: interleave.py ROUNDS NAME=COMMAND [NAME=COMMAND ...]
A COMMAND may start with environment settings, `VAR=value,VAR2=value::command args`.
Five warm-up rounds are not counted. A command that fails is reported and stops the run.
Each run includes starting the command (about 0.5 ms of Python's posix_spawn here), the same
for every command.
"""
import os
import random
import statistics
import subprocess
import sys
import time


def parse(arg):
    name, rest = arg.split("=", 1)
    env = dict(os.environ)
    if "::" in rest:
        settings, rest = rest.split("::", 1)
        for setting in settings.split(","):
            key, value = setting.split("=", 1)
            env[key] = value
    return name, rest.split(), env


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    rounds = int(sys.argv[1])
    commands = [parse(a) for a in sys.argv[2:]]
    names = [name for name, _, _ in commands]
    times = {name: [] for name in names}
    for r in range(rounds + 5):
        random.shuffle(commands)
        for name, argv, env in commands:
            start = time.perf_counter()
            done = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE)
            took = (time.perf_counter() - start) * 1000
            if done.returncode != 0:
                sys.exit(f"{name} failed ({done.returncode}): {done.stderr.decode(errors='replace')}")
            if r >= 5:
                times[name].append(took)
    for name in names:
        t = sorted(times[name])
        q = len(t) // 4
        print(f"{name:24s} median {statistics.median(t):6.2f}  p25 {t[q]:6.2f}  p75 {t[-q - 1]:6.2f}"
              f"  min {t[0]:6.2f}")
    print("load average:", open("/proc/loadavg").read().split()[:3])


main()
