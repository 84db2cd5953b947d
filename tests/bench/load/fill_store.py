"""Fills a store with STOPPED sessions through the Python package (capi/python).

    XG2G_LIBRARY=BUILD/capi/libxg2g.so.0 PYTHONPATH=capi/python \\
        python3 tests/bench/load/fill_store.py STORE_URI COUNT

Used by tests/bench/load/run before the scan-under-load phase on the LMDB and
Redis stores: a start/stop pair through the daemon costs eight store writes
and, on LMDB, their fsyncs; a stored record is what a scan reads either way.
Prints the number stored and the time it took.
"""
import sys
import time

import xg2g


def main():
    uri, count = sys.argv[1], int(sys.argv[2])
    started = time.monotonic()
    with xg2g.Store(uri) as store:
        for i in range(count):
            session = xg2g.Session(f"1:0:1:fill:{i}")
            try:
                session.apply(xg2g.Event.STOP)
                store.put(session)
            finally:
                session.close()
        _, total = store.list(0, 1)
    print(f"{count} {time.monotonic() - started:.1f} {total}")


if __name__ == "__main__":
    main()
