"""The web views of a fan-out: the live console (a Starlette app served by uvicorn, live through
server-sent events) and the self-contained HTML report, with what both read from the state root.

Imports :mod:`..core`, :mod:`..claude`, :mod:`..records` and :mod:`..usecases`; the web
libraries (starlette, uvicorn, sse-starlette: the ``[web]`` extra) only in :mod:`.app`
and :mod:`.serve`, so the launch path and the report (:mod:`.share`) import none of them.
"""
