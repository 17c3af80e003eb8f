"""The detached supervisor: one process per run that owns a ``claude -p`` job.

Started by the launcher in a new session with stdin from /dev/null and its
stdout/stderr on the run's log, it:

1. stores its own PID and start time in the record;
2. starts the CLI (argument vector, never a shell) in its own process group,
   in the agent's cwd, with ``CLAUDECODE``/``CLAUDE_CODE_ENTRYPOINT`` stripped;
3. appends every stream-json line to ``outputs/<agent>/<run_id>.jsonl`` as it
   arrives and keeps the record's progress (turns, last tool, last activity);
4. samples the RSS of the CLI's whole process tree once a second;
5. at the end writes the result text, the session ID and the final record.

SIGTERM, SIGINT or SIGHUP to the supervisor stop the run: SIGTERM to the CLI's
process group, a grace period, then SIGKILL; the status becomes ``killed``.

Run as ``python -m claude_orchestrator.supervisor --root ROOT NAME RUN_ID``.
"""

from __future__ import annotations

import argparse
import os
import select
import signal
import subprocess
import sys
import time

import psutil

from . import procs
from .claude_cli import ClaudeOptions, build_argv, cli_env
from .paths import StatePaths
from .record import RESULT_PREVIEW_CHARS, RecordStore, StatusRecord, utc_now, write_atomic
from .states import State
from .stream import RunProgress, classify, parse_line

#: Seconds between SIGTERM and SIGKILL when a run is stopped.
KILL_GRACE_S = 10.0
#: Seconds between RSS samples of the CLI's process tree.
SAMPLE_EVERY_S = 1.0
#: Minimum seconds between progress writes of the record (state changes are written at once).
PROGRESS_EVERY_S = 0.25
#: After the CLI exits, seconds to keep reading a pipe a leftover process still holds.
DRAIN_AFTER_EXIT_S = 3.0


