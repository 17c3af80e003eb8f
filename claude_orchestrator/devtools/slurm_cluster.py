"""A private one-node Slurm cluster in a folder: the real Slurm daemons, for tests and trials.

The Slurm executor submits each agent as a batch job; this module gives it a
cluster to submit to on any one machine with Slurm's packages installed (no
``/etc/slurm``, no system services): the tests' ``slurm_cluster`` fixture,
``make bench`` and users trying the executor start one here.  It is to Slurm
what fake_api.py is to the Messages API, except that the daemons are real.

Everything lives under one folder::

    FOLDER/etc/slurm.conf   written by start(); every daemon and client finds it through SLURM_CONF
    FOLDER/state/           slurmctld's StateSaveLocation (jobs survive a stop and a start)
    FOLDER/spool/           slurmd's SlurmdSpoolDir
    FOLDER/run/             the daemons' PID files
    FOLDER/log/             slurmctld.log, slurmd.log, jobcomp.txt (``sacct -c``), and
                            slurmctld.out, slurmd.out: each daemon's stderr since its last start

The configuration is the one verified in SLURM.md (Slurm 22.05, Debian 12):
``auth/none`` (no munged), no cgroups (``proctrack/linuxproc``, ``--mem``
enforced by ``JobAcctGatherParams=OverMemoryKill``, which polls RSS every
second), ``select/cons_tres`` with ``CR_Core_Memory`` and ``DefMemPerNode=512``,
one partition ``debug`` with ``OverSubscribe=FORCE:N`` (agents mostly wait on
the API, so N jobs share a CPU), ``DependencyParameters=kill_invalid_depend``
(else a job whose ``afterok`` parent failed pends for ever), ``MinJobAge=300``
(``scontrol show job ID`` answers for 5 minutes after the end), ``KillWait=5``
(SIGKILL 5 s after a cancel's SIGTERM), ``batch_sched_delay=0`` (a job starts within about
1 s of its submission, rather than 3 s; the first job after a start still waits up to 3 s) and a
license count (``agents:4``).
Both daemons listen on 127.0.0.1 only (``CommunicationParameters=
NoCtldInAddrAny,NoInAddrAny``), on two free ports PORT and PORT+1, so several
clusters (one per pytest-xdist worker) run side by side.

Security: ``auth/none`` believes whatever user a client says it is.  While a
cluster runs, any local user can submit jobs that run as any user, root
included when the daemons run as root.  Use it on a single-user machine, a
container or a CI runner, never on a shared host.

Usage::

    with SlurmCluster(tmp / "slurm") as cluster:        # start() ... stop()
        env = dict(os.environ, **cluster.env)           # SLURM_CONF for sbatch, squeue, ...
        job = cluster.run("sbatch", "--parsable", "--wrap", "echo hi").stdout.strip()

or from a shell: ``python -m claude_orchestrator.devtools.slurm_cluster start DIR``
(prints ``export SLURM_CONF=...``) and ``... stop DIR``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil

#: What to do when Slurm is missing (one sentence).
MISSING_HINT = "install Slurm with `sudo apt-get install slurmctld slurmd slurm-client munge` (Debian, Ubuntu) or `make install-slurm`"

#: The programs a cluster needs: the two daemons and the client commands it (and the Slurm executor) runs.
COMMANDS = ("slurmctld", "slurmd", "sbatch", "squeue", "scancel", "scontrol", "sinfo")

#: Where Debian puts the daemons; often not on a user's PATH.
SBIN_DIRS = ("/usr/sbin", "/usr/local/sbin")

#: The processes of a cluster, by name (psutil's name(), from /proc/PID/comm): slurmscriptd is
#: slurmctld's helper (a fork of it), slurmstepd runs each job step (slurmd starts it).
DAEMON_NAMES = frozenset({"slurmctld", "slurmscriptd", "slurmd", "slurmstepd"})

#: The cluster's only partition (the default one) and node.
PARTITION = "debug"
NODE = "localhost"

#: Seconds a client command may take.  Clients retry a controller that does not answer for about
#: 9 s before they fail (measured with sinfo), so every call is bounded.
CLIENT_TIMEOUT_S = 10.0

#: Exit statuses of the CLI: 2 bad usage (argparse's), 69 Slurm missing or not starting (sysexits.h EX_UNAVAILABLE).
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 69

_POLL_S = 0.05  # how often start() and stop() look again while they wait
_TAIL_LINES = 20  # lines of each daemon's stderr in a ClusterError
_PORT_ATTEMPTS = 3  # start() tries again with new ports if another program took one meanwhile
_LICENSES_RE = re.compile(r"[\w.@-]+(:\d+)?(,[\w.@-]+(:\d+)?)*")  # name[:count][,name[:count]...]


class ClusterError(RuntimeError):
    """The cluster did not start or stop, or a client command did not answer.

    ``str(error)`` is the one-line ``summary``, then the tail of the daemons' logs (if any).

    Attributes:
        summary: what went wrong, one line.
        log_tail: the last lines of the daemons' stderr (each line prefixed by its file's name), or "".
    """

    def __init__(self, summary: str, log_tail: str = "") -> None:
        super().__init__(summary + ("\n" + log_tail if log_tail else ""))
        self.summary = summary
        self.log_tail = log_tail


def _search_path() -> str:
    """PATH with the sbin folders after it (where Debian installs the daemons)."""
    path = os.environ.get("PATH", os.defpath)
    return os.pathsep.join([path, *SBIN_DIRS])


def which(command: str) -> str | None:
    """The path of a Slurm program: searched on PATH, then in /usr/sbin and /usr/local/sbin; None if absent."""
    return shutil.which(command, path=_search_path())


def missing() -> str | None:
    """None if Slurm's daemons and client commands (:data:`COMMANDS`) are installed, else a one-line message.

    The message names the programs not found (on PATH, /usr/sbin, /usr/local/sbin) and ends with
    :data:`MISSING_HINT`.
    """
    absent = [c for c in COMMANDS if which(c) is None]
    if not absent:
        return None
    return f"Slurm is not installed ({', '.join(absent)} not found on PATH or in {', '.join(SBIN_DIRS)}): {MISSING_HINT}"


def free_port_pair(host: str = "127.0.0.1", attempts: int = 50) -> int:
    """A port PORT such that PORT and PORT+1 are both free on ``host`` now (slurmctld's and slurmd's).

    The kernel picks PORT (bind to port 0); PORT+1 is checked by binding it too.  Another program may
    still take either before the daemons bind: :meth:`SlurmCluster.start` then tries new ports.

    Raises:
        ClusterError: no such pair in ``attempts`` tries.
    """
    for _ in range(attempts):
        with socket.socket() as first:
            first.bind((host, 0))
            port = first.getsockname()[1]
            if port >= 65535:
                continue
            with socket.socket() as second:
                try:
                    second.bind((host, port + 1))
                except OSError:
                    continue
            return port
    raise ClusterError(f"no two consecutive free ports on {host} in {attempts} tries")


def _listens(pid: int, port: int) -> bool:
    """Whether process ``pid`` listens on TCP ``port`` (from /proc, so the daemon sees no probe connection)."""
    try:
        proc = psutil.Process(pid)
        conns = proc.net_connections("tcp") if hasattr(proc, "net_connections") else proc.connections("tcp")  # psutil < 6
    except psutil.Error:
        return False
    return any(c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port for c in conns)


def _conf_path_value(path: Path) -> str:
    """``path`` as a slurm.conf value: double-quoted if it holds a space or a tab (Slurm's parser takes quotes).

    Raises:
        ValueError: the path holds a ``#`` (slurm.conf cuts a comment there, quotes or not), a double
            quote or a line break.
    """
    text = str(path)
    if any(c in text for c in '#"\n\r'):
        raise ValueError(f"a Slurm cluster's folder cannot hold '#', a double quote or a line break (slurm.conf cannot name it): {text!r}")
    return f'"{text}"' if any(c in text for c in " \t") else text


def _last_fatal(log_tail: str) -> str:
    """The last ``fatal:`` line of a log tail (Slurm's reason for exiting), without its prefixes; "" if none."""
    for line in reversed(log_tail.splitlines()):
        _, sep, reason = line.partition("fatal: ")
        if sep:
            return reason.strip()
    return ""


def _alive(proc: psutil.Process) -> bool:
    """Whether ``proc`` still runs (a zombie, waiting for its parent to reap it, has ended)."""
    try:
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


class SlurmCluster:
    """One slurmctld and one slurmd (node ``localhost``, partition ``debug``) configured under ``folder``.

    Args:
        folder: where everything lives (created if missing); made absolute and resolved, so a
            cluster started from one working directory can be stopped from another.
        cpus: the node's CPUs as Slurm counts them (not checked against the machine).
        oversubscribe: jobs that may share one CPU (``OverSubscribe=FORCE:N``); at most
            ``cpus * oversubscribe`` jobs run at once.
        licenses: the ``Licenses=`` value (``name:count[,name:count]``), "" for none; a job asks
            for one with ``sbatch --licenses=agents:1``.

    Attributes:
        folder, conf_path (FOLDER/etc/slurm.conf), log_dir (FOLDER/log): paths.
        port: slurmctld's port (slurmd's is ``port + 1``) once :meth:`start` wrote the configuration, else None.

    Raises:
        ValueError: ``cpus`` or ``oversubscribe`` below 1, ``licenses`` not of that form, or a folder
            whose path slurm.conf cannot hold (a ``#``, a double quote, a line break).
    """

    def __init__(self, folder: Path, *, cpus: int = 2, oversubscribe: int = 50, licenses: str = "agents:4") -> None:
        if cpus < 1 or oversubscribe < 1:
            raise ValueError(f"cpus and oversubscribe must be at least 1 (got {cpus}, {oversubscribe})")
        if licenses and not _LICENSES_RE.fullmatch(licenses):
            raise ValueError(f"licenses must read name:count[,name:count...] (got {licenses!r})")
        self.folder = Path(folder).resolve()
        _conf_path_value(self.folder)  # a folder slurm.conf cannot name fails here, not at start()
        self.cpus = cpus
        self.oversubscribe = oversubscribe
        self.licenses = licenses
        self.conf_path = self.folder / "etc" / "slurm.conf"
        self.log_dir = self.folder / "log"
        self.port: int | None = None
        self._children: list[subprocess.Popen] = []  # the daemons this object started (reaped by stop())

    def __repr__(self) -> str:
        return f"SlurmCluster({str(self.folder)!r}, port={self.port})"

    def __enter__(self) -> SlurmCluster:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def env(self) -> dict[str, str]:
        """``{"SLURM_CONF": str(conf_path)}``: add it to the environment of any Slurm command for this cluster."""
        return {"SLURM_CONF": str(self.conf_path)}

    def _full_env(self) -> dict[str, str]:
        return {**os.environ, "PATH": _search_path(), **self.env}

    # -- configuration -------------------------------------------------------------------------

    def config_text(self, port: int) -> str:
        """The slurm.conf text for slurmctld on ``port`` and slurmd on ``port + 1`` (see the module's docstring).

        The daemons run as the current user (``SlurmUser``, ``SlurmdUser``): root on CI and in
        containers, where jobs may run as any user; otherwise slurmd cannot switch users and only the
        current user's jobs can start (verified as ``nobody``).
        ``RealMemory`` is the machine's memory, but at least ``DefMemPerNode * cpus * oversubscribe``,
        so that jobs without ``--mem`` are limited by CPUs, not by memory.
        """
        user = pwd.getpwuid(os.geteuid()).pw_name
        default_mem_mb = 512
        memory_mb = max(psutil.virtual_memory().total // 2**20, default_mem_mb * self.cpus * self.oversubscribe)
        d, q = self.folder, _conf_path_value
        lines = [
            "# Written by claude_orchestrator.devtools.slurm_cluster; rewritten on every start.",
            "ClusterName=orchestrator",
            f"SlurmctldHost={NODE}(127.0.0.1)",
            f"SlurmctldPort={port}",
            f"SlurmdPort={port + 1}",
            "CommunicationParameters=NoCtldInAddrAny,NoInAddrAny",  # listen on 127.0.0.1, not on every address
            f"SlurmUser={user}",
            f"SlurmdUser={user}",
            "AuthType=auth/none",  # no munged; see the module's docstring ("Security")
            "CredType=cred/none",
            f"StateSaveLocation={q(d / 'state')}",
            f"SlurmdSpoolDir={q(d / 'spool')}",
            f"SlurmctldPidFile={q(d / 'run' / 'slurmctld.pid')}",
            f"SlurmdPidFile={q(d / 'run' / 'slurmd.pid')}",
            f"SlurmctldLogFile={q(self.log_dir / 'slurmctld.log')}",
            f"SlurmdLogFile={q(self.log_dir / 'slurmd.log')}",
            "MailProg=/bin/true",  # no mail (--mail-type); slurmctld logs an error when /bin/mail is missing
            "ProctrackType=proctrack/linuxproc",  # no cgroups
            "TaskPlugin=task/none",
            "JobAcctGatherType=jobacct_gather/linux",
            "JobAcctGatherFrequency=task=1",
            "JobAcctGatherParams=OverMemoryKill",  # --mem enforced by polling RSS every second
            "MpiDefault=none",
            "SwitchType=switch/none",
            "SchedulerType=sched/backfill",
            # Start a batch job at the next scheduler pass (about 1 s), not up to 3 s later (the default).
            # slurmctld reads this at its first scheduling pass: the first job after a start still waits up to 3 s.
            "SchedulerParameters=batch_sched_delay=0",
            "DependencyParameters=kill_invalid_depend",  # 22.05 ignores it under SchedulerParameters
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core_Memory",  # cons_tres refuses CR_Memory alone
            f"DefMemPerNode={default_mem_mb}",  # else a job reserves the whole node's memory
            *([f"Licenses={self.licenses}"] if self.licenses else []),
            "AccountingStorageType=accounting_storage/none",
            "JobCompType=jobcomp/filetxt",
            f"JobCompLoc={q(self.log_dir / 'jobcomp.txt')}",
            "ReturnToService=2",
            "MinJobAge=300",
            "KillWait=5",
            "InactiveLimit=0",
            "SlurmdParameters=config_overrides",  # the node is what this file says, whatever the machine has
            f"NodeName={NODE} NodeAddr=127.0.0.1 CPUs={self.cpus} RealMemory={memory_mb} State=UNKNOWN",
            f"PartitionName={PARTITION} Nodes={NODE} Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:{self.oversubscribe}",
        ]
        return "\n".join(lines) + "\n"

    def _write_config(self, port: int) -> None:
        for sub in ("etc", "state", "spool", "run", "log"):
            (self.folder / sub).mkdir(parents=True, exist_ok=True)
        tmp = self.conf_path.with_name(self.conf_path.name + ".tmp")
        tmp.write_text(self.config_text(port))
        os.replace(tmp, self.conf_path)
        self.port = port

    # -- client commands -----------------------------------------------------------------------

    def run(self, command: str, *args: str, timeout: float = CLIENT_TIMEOUT_S, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a Slurm client command (``sbatch``, ``squeue``, ...) against this cluster and return its result.

        Args:
            command: the program's name, found as :func:`which` finds it.
            args: its arguments.
            timeout: seconds before it is killed (clients wait about 9 s for a controller that is down).
            check: raise if it exits with a non-zero status.

        Returns:
            The completed process, stdout and stderr as text.

        Raises:
            ClusterError: the program is missing, did not end within ``timeout``, or (``check``) failed;
                the summary carries its stderr.
        """
        exe = which(command)
        if exe is None:
            raise ClusterError(f"{command} not found: {MISSING_HINT}")
        try:
            done = subprocess.run(
                [exe, *args],
                env=self._full_env(),
                capture_output=True,
                text=True,
                timeout=timeout,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired:
            raise ClusterError(f"{command} did not answer within {timeout:g} s (is slurmctld of {self.folder} running?)") from None
        if check and done.returncode != 0:
            err = " ".join(done.stderr.split()) or f"exit status {done.returncode}"
            raise ClusterError(f"{shlex.join([command, *args])} failed: {err}")
        return done

    # -- processes -----------------------------------------------------------------------------

    def processes(self) -> list[psutil.Process]:
        """This cluster's live processes: slurmctld, slurmscriptd, slurmd, slurmstepd (zombies left out).

        A process is this cluster's when its name is one of :data:`DAEMON_NAMES` and either its
        environment's ``SLURM_CONF`` is :attr:`conf_path` (start() gives it to both daemons) or its
        working directory is :attr:`log_dir` (where start() runs both daemons).  The second test finds
        slurmscriptd and slurmstepd: they inherit slurmctld's and slurmd's working directory, but rewrite
        their process title over their environment, which /proc then shows as zeros.  Reading another
        user's environment and working directory needs root: a normal user sees only their own
        processes, which are all a normal user's cluster has.
        """
        conf, log_dir = str(self.conf_path), str(self.log_dir)
        found = []
        for proc in psutil.process_iter(["name"]):
            if proc.info["name"] not in DAEMON_NAMES:
                continue
            try:
                if proc.status() == psutil.STATUS_ZOMBIE:
                    continue
                if proc.cwd() == log_dir or proc.environ().get("SLURM_CONF") == conf:
                    found.append(proc)
            except psutil.Error:
                continue
        return found

    def running(self) -> bool:
        """Whether this cluster's slurmctld or slurmd runs (started by this object or by another process)."""
        return any(p.info["name"] in ("slurmctld", "slurmd") for p in self.processes())

    def _spawn(self, name: str, *args: str) -> subprocess.Popen:
        exe = which(name)
        if exe is None:
            raise ClusterError(missing() or f"{name} not found: {MISSING_HINT}")
        # -D: in the foreground (as under systemd), so that this object holds the process and reaps it;
        # it then copies its log to stderr, which also holds what it says before it opens its log file.
        with open(self.log_dir / f"{name}.out", "wb") as out:
            proc = subprocess.Popen(
                [exe, "-D", *args],
                env=self._full_env(),
                cwd=self.log_dir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                start_new_session=True,  # its own session: no terminal's Ctrl-C or hang-up reaches it
            )
        self._children.append(proc)
        return proc

    def _log_tail(self) -> str:
        parts = []
        for name in ("slurmctld", "slurmd"):
            try:
                lines = (self.log_dir / f"{name}.out").read_text(errors="replace").splitlines()
            except OSError:
                continue
            parts += [f"{name}.out: {line}" for line in lines[-_TAIL_LINES:]]
        return "\n".join(parts)

    # -- start and stop ------------------------------------------------------------------------

    def start(self, timeout_s: float = 30) -> None:
        """Write the configuration with two free ports, start slurmctld then slurmd, wait until the node is idle.

        Ready means ``sinfo -h -o %T`` prints ``idle`` (measured: 0.1-0.4 s after the spawn).  If a
        daemon exits because its port was taken meanwhile, it tries again with new ports (three times).

        Raises:
            ClusterError: Slurm is missing, this folder's cluster already runs, or the node is not idle
                within ``timeout_s`` seconds (a daemon exited, or never got ready); the message ends with
                the tail of the daemons' stderr, and nothing of the attempt is left running.
        """
        problem = missing()
        if problem:
            raise ClusterError(problem)
        if self.running():
            raise ClusterError(f"a Slurm cluster already runs in {self.folder} (stop it first)")
        deadline = time.monotonic() + timeout_s
        for attempt in range(_PORT_ATTEMPTS):
            self._write_config(free_port_pair())
            try:
                failure = self._start_daemons(deadline)
            except BaseException:  # Ctrl-C, or a bug: leave no half-started daemon behind
                with contextlib.suppress(ClusterError):
                    self._kill_all()
                raise
            if failure is None:
                return
            tail = self._log_tail()
            self._kill_all()
            if "Address already in use" in tail and attempt + 1 < _PORT_ATTEMPTS and time.monotonic() < deadline:
                continue
            reason = _last_fatal(tail)
            raise ClusterError(f"the Slurm cluster in {self.folder} did not start: {failure}{': ' + reason if reason else ''} (logs in {self.log_dir})", tail)

    def _start_daemons(self, deadline: float) -> str | None:
        """Spawn both daemons and wait until the node is idle; None when ready, else why not."""
        assert self.port is not None
        ctld = self._spawn("slurmctld", "-i")  # -i: ignore state files it cannot read
        # Clients retry a controller that does not listen yet for about 9 s: start slurmd and ask
        # sinfo only once this slurmctld listens (not another program that took the port meanwhile).
        while not _listens(ctld.pid, self.port):
            if ctld.poll() is not None:
                return f"slurmctld exited with status {ctld.returncode}"
            if time.monotonic() > deadline:
                return f"slurmctld does not listen on port {self.port}"
            time.sleep(_POLL_S)
        slurmd = self._spawn("slurmd", "-N", NODE)
        state = ""
        while True:
            for name, proc in (("slurmctld", ctld), ("slurmd", slurmd)):
                if proc.poll() is not None:
                    return f"{name} exited with status {proc.returncode}"
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return f"node {NODE} is {state or 'not known'}, not idle"
            try:
                done = self.run("sinfo", "-h", "-o", "%T", timeout=min(remaining, 3.0), check=False)
                state = done.stdout.strip() or " ".join(done.stderr.split())
            except ClusterError as exc:
                state = exc.summary
            if state == "idle":
                return None
            time.sleep(_POLL_S)

    def stop(self, timeout_s: float = 30) -> None:
        """Cancel every job, stop slurmd then slurmctld, and make sure no process of this cluster is left.

        Steps: ``scancel --full --signal=KILL`` (every step of every running job), ``scancel`` (the
        pending ones), wait until ``squeue`` lists no job and no slurmstepd is left; SIGTERM to slurmd
        (what ``scontrol shutdown`` sends it); ``scontrol shutdown slurmctld``; SIGTERM, then SIGKILL,
        to a daemon still there; SIGKILL to any slurmstepd left and its job's processes (a step whose
        slurmd stopped first outlives it).  slurmd stops before slurmctld because its threads that
        report to slurmctld (a job's launch or end) retry a controller that is gone for about 10 s
        before slurmd can exit.  Measured: 0.1-0.3 s with a few jobs, 0.5-2 s with 20 to 60 running.

        A cluster that is not running is left as it is: stop() is idempotent, and needs no start() in
        this process (it finds the daemons by :meth:`processes`).

        Raises:
            ClusterError: a process of the cluster survived SIGKILL for 5 s (in uninterruptible sleep).
        """
        deadline = time.monotonic() + timeout_s
        procs = self.processes()
        names = {p.info["name"] for p in procs}
        if {"slurmctld", "slurmd"} <= names:  # without slurmd, a cancelled job stays COMPLETING: _kill_all ends its steps
            self._cancel_jobs(deadline)
        slurmd = [p for p in procs if p.info["name"] == "slurmd"]
        for proc in slurmd:
            with contextlib.suppress(psutil.Error):
                proc.send_signal(signal.SIGTERM)
        self._wait_gone(slurmd, min(deadline, time.monotonic() + 15))
        if "slurmctld" in names:
            with contextlib.suppress(ClusterError):
                self.run("scontrol", "shutdown", "slurmctld", timeout=max(1.0, min(CLIENT_TIMEOUT_S, deadline - time.monotonic())), check=False)
            ctld = [p for p in procs if p.info["name"] in ("slurmctld", "slurmscriptd")]
            self._wait_gone(ctld, min(deadline, time.monotonic() + 10))
        self._kill_all()

    def _cancel_jobs(self, deadline: float) -> None:
        """Kill the running jobs, cancel the pending ones; wait (at most 15 s) until squeue lists none and no step is left."""
        until = min(deadline, time.monotonic() + 15)  # KillWait (5 s) and then some
        with contextlib.suppress(ClusterError):
            self.run("scancel", "--full", "--signal=KILL", f"--partition={PARTITION}", check=False)
            self.run("scancel", f"--partition={PARTITION}", check=False)
            while time.monotonic() < until:
                if not self.run("squeue", "-h", "-o", "%i", timeout=max(1.0, until - time.monotonic())).stdout.strip():
                    break
                time.sleep(_POLL_S)
        # a job leaves squeue when slurmctld hears of its end; its slurmstepd may still be reporting
        while time.monotonic() < until and any(p.info["name"] == "slurmstepd" for p in self.processes()):
            time.sleep(_POLL_S)

    def _wait_gone(self, procs: list[psutil.Process], until: float) -> list[psutil.Process]:
        """Wait until ``procs`` ended (reaping the ones this object started) or ``until``; return those left."""
        while True:
            for child in self._children:
                child.poll()  # reap: a zombie child counts as ended anyway, but do not leave it behind
            left = [p for p in procs if _alive(p)]
            if not left or time.monotonic() >= until:
                return left
            time.sleep(_POLL_S / 2)

    def _kill_all(self) -> None:
        """End every process of this cluster still there: daemons by SIGTERM then SIGKILL, slurmstepd and its job by SIGKILL."""
        procs = self.processes()
        daemons = [p for p in procs if p.info["name"] != "slurmstepd"]
        for proc in daemons:
            with contextlib.suppress(psutil.Error):
                proc.send_signal(signal.SIGTERM)
        left = self._wait_gone(daemons, time.monotonic() + 3)
        steps = [p for p in self.processes() if p.info["name"] == "slurmstepd"]
        doomed = list(left)
        for step in steps:
            with contextlib.suppress(psutil.Error):
                doomed += step.children(recursive=True)  # the job's processes: the step's tracking dies with it
            doomed.append(step)
        for proc in doomed:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        left = self._wait_gone(doomed, time.monotonic() + 5)
        for child in self._children:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=1)
        self._children = [c for c in self._children if c.returncode is None]
        if left:
            raise ClusterError(f"processes of the Slurm cluster in {self.folder} survived SIGKILL: {', '.join(str(p.pid) for p in left)}")


def main(argv: list[str] | None = None) -> int:
    """The command line: ``start DIR`` (daemons left running, ``export SLURM_CONF=...`` printed) or ``stop DIR``.

    Returns 0 on success, 2 for bad usage (``stop`` of a folder with no cluster configuration),
    69 when Slurm is missing or does not start; errors are one line on stderr.
    """
    parser = argparse.ArgumentParser(
        prog="python -m claude_orchestrator.devtools.slurm_cluster",
        description="A private one-node Slurm cluster in a folder (real daemons, auth/none: for a single-user machine).",
        epilog=(
            "example:\n"
            '  eval "$(python -m claude_orchestrator.devtools.slurm_cluster start /tmp/slurm)"\n'
            "  sbatch --wrap 'hostname'; squeue\n"
            "  python -m claude_orchestrator.devtools.slurm_cluster stop /tmp/slurm"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="action", required=True, metavar="{start,stop}")
    start = sub.add_parser("start", help="start the daemons (they keep running) and print `export SLURM_CONF=...`")
    start.add_argument("folder", metavar="DIR", type=Path, help="the cluster's folder (created if missing)")
    start.add_argument("--cpus", type=int, default=2, help="the node's CPUs (default: 2)")
    start.add_argument("--oversubscribe", type=int, default=50, metavar="N", help="jobs per CPU (default: 50)")
    start.add_argument("--licenses", default="agents:4", help="the Licenses= value, '' for none (default: agents:4)")
    stop = sub.add_parser("stop", help="cancel every job and stop the daemons")
    stop.add_argument("folder", metavar="DIR", type=Path, help="the cluster's folder")
    args = parser.parse_args(argv)
    prog = "slurm_cluster"
    try:
        if args.action == "start":
            try:
                cluster = SlurmCluster(args.folder, cpus=args.cpus, oversubscribe=args.oversubscribe, licenses=args.licenses)
            except ValueError as exc:
                print(f"{prog}: {exc}", file=sys.stderr)
                return EXIT_USAGE
            cluster.start()
            cluster._children.clear()  # the daemons outlive this process; it must not reap or kill them
            print(f"export SLURM_CONF={shlex.quote(str(cluster.conf_path))}")
            print(f"{prog}: started in {cluster.folder} (slurmctld on 127.0.0.1:{cluster.port}); stop it with: python -m claude_orchestrator.devtools.slurm_cluster stop {shlex.quote(str(cluster.folder))}", file=sys.stderr)
            return 0
        cluster = SlurmCluster(args.folder)
        if not cluster.conf_path.is_file():
            print(f"{prog}: no Slurm cluster in {cluster.folder} ({cluster.conf_path} is missing)", file=sys.stderr)
            return EXIT_USAGE
        was_running = cluster.running()
        cluster.stop()
        print(f"{prog}: {'stopped' if was_running else 'not running'}: {cluster.folder}", file=sys.stderr)
        return 0
    except ClusterError as exc:
        print(f"{prog}: {exc.summary}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except OSError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE


if __name__ == "__main__":
    sys.exit(main())
