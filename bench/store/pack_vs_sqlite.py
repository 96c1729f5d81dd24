#!/usr/bin/env python3
"""What the bytes of a sweep's blobs cost written through SQLite against
written to files, the two ways the store could keep a chunk's signals.

Reads every blob a store holds in its index (inline rows and packed ones,
from the packs), then, in fresh temp directories, times:
  sqlite  inserting them into a new index-like table (WAL, 16 KiB pages,
          synchronous=OFF, as the store opens its index) in transactions
          of GROUP blobs, then a TRUNCATE checkpoint;
  packs   writing them back to back, one new file per GROUP blobs.

Usage: python3 bench/store/pack_vs_sqlite.py STORE_DIR [ROUNDS] [GROUP]
(STORE_DIR: the --cache-dir of a cold `admf build` of the sweep in
bench/store/store_v2.sh). Prints the median of ROUNDS (default 5) per way.
"""
import os
import sqlite3
import statistics
import sys
import tempfile
import time

store = sys.argv[1]
rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
group = int(sys.argv[3]) if len(sys.argv) > 3 else 96

db = sqlite3.connect(os.path.join(store, "index", "index.db"))
blobs = list(db.execute("SELECT digest, data FROM blobs"))
for digest, pack, offset, size in db.execute("SELECT digest, pack, offset, size FROM packed"):
    with open(os.path.join(store, "packs", pack), "rb") as f:
        f.seek(offset)
        blobs.append((digest, f.read(size)))
db.close()
groups = [blobs[i:i + group] for i in range(0, len(blobs), group)]
print(f"{len(blobs)} blobs, {sum(len(b) for _, b in blobs)} bytes, groups of {group}")


def through_sqlite(dir):
    conn = sqlite3.connect(os.path.join(dir, "index.db"), isolation_level=None)
    conn.executescript(
        "PRAGMA page_size=16384; PRAGMA journal_mode=WAL; PRAGMA synchronous=OFF;"
        "PRAGMA cache_size=-8192; CREATE TABLE blobs (digest TEXT PRIMARY KEY, data BLOB NOT NULL);"
    )
    started = time.perf_counter()
    for g in groups:
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany("INSERT INTO blobs VALUES (?, ?)", g)
        conn.execute("COMMIT")
    inserted = time.perf_counter()
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    done = time.perf_counter()
    conn.close()
    return inserted - started, done - inserted


def to_packs(dir):
    started = time.perf_counter()
    for n, g in enumerate(groups):
        fd = os.open(os.path.join(dir, f"{n}.pack"), os.O_WRONLY | os.O_CREAT | os.O_EXCL)
        os.writev(fd, [b for _, b in g])
        os.close(fd)
    return time.perf_counter() - started


insert, checkpoint, packs = [], [], []
for _ in range(rounds):
    with tempfile.TemporaryDirectory() as dir:
        i, c = through_sqlite(dir)
        insert.append(i)
        checkpoint.append(c)
    with tempfile.TemporaryDirectory() as dir:
        packs.append(to_packs(dir))
ms = lambda xs: f"{statistics.median(xs) * 1000:.1f} ms"
print(f"sqlite: insert {ms(insert)}, checkpoint {ms(checkpoint)}")
print(f"packs:  {ms(packs)}")