class Supervisor:
    """Owns one run of one agent.

    Args:
        paths: the state root.
        name: the agent.
        run_id: the run this supervisor was started for; it touches the
            record only while the record still belongs to this run.
    """

    def __init__(self, paths: StatePaths, name: str, run_id: str) -> None:
        self.paths = paths
        self.store = RecordStore(paths)
        self.name = name
        self.run_id = run_id
        self.stop_signal: int | None = None
        self.log_file = open(paths.log(name, run_id), "a", encoding="utf-8", buffering=1)

    # -- helpers -------------------------------------------------------------

    def log(self, message: str) -> None:
        """Append one timestamped line to the run's log."""
        self.log_file.write(f"{utc_now()} supervisor[{os.getpid()}]: {message}\n")

    def _update(self, mutate) -> StatusRecord | None:
        """Apply ``mutate(record)`` under the lock if the record is still this run's."""

        def guarded(cur: StatusRecord | None) -> StatusRecord | None:
            if cur is None or cur.run_id != self.run_id:
                return None
            return mutate(cur)

        return self.store.update(self.name, guarded)

    def _on_signal(self, signum: int, _frame) -> None:
        self.stop_signal = signum

    # -- the run -------------------------------------------------------------

    def run(self) -> int:
        """Run the job to its end; returns 0 (the outcome is in the record)."""
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._on_signal)
        me = psutil.Process()
        me_started = me.create_time()

        def claim(rec: StatusRecord) -> StatusRecord | None:
            if rec.state is not State.STARTING:
                return None
            rec.supervisor_pid, rec.supervisor_started = me.pid, me_started
            return rec

        rec = self._update(claim)
        if rec is None or rec.run_id != self.run_id or rec.state is not State.STARTING:
            self.log("the record no longer belongs to this run or is not starting; nothing to do")
            return 0
        if self.stop_signal:
            self._finish_without_cli(State.KILLED, f"stopped by signal {self.stop_signal} before the CLI started", None)
            return 0

        options = ClaudeOptions.from_dict(rec.options.get("claude", {}))
        argv = build_argv(
            rec.options["claude_bin"],
            options,
            rec.task,
            rec.session_id,
            resume_id=rec.resumed_from,
            fork=bool(rec.options.get("fork")),
        )
        shown = argv[:-1] + [f"<task: {len(rec.task)} chars>"]
        self.log(f"starting the CLI in {rec.cwd}: {shown}")
        transcript = open(self.paths.transcript(self.name, self.run_id), "ab")
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=self.log_file,
                cwd=rec.cwd,
                env=cli_env(),
                start_new_session=True,  # its own session and process group
                close_fds=True,
            )
        except OSError as exc:
            code = 127 if isinstance(exc, FileNotFoundError) and not os.path.exists(argv[0]) else 126
            self._finish_without_cli(State.FAILED, f"could not start the CLI: {exc}", code)
            return 0

        pid_started = procs.start_time(proc.pid)

        def running(rec: StatusRecord) -> StatusRecord:
            if rec.state is State.STARTING:
                rec.transition(State.RUNNING, started=utc_now())
            rec.pid, rec.pid_started = proc.pid, pid_started
            rec.last_activity = utc_now()
            return rec

        self._update(running)
        # The session ID is ours (--session-id) or the resumed one, so it is known now.
        write_atomic(self.paths.session(self.name), rec.session_id + "\n")
        self.log(f"CLI started, pid {proc.pid}")

        progress = RunProgress()
        peak_mb = self._pump(proc, transcript, progress)
        transcript.close()
        exit_code = proc.wait()
        self.log(f"CLI exited with status {exit_code}; {progress.events} events")
        self._finish(progress, exit_code, peak_mb, rec.session_id)
        return 0

    def _pump(self, proc: subprocess.Popen, transcript, progress: RunProgress) -> float:
        """Copy the CLI's stdout to the transcript line by line until it ends.

        Also samples tree RSS, forwards a stop request and throttles progress
        writes.  Returns the peak tree RSS in MiB.
        """
        fd = proc.stdout.fileno()
        cli = psutil.Process(proc.pid)
        buf = b""
        peak = 0.0
        next_sample = 0.0
        last_write = 0.0
        dirty = False
        term_sent_at: float | None = None
        exited_at: float | None = None
        while True:
            ready, _, _ = select.select([fd], [], [], 0.25)
            now = time.monotonic()
            if ready:
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    break
                buf += chunk
                *lines, buf = buf.split(b"\n")
                if lines:
                    transcript.write(b"".join(line + b"\n" for line in lines))
                    transcript.flush()
                    for line in lines:
                        event = parse_line(line)
                        if event is not None and progress.feed(event):
                            dirty = True
            if now >= next_sample:
                peak = max(peak, procs.tree_rss_mb(cli))
                next_sample = now + SAMPLE_EVERY_S
            if dirty and now - last_write >= PROGRESS_EVERY_S:
                self._write_progress(progress, peak)
                last_write, dirty = now, False
            if self.stop_signal and term_sent_at is None:
                self.log(f"stop requested (signal {self.stop_signal}): SIGTERM to process group {proc.pid}")
                procs.signal_group(proc.pid, signal.SIGTERM)
                term_sent_at = now
            if term_sent_at is not None and now - term_sent_at > KILL_GRACE_S and proc.poll() is None:
                self.log("grace period over: SIGKILL to the process group")
                procs.signal_group(proc.pid, signal.SIGKILL)
                term_sent_at = float("inf")
            if proc.poll() is not None:
                exited_at = exited_at or now
                if now - exited_at > DRAIN_AFTER_EXIT_S:
                    self.log("the CLI exited but its stdout is still held open by another process; stop reading")
                    break
        if buf:
            transcript.write(buf + b"\n")
            event = parse_line(buf)
            if event is not None:
                progress.feed(event)
        if self.stop_signal and term_sent_at is None:
            procs.signal_group(proc.pid, signal.SIGTERM)
        return peak

    def _write_progress(self, progress: RunProgress, peak: float) -> None:
        def mutate(rec: StatusRecord) -> StatusRecord | None:
            if not rec.state.is_active:
                return None
            rec.num_turns = progress.num_turns
            rec.session_id = progress.session_id or rec.session_id
            rec.model = progress.model or rec.model
            if progress.last_tool:
                rec.extra["last_tool"] = progress.last_tool
            rec.peak_rss_mb = round(peak, 1) if peak else rec.peak_rss_mb
            rec.last_activity = utc_now()
            return rec

        self._update(mutate)

    def _finish(self, progress: RunProgress, exit_code: int, peak: float, rec_session: str | None) -> None:
        """Classify the run and write its result, session and final record."""
        result = progress.result
        if self.stop_signal:
            state, error = State.KILLED, f"stopped by request (signal {self.stop_signal})"
        else:
            state, error = classify(result, exit_code)
        text = result.get("result") if result and isinstance(result.get("result"), str) else None
        output = text if text is not None else f"[{state}] {error}\n"
        write_atomic(self.paths.latest_output(self.name), output)
        if progress.session_id and progress.session_id != rec_session:
            write_atomic(self.paths.session(self.name), progress.session_id + "\n")

        def final(rec: StatusRecord) -> StatusRecord | None:
            if rec.state.is_terminal:
                return None
            fields = dict(
                exit_code=exit_code,
                error=error,
                num_turns=progress.num_turns,
                session_id=progress.session_id or rec.session_id,
                model=progress.model or rec.model,
                peak_rss_mb=round(peak, 1) if peak else rec.peak_rss_mb,
                last_activity=utc_now(),
            )
            if result is not None:
                fields.update(
                    is_error=bool(result.get("is_error")),
                    cost_usd=result.get("total_cost_usd"),
                    usage=result.get("usage"),
                    result=(text or "")[:RESULT_PREVIEW_CHARS] if text is not None else None,
                )
                if result.get("api_error_status") is not None:
                    rec.extra["api_error_status"] = result.get("api_error_status")
            else:
                fields["is_error"] = True
            rec.transition(state, **fields)
            return rec

        rec = self._update(final)
        self.log(f"run ended: {rec.status if rec else state}{' (' + error + ')' if error else ''}")

    def _finish_without_cli(self, state: State, error: str, exit_code: int | None) -> None:
        """End a run whose CLI never started."""
        write_atomic(self.paths.latest_output(self.name), f"[{state}] {error}\n")

        def final(rec: StatusRecord) -> StatusRecord | None:
            if rec.state.is_terminal:
                return None
            rec.transition(state, error=error, exit_code=exit_code, is_error=True, last_activity=utc_now())
            return rec

        self._update(final)
        self.log(f"run ended: {state} ({error})")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the supervisor process (not meant to be run by hand)."""
    parser = argparse.ArgumentParser(prog="python -m claude_orchestrator.supervisor")
    parser.add_argument("--root", required=True, help="the state root")
    parser.add_argument("name")
    parser.add_argument("run_id")
    args = parser.parse_args(argv)
    paths = StatePaths(args.root)
    sup = Supervisor(paths, args.name, args.run_id)
    try:
        return sup.run()
    except Exception as exc:  # the record must not stay "running" on a bug
        import traceback

        sup.log(f"supervisor crashed: {exc!r}\n{traceback.format_exc()}")
        try:
            sup._finish_without_cli(State.FAILED, f"supervisor crashed: {exc!r}; see {sup.paths.log(args.name, args.run_id)}", None)
        except Exception:
            pass
        return 1


if __name__ == "__main__":
    sys.exit(main())
