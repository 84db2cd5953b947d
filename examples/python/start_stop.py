#!/usr/bin/env python3
"""Starts one session and stops it again, through the xg2g Python package.

Usage: start_stop.py [STORE_URI] [--service-ref REF] [--profile NAME] [--timeout SECONDS]

STORE_URI defaults to "memory:" (also "lmdb:DIR", "redis://..."). The
library is found through XG2G_LIBRARY, else the system's library path.

The host pipeline here is a few lines of Python: its start callback reports
the session ready at once and its stop callback reports it stopped, the way a
real host reports once its stream runs or its process has ended. The engine
calls them on its own thread; the main thread waits for each report on a
threading.Event.

Output, one line per step:
    started <id> service=<ref> state=STARTING
    session <id> state=READY slot=<n>
    stopping <id> state=STOPPING
    stopped <id> state=STOPPED
The engine's audit events (session_start, session_stop) go to stderr as
JSON lines, the library's default audit sink.
Exit status: 0 done, 1 a library error or a report that did not come in time
(the message goes to stderr).
"""
from __future__ import annotations

import argparse
import sys
import threading
from typing import List, Optional

import xg2g

DEFAULT_SERVICE_REF = "1:0:19:2B66:3F3:1:C00000:0:0:0:"


class Pipeline:
    """A host pipeline that reports back at once; set() an Event per report."""

    def __init__(self) -> None:
        self.engine: Optional[xg2g.Engine] = None
        self.ready = threading.Event()
        self.stopped = threading.Event()

    def tune(self, cmd: xg2g.PipelineCommand) -> None:
        """Tunes the receiver to cmd.service_ref (nothing to do here)."""

    def start(self, cmd: xg2g.PipelineCommand) -> None:
        """Starts the stream; here it is running at once."""
        assert self.engine is not None
        self.engine.report_ready(cmd.session_id, cmd.fencing_token)
        self.ready.set()

    def stop(self, cmd: xg2g.PipelineCommand) -> None:
        """Tears the stream down; here it is gone at once."""
        assert self.engine is not None
        self.engine.report_stopped(cmd.session_id, cmd.fencing_token)
        self.stopped.set()


def run(uri: str, service_ref: str, profile: Optional[str], timeout: float) -> int:
    """Opens the engine, starts a session, stops it; the exit status."""
    pipeline = Pipeline()
    with xg2g.Store(uri) as store, xg2g.Config(tuner_slots="0-3") as config:
        config.set_pipeline(pipeline)
        with xg2g.Engine(config, store) as engine:
            pipeline.engine = engine
            started = engine.start(service_ref, profile=profile)
            print(f"started {started.session_id} service={service_ref} state={started.state.name}")
            if not pipeline.ready.wait(timeout):
                print(f"error: session {started.session_id} not ready within {timeout} s",
                      file=sys.stderr)
                return 1
            with store.get(started.session_id) as session:
                print(f"session {session.id} state={session.state.name} "
                      f"slot={session.context('tuner_slot')}")
            stopping = engine.stop(started.session_id)
            print(f"stopping {stopping.session_id} state={stopping.state.name}")
            if not pipeline.stopped.wait(timeout):
                print(f"error: session {started.session_id} not stopped within {timeout} s",
                      file=sys.stderr)
                return 1
            with store.get(started.session_id) as session:
                print(f"stopped {session.id} state={session.state.name}")
            pipeline.engine = None
        for error in config.callback_errors:
            print(f"error in a pipeline callback: {error!r}", file=sys.stderr)
        return 1 if config.callback_errors else 0


def main(argv: Optional[List[str]] = None) -> int:
    """Parses the command line and runs; the exit status."""
    parser = argparse.ArgumentParser(description="Start one session and stop it again.")
    parser.add_argument("uri", nargs="?", default="memory:", help='store URI (default "memory:")')
    parser.add_argument("--service-ref", default=DEFAULT_SERVICE_REF, help="service to start")
    parser.add_argument("--profile", default=None, help="transcoding profile (default: default)")
    parser.add_argument("--timeout", type=float, default=10.0,
                        help="seconds to wait for each report (default 10)")
    args = parser.parse_args(argv)
    try:
        return run(args.uri, args.service_ref, args.profile, args.timeout)
    except xg2g.Error as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
