"""What one index commit and lookup cost in SQLite and in LMDB (the store's
index is SQLite; src/store/mod.rs says why).

Writes N commits the way a sweep does (one transaction per trial: two small
blobs of 2 KiB and 0.3 KiB, an action row of 0.5 KiB), then looks each action
up and reads its blobs, in both engines, neither fsyncing (SQLite
WAL with synchronous=OFF; LMDB with sync=False), on the same disk.

    python3 -m venv v && v/bin/pip install lmdb
    v/bin/python bench/store/index_choice.py [N] [DIR]
"""

import os
import shutil
import sqlite3
import sys
import tempfile
import time

import lmdb

N = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
BASE = sys.argv[2] if len(sys.argv) > 2 else None


def payload(i):
    key = ("%064x" % (i * 7919 + 1)).encode()
    signal = os.urandom(1024).hex().encode()
    metrics = (b'{"sharpe": %d}' % i).ljust(300)
    action = b'{"outputs": ...}'.ljust(500)
    return key, [(b"s" + key, signal), (b"m" + key, metrics)], action


def sqlite_run(dir):
    db = sqlite3.connect(os.path.join(dir, "index.db"), isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=OFF")
    db.execute("CREATE TABLE blobs (digest BLOB PRIMARY KEY, data BLOB) WITHOUT ROWID")
    db.execute("CREATE TABLE actions (key BLOB PRIMARY KEY, row BLOB)")
    items = [payload(i) for i in range(N)]
    t0 = time.perf_counter()
    for key, blobs, action in items:
        db.execute("BEGIN IMMEDIATE")
        db.executemany("INSERT OR IGNORE INTO blobs VALUES (?, ?)", blobs)
        db.execute("INSERT INTO actions VALUES (?, ?)", (key, action))
        db.execute("COMMIT")
    t1 = time.perf_counter()
    for key, blobs, _ in items:
        db.execute("SELECT row FROM actions WHERE key = ?", (key,)).fetchone()
        for d, _ in blobs:
            db.execute("SELECT data FROM blobs WHERE digest = ?", (d,)).fetchone()
    t2 = time.perf_counter()
    db.close()
    return t1 - t0, t2 - t1


def lmdb_run(dir):
    env = lmdb.open(dir, map_size=1 << 30, sync=False, max_dbs=2)
    blobs_db = env.open_db(b"blobs")
    actions_db = env.open_db(b"actions")
    items = [payload(i) for i in range(N)]
    t0 = time.perf_counter()
    for key, blobs, action in items:
        with env.begin(write=True) as tx:
            for d, data in blobs:
                tx.put(d, data, db=blobs_db, overwrite=False)
            tx.put(key, action, db=actions_db)
    t1 = time.perf_counter()
    with env.begin() as tx:
        for key, blobs, _ in items:
            tx.get(key, db=actions_db)
            for d, _ in blobs:
                tx.get(d, db=blobs_db)
    t2 = time.perf_counter()
    env.close()
    return t1 - t0, t2 - t1


for name, run in [("sqlite (WAL, OFF)", sqlite_run), ("lmdb (sync=False)", lmdb_run)]:
    best = None
    for _ in range(3):
        d = tempfile.mkdtemp(dir=BASE)
        try:
            w, r = run(d)
        finally:
            shutil.rmtree(d)
        best = (w, r) if best is None or w < best[0] else best
    w, r = best
    print(f"{name:22} {N} commits: {w * 1e6 / N:7.1f} us/commit; {N} lookups: {r * 1e6 / N:6.1f} us/lookup")
