"""How a served process ends: never as an orphan, never later than its bounds.

``bso serve --workers N`` runs a supervisor and N worker processes sharing one
listening socket. A supervisor killed with SIGKILL cannot tell its workers; they
would keep the port and serve on, unsupervised, and a new ``bso serve`` there
would fail with "Address already in use". So each worker watches its parent's pid
(``watch_supervisor``, one small thread polling ``os.getppid()``) and, once the
supervisor is gone, shuts down gracefully and in any case exits within
``ORPHAN_EXIT_SECONDS``.

Shutdown is bounded too: uvicorn lets in-flight requests finish for the graceful
timeout, then the application closes its store; ``exit_backstop`` ends the process
if closing (or anything after it) outlasts ``SHUTDOWN_MARGIN_SECONDS``.
"""

import logging
import os
import resource
import signal
import threading
import time

logger = logging.getLogger("bso.lifecycle")

SUPERVISOR_PID_VARIABLE = "BSO_SUPERVISOR_PID"  # set by ``bso serve`` for its workers
BACKSTOP_VARIABLE = "BSO_SHUTDOWN_BACKSTOP_SECONDS"  # set by ``bso serve`` for the processes that serve
POLL_SECONDS = 0.5
ORPHAN_EXIT_SECONDS = 3.0
SHUTDOWN_MARGIN_SECONDS = 5.0


def watch_supervisor(supervisor_pid: int) -> threading.Thread:
    """Start a daemon thread that ends this worker once its parent is no longer ``supervisor_pid``."""
    thread = threading.Thread(target=_watch, args=(supervisor_pid,), name="bso-supervisor-watch", daemon=True)
    thread.start()
    return thread


def _watch(supervisor_pid: int) -> None:
    while os.getppid() == supervisor_pid:
        time.sleep(POLL_SECONDS)
    logger.error(
        "supervisor process [%d] is gone: worker [%d] stops serving (exits within %g s)",
        supervisor_pid,
        os.getpid(),
        ORPHAN_EXIT_SECONDS,
    )
    os.kill(os.getpid(), signal.SIGTERM)  # uvicorn's graceful shutdown: stop accepting, finish answers
    time.sleep(ORPHAN_EXIT_SECONDS)
    os._exit(1)  # still here: requests or the store's close outlasted the orphan's grace


def exit_backstop(seconds: float, status: int = 0) -> threading.Thread:
    """Start a daemon thread that ends the process ``seconds`` from now, whatever still runs."""

    def end() -> None:
        time.sleep(seconds)
        logger.error("shutdown outlasted %g s: exiting now", seconds)
        logging.shutdown()
        os._exit(status)

    thread = threading.Thread(target=end, name="bso-exit-backstop", daemon=True)
    thread.start()
    return thread


def raise_open_file_limit(wanted: int) -> int:
    """Raise this process's soft limit on open files toward ``wanted`` (within the hard limit);
    return the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft
