"""What the crash hooks for the chaos tests share (engine.sync, promotion.crashpoints).

Each hook has its own pair of variables, read the same way: the value of `env`, else
the content of the file `file_env` names, read at each call so that a test arms a
running operator. Each hook parses the value itself. Pure: only `os` and `sys`.
"""

from __future__ import annotations

import os
import sys

#: Exit status of a process a hook ended (that of a SIGKILLed one).
CRASH_EXIT = 137


def armed_value(env: str, file_env: str) -> str:
    """$`env` (stripped), else the stripped content of the file $`file_env` names; ""
    when neither is set, the file is empty or it cannot be read."""
    raw = os.environ.get(env, "").strip()
    path = os.environ.get(file_env)
    if not raw and path:
        try:
            with open(path) as f:
                raw = f.read().strip()
        except OSError:
            raw = ""
    return raw


def die(message: str) -> None:
    """Ends this process at once, as SIGKILL would (no cleanup at all), saying `message`."""
    sys.stderr.write(f"{message}\n")
    sys.stderr.flush()
    os._exit(CRASH_EXIT)
