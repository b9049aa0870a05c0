"""structlog: JSON lines on stdout with ISO timestamps; context (request id, app id) bound per task.

Everything goes through one stdlib handler, so our own lines and those of uvicorn, SQLAlchemy,
procrastinate or any other library come out in the same JSON shape, with the same context and the
same redaction of secrets.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

import structlog
from structlog.types import EventDict, Processor, WrappedLogger

from replyhq.observability.redact import redact

# Noise that stdlib records carry as attributes and that nobody reads in JSON.
_DROPPED_EXTRAS = {"color_message", "taskName"}


class _StdoutHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever sys.stdout is at the time (so test captures and redirections work)."""

    def __init__(self) -> None:
        super().__init__(sys.stdout)

    @property
    def stream(self) -> TextIO:
        return sys.stdout

    @stream.setter
    def stream(self, _: TextIO) -> None:
        pass


_FIRST = ("timestamp", "level", "event", "logger")


class _NotJobOutcomes(logging.Filter):
    """procrastinate logs each job's start and end; our worker logs the same once, with
    context (see replyhq.jobs.worker), so only procrastinate's other lines get through."""

    _ACTIONS = frozenset(
        {
            "start_job",
            "job_success",
            "job_error",
            "job_error_retry",
            "job_aborted",
            "job_aborted_retry",
            "loaded_job_info",
            "finish_task",
        }
    )

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith("procrastinate"):
            return True
        return getattr(record, "action", None) not in self._ACTIONS


def _redact_event(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    """Secrets out; and the fields a reader scans for first, first."""
    cleaned: EventDict = redact(event)
    ordered = {key: cleaned.pop(key) for key in _FIRST if key in cleaned}
    ordered.update(cleaned)
    return ordered


def _drop_noise(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    for key in _DROPPED_EXTRAS:
        event.pop(key, None)
    return event


def _context_first(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    # Context bound for the task (request id, app id, job id) is the default; what a call
    # passes explicitly wins.
    context = structlog.contextvars.get_contextvars()
    return {**context, **event} if context else event


class _LineWriter:
    """structlog's output for our own lines: the rendered JSON, one write per line, to whatever
    sys.stdout is, under the stdlib handler's lock (so lines from both never interleave).
    Skipping the stdlib LogRecord machinery halves the cost of a line."""

    def __init__(self, name: str, handler: logging.Handler) -> None:
        self.name = name
        self._handler = handler

    def msg(self, message: str) -> None:
        self._handler.acquire()
        try:
            stream = sys.stdout
            stream.write(message + "\n")
            stream.flush()
        finally:
            self._handler.release()

    log = debug = info = warning = warn = error = critical = exception = fatal = msg


class _LineWriterFactory:
    def __init__(self, handler: logging.Handler) -> None:
        self._handler = handler

    def __call__(self, *args: Any) -> _LineWriter:
        return _LineWriter(str(args[0]) if args else "replyhq", self._handler)


def configure_logging(level: str = "INFO") -> None:
    """Idempotent: JSON on stdout for structlog and stdlib loggers alike, at `level`."""
    numeric = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    timestamper = structlog.processors.TimeStamper(fmt="iso", utc=True)
    render = structlog.processors.JSONRenderer(default=str)
    foreign: list[Processor] = [
        _context_first,
        structlog.stdlib.add_log_level,
        structlog.stdlib.ExtraAdder(),
        _drop_noise,
        timestamper,
    ]
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=foreign,
        processors=[
            structlog.stdlib.add_logger_name,
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            _redact_event,
            render,
        ],
    )
    handler = _StdoutHandler()
    handler.setFormatter(formatter)
    handler.addFilter(_NotJobOutcomes())
    structlog.configure(
        processors=[
            _context_first,
            structlog.processors.add_log_level,
            timestamper,
            structlog.stdlib.add_logger_name,
            structlog.processors.format_exc_info,
            _redact_event,
            render,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=_LineWriterFactory(handler),
        cache_logger_on_first_use=True,
    )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(numeric)
    for name in ("uvicorn", "uvicorn.error", "procrastinate"):
        library = logging.getLogger(name)
        library.handlers = []
        library.propagate = True
    # Our middleware writes the one access line per request (with request id, route, app);
    # uvicorn writes its own whenever its logger has a handler anywhere up the tree.
    access = logging.getLogger("uvicorn.access")
    access.handlers = []
    access.propagate = False
    _adopt_socketio_loggers(numeric)
    logging.captureWarnings(True)  # Python warnings as JSON lines too, not bare stderr
    # procrastinate narrates every job at INFO; our own job lines say what matters once.
    procrastinate = logging.getLogger("procrastinate")
    procrastinate.setLevel(
        logging.DEBUG if numeric <= logging.DEBUG else max(numeric, logging.WARNING)
    )


# python-socketio and python-engineio give their loggers a bare stderr handler of their own
# (unless the logger already has a level), so their tracebacks went out as plain text, past
# the redactor. Given a level here first, they add none and write through ours.
_SOCKETIO_LOGGERS = (
    "socketio",
    "socketio.server",
    "socketio.client",
    "engineio",
    "engineio.server",
    "engineio.client",
)


def _adopt_socketio_loggers(level: int) -> None:
    for name in _SOCKETIO_LOGGERS:
        library = logging.getLogger(name)
        library.handlers = []  # any added by a server built before this call
        library.propagate = True
        # Their own default (logger=False) shows errors only: they narrate every connection.
        library.setLevel(max(level, logging.WARNING))


def bind(**fields: Any) -> None:
    """Add fields to every later log line of the current task (request, socket event, job)."""
    structlog.contextvars.bind_contextvars(**{k: v for k, v in fields.items() if v is not None})
