"""One module per script (pipx's ``commands/``): its parser, ``run(args) -> ExitCode`` and ``main(argv=None) -> int``.

- :mod:`.launch_agent`, :mod:`.launch_parallel`, :mod:`.resume_agent`: start runs;
- :mod:`.check_status`, :mod:`.wait_agents`, :mod:`.tail_agent`: read them;
- :mod:`.kill_agent`, :mod:`.clear_outputs`: stop them, clear their files.

Shared: :mod:`.guard` (the one guard), :mod:`.parsing` (every parser's
parsing), :mod:`.options` (the option groups, and the one function that turns
them into the launcher's arguments; each executor adds its own options),
:mod:`.task_input` (a task from words, a file or stdin), :mod:`.endings` (how a
launch ends: the launched lines or ``--wait``) and :mod:`.render` (every table
and line, as pure functions).

One entry, one guard: ``agents/<script>.py`` and the console command
(``orch-launch``, ...) both call ``main``, which parses its arguments and runs
``run`` inside :func:`.guard.guarded` (argparse still exits 2 on bad usage),
the one place a failure becomes one stderr line and an exit status; usage
lines and hints name the command as it was invoked (:mod:`..core.programs`).
Nothing is imported here, so a script loads only its own command.
"""
