"""The detached supervisor: one process per run that owns a ``claude -p`` job.

Started by the launcher in a new session with stdin from /dev/null and its
stdout/stderr on the run's log, it:

1. holds the agent's life lock (``status/<agent>.supervisor.lock``), handed
   over by the launcher as an open descriptor, until it exits: that lock is
   how every other script knows it is alive;
2. stops what a lost earlier run of the agent left running (the record's
   ``orphans``, each checked by its start time);
3. if the run is ``waiting`` or ``queued``, waits for its dependencies, then
   for its turn (FIFO) and a free slot;
4. starts the CLI (argument vector, never a shell) in its own process group,
   in the agent's cwd, with ``CLAUDECODE``/``CLAUDE_CODE_ENTRYPOINT`` stripped,
   the task file (``outputs/<agent>/<run_id>.task``) on its stdin;
5. appends the CLI's stdout to ``outputs/<agent>/<run_id>.jsonl`` as it
   arrives and keeps the record's progress (turns, last tool, last activity);
   the stream is untrusted: a line that is not a JSON object, or an event of
   an odd shape, is logged and skipped, and a very long line is never held whole;
6. samples the RSS of the whole process tree once a second (it is a child
   subreaper, so even descendants that called setsid and lost their parent
   stay in its tree), warns at 50 % and 80 % of the memory limit and stops
   the tree at 100 %; stops it at the timeout; stops a CLI that lingers after
   its result event;
7. retries a run that failed with a retryable API error, with backoff;
8. at the end stops whatever is left of the tree and writes the result text,
   the session ID and the final record.

A full or read-only state root never costs the run its supervision: a failed
transcript write drops those bytes (counted, logged) while the events are
still read; a record change that cannot be written is kept and written with
the next write that succeeds; the final writes are retried with backoff for
up to an hour, the life lock held, so that the record is right once space
returns.  Meanwhile the timeout, the memory limit and a stop request are
enforced as ever.

Stopping a tree: SIGTERM to the CLI's process group and to every descendant,
the grace period, then SIGKILL.  SIGTERM, SIGINT or SIGHUP to the supervisor
stop the run that way; the status becomes ``killed``.  An unexpected error in
the supervisor itself stops the tree the same way, records the run ``failed``
("supervisor internal error: ...") and exits with status 70.

The parts, each in its own module:

- :mod:`.core`: :class:`.core.Supervisor`, the order of a run's life;
- :mod:`.tree`: the process tree (descendants, reaping, RSS and its warnings, signals, orphans);
- :mod:`.attempt`: one CLI process (spawn, pump, the ``tick`` that decides a stop, the judgement);
- :mod:`.events`, :mod:`.transcript_file`: the CLI's stdout, to events and to the transcript file;
- :mod:`.waits`: the waits for dependencies and for a slot (with :mod:`..usecases.scheduling`);
- :mod:`.writer`: the record and file writes that may fail, kept and retried;
- :mod:`.report`: what goes into the record while the CLI runs and at the end;
- :mod:`.hooks`: the ``--on-complete`` hook;
- :mod:`.entry`: :func:`.entry.main`, run as ``python -m claude_orchestrator.supervisor
  --root ROOT [--alive-fd N] [--slot-fd N] [--time-limit-signal SIG] [--ref-from-env VAR] NAME RUN_ID``.

Empty of imports, as every subpackage's ``__init__``: ``python -m`` runs :mod:`.__main__`.
"""
