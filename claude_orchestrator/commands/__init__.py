"""One module per script (pipx's ``commands/``): its parser, ``run(args) -> ExitCode`` and ``main(argv=None) -> int``.

- :mod:`.launch_agent`, :mod:`.launch_parallel`, :mod:`.resume_agent`: start runs;
- :mod:`.check_status`, :mod:`.wait_agents`, :mod:`.tail_agent`: read them;
- :mod:`.kill_agent`, :mod:`.clear_outputs`: stop them, clear their files.

Shared: :mod:`.options` (the option groups, and the one function that turns
them into the launcher's arguments), :mod:`.task_input` (a task from words, a
file or stdin), :mod:`.endings` (how a launch ends: the launched lines or
``--wait``) and :mod:`.render` (every table and line, as pure functions).
Each ``main`` parses its arguments (argparse exits 2 on bad usage) and runs
``run`` under :func:`.errors.guarded`, the one place a failure becomes one
stderr line and an exit status.  Nothing is imported here, so a script loads
only its own command.
"""
