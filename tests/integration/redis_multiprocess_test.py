#!/usr/bin/env python3
"""Three processes, one Redis: the engine's promises across daemons.

Starts its own redis-server on 127.0.0.1 on a spare port (stopped by pid at
the end) and three redis_node processes (redis_node.c: a store opened by URI
and an engine on it, through the public C API only), each with one tuner
slot. Each round:
  - 100 threads spread over the three processes start the same service at
    once (one pipe byte per thread releases them together): exactly one start
    succeeds in the whole cluster, the 99 others are busy answers naming the
    winner's session;
  - only the winner's host tunes; a stop sent to another process moves the
    session to STOPPING, and the owner tears it down on its next heartbeat;
  - the next round finds the service and the slot free again, and the tuner's
    fencing token has grown.

Usage: redis_multiprocess_test.py REDIS_SERVER REDIS_NODE
Exit status 0 when every check passed, 1 otherwise (77 to skip when
redis-server is missing).
"""
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

THREADS = 100
ROUNDS = 3
SERVICE = "1:0:19:2B66:3F3:1:C00000:0:0:0:"
TIMEOUT_S = 60  # for any one answer; the whole test takes a few seconds


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ping(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """A private redis-server, stopped by its pid."""

    def __init__(self, program):
        self.dir = tempfile.mkdtemp(prefix="redis-xg2g-mp-")
        for _attempt in range(5):
            self.port = free_port()
            self.proc = subprocess.Popen(
                [program, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--dir", self.dir, "--logfile", "redis.log"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 20
            pause = 0.001
            while time.monotonic() < deadline and self.proc.poll() is None:
                if ping(self.port):
                    return
                time.sleep(pause)
                pause = min(pause * 2, 0.05)
            self.stop()
        raise RuntimeError("redis-server did not start")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def close(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class Node:
    """One redis_node process, spoken to line by line."""

    def __init__(self, program, uri, owner, gate_fd):
        self.owner = owner
        self.proc = subprocess.Popen([program, uri, owner, str(gate_fd)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, bufsize=1,
                                     pass_fds=(gate_fd,))
        self.lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.expect("ready")

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def answer(self):
        try:
            line = self.lines.get(timeout=TIMEOUT_S)
        except queue.Empty:
            raise AssertionError(f"{self.owner}: no answer within {TIMEOUT_S} s") from None
        if line is None:
            raise AssertionError(f"{self.owner}: exited with {self.proc.wait()}")
        return line

    def send(self, command):
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()

    def ask(self, command):
        self.send(command)
        return self.answer()

    def expect(self, word):
        line = self.answer()
        if line.split(" ")[0] != word:
            raise AssertionError(f"{self.owner}: expected '{word} ...', got '{line}'")
        return line.split(" ")[1:]

    def expect_after(self, command, word):
        self.send(command)
        return self.expect(word)

    def host(self, command):
        self.send(command)
        tunes, stops, token = self.expect("host")
        return int(tunes), int(stops), int(token)

    def close(self):
        if self.proc.poll() is None:
            try:
                self.ask("quit")
                self.proc.wait(timeout=TIMEOUT_S)
            except (AssertionError, OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()


def settled(node, command, want, bound_s=10.0):
    """Asks `node` `command` until it answers `want` or `bound_s` passed; the
    last answer. Each process's store caches session records, and another
    process's write reaches that cache with the server's report of it, a
    moment after the write (docs/redis.md, "Session cache")."""
    give_up = time.monotonic() + bound_s
    while True:
        answer = node.ask(command)
        if answer == want or time.monotonic() >= give_up:
            return answer
        time.sleep(0.005)


def check(failures, ok, message):
    if not ok:
        failures.append(message)
        print("FAIL:", message, flush=True)
    return ok


def race(nodes, gate_w, failures, round_no):
    """THREADS starts of SERVICE over all nodes at once; returns (owner, session id)."""
    shares = [THREADS // len(nodes) + (1 if i < THREADS % len(nodes) else 0)
              for i in range(len(nodes))]
    for node, share in zip(nodes, shares):
        node.send(f"arm {share} {SERVICE}")
    for node in nodes:
        node.expect("armed")
    os.write(gate_w, b"g" * THREADS)  # every armed thread of every process goes
    for node in nodes:
        node.send("collect")
    results = [node.expect("result") for node in nodes]
    ok = sum(int(r[0]) for r in results)
    busy = sum(int(r[1]) for r in results)
    other = sum(int(r[2]) for r in results)
    winners = [(i, r[3]) for i, r in enumerate(results) if r[3] != "-"]
    print(f"round {round_no}: {ok} started, {busy} busy, {other} other; "
          f"winner {winners}", flush=True)
    check(failures, ok == 1 and len(winners) == 1,
          f"round {round_no}: {ok} starts succeeded across the processes, expected 1")
    check(failures, busy == THREADS - 1 and other == 0,
          f"round {round_no}: {busy} busy and {other} other answers, expected {THREADS - 1} and 0")
    if len(winners) != 1:
        raise AssertionError("cannot go on without one winner")
    owner, session = winners[0]
    named = set()
    for r in results:
        if r[4] != "-":
            named.update(r[4].split(","))
    check(failures, named == {session},
          f"round {round_no}: busy answers named {sorted(named)}, expected only {session}")
    # One service lease and one tuner lease in the whole store, both the
    # winner's, as every process reads them.
    expected = sorted([f"service:{SERVICE}={session}", f"tuner:0={session}"])
    for node in nodes:
        leases = node.expect_after("leases", "leases")
        check(failures, int(leases[0]) == 2 and sorted(leases[1:]) == expected,
              f"round {round_no}: {node.owner} reads leases {leases}, expected {expected}")
    return owner, session


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    redis_server, redis_node = sys.argv[1], sys.argv[2]
    if not shutil.which(redis_server):
        print("SKIP: redis-server not found")
        return 77
    failures = []
    server = RedisServer(redis_server)
    gate_r, gate_w = os.pipe()
    nodes = []
    started = time.monotonic()
    try:
        uri = f"redis://127.0.0.1:{server.port}/0?prefix=xg2g:mp:{os.getpid()}:&pool=16"
        nodes = [Node(redis_node, uri, f"daemon-{i}", gate_r) for i in range(3)]
        os.close(gate_r)
        gate_r = -1
        tunes = [0, 0, 0]
        last_token = 0
        for round_no in range(ROUNDS):
            owner, session = race(nodes, gate_w, failures, round_no)
            # Only the owner's host tunes (and, from its start callback,
            # reports ready).
            for i, node in enumerate(nodes):
                t, _s, token = node.host("poll")
                if i == owner:
                    check(failures, t == tunes[i] + 1,
                          f"round {round_no}: the owner tuned {t - tunes[i]} times, expected 1")
                    check(failures, token > last_token,
                          f"round {round_no}: fencing token {token} not above {last_token}")
                    last_token = token
                else:
                    check(failures, t == tunes[i],
                          f"round {round_no}: daemon-{i} tuned without holding the slot")
                tunes[i] = t
            other = nodes[(owner + 1 + round_no % 2) % 3]
            observer = nodes[(owner + 2 - round_no % 2) % 3]
            state = settled(observer, f"state {session}", "state READY R_NONE")
            check(failures, state == "state READY R_NONE",
                  f"round {round_no}: the winner's session reads '{state}' elsewhere")
            # A stop through another process; the owner sees it on its next
            # heartbeat (10 s of its manual clock) and tears down.
            stopped = other.ask(f"stop {session}")
            check(failures, stopped == "stopped STOPPING",
                  f"round {round_no}: stop through {other.owner} answered '{stopped}'")
            _t, stops_before, _tok = nodes[owner].host("poll")
            _t, stops_after, _tok = nodes[owner].host("advance 10000")
            check(failures, stops_after == stops_before + 1,
                  f"round {round_no}: the owner's host got {stops_after - stops_before} stops")
            state = settled(observer, f"state {session}", "state STOPPED R_CLIENT_STOP")
            check(failures, state == "state STOPPED R_CLIENT_STOP",
                  f"round {round_no}: after the owner's heartbeat the session reads '{state}'")
            leases = observer.expect_after("leases", "leases")
            check(failures, leases == ["0"],
                  f"round {round_no}: leases left after the stop: {leases}")
    except AssertionError as e:
        failures.append(str(e))
        print("FAIL:", e, flush=True)
    finally:
        for node in nodes:
            node.close()
        if gate_r >= 0:
            os.close(gate_r)
        os.close(gate_w)
        server.close()
    print(f"{ROUNDS} rounds of {THREADS} racing starts over 3 processes in "
          f"{time.monotonic() - started:.1f} s", flush=True)
    if failures:
        print(f"{len(failures)} check(s) failed")
        return 1
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
