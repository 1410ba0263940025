# idem.py — the Python SDK of idem command activities: input, crash points, heartbeats, results (stdlib only).
"""Write an idem activity as a command in Python.

    import idem

    def charge(inp):
        idem.point("before_effect")
        ...
        return {"charge_id": "ch_1"}

    idem.run(charge)

Outside idem (no IDEM_* variables) point() and heartbeat() do nothing, so
the activity can be run by hand: echo '{"amount": 5}' | python3 charge.py
"""

import contextlib
import json
import os
import re
import signal
import stat
import sys
import time
import traceback

EX_OK = 0
EX_DATAERR = 65  # a non-retryable failure
EX_TEMPFAIL = 75  # a retryable failure
MAX_HEARTBEAT = 60 * 1024  # bytes of heartbeat JSON

_POINT_NAME = re.compile(r"[a-z0-9_]{1,63}\Z")
_NO_INPUT = object()
_input = _NO_INPUT
_result_out = sys.stdout  # the result's stream, whatever run() does to sys.stdout
_control_fd = _NO_INPUT


class NonRetryable(Exception):
    """Raise it from an activity to fail for good: run() exits 65 with this type."""

    def __init__(self, type, message=""):
        super().__init__(f"{type}: {message}" if message else type)
        self.type = type
        self.message = message


class Retryable(Exception):
    """Raise it for an expected retryable failure (a service down): run()
    exits 75 with this type, without the traceback other exceptions get."""

    def __init__(self, type, message=""):
        super().__init__(f"{type}: {message}" if message else type)
        self.type = type
        self.message = message


# ---- the attempt's input and environment -----------------------------------


def input():
    """The activity's input: the JSON object on stdin, read and parsed once.

    Raises NonRetryable("BadInput") when stdin is not a JSON object."""
    global _input
    if _input is _NO_INPUT:
        data = sys.stdin.buffer.read()
        try:
            value = json.loads(data) if data.strip() else {}
        except ValueError as e:
            raise NonRetryable("BadInput", f"the input is not JSON: {e}") from None
        if not isinstance(value, dict):
            raise NonRetryable("BadInput", f"the input is a JSON {type(value).__name__}, not an object")
        _input = value
    return _input


def _env_int(name):
    v = os.environ.get(name)
    try:
        return int(v) if v is not None else None
    except ValueError:
        return None


def namespace():
    """IDEM_NAMESPACE, or None outside idem."""
    return os.environ.get("IDEM_NAMESPACE")


def workflow_id():
    """IDEM_WORKFLOW_ID, or None outside idem."""
    return os.environ.get("IDEM_WORKFLOW_ID")


def step():
    """The 0-based step number (IDEM_STEP), or None outside idem."""
    return _env_int("IDEM_STEP")


def attempt():
    """The 1-based attempt number (IDEM_ATTEMPT), or None outside idem."""
    return _env_int("IDEM_ATTEMPT")


def activity():
    """The activity's name (IDEM_ACTIVITY), or None outside idem."""
    return os.environ.get("IDEM_ACTIVITY")


def idempotency_key():
    """"namespace/workflow_id/step": the same for every attempt of the step (None outside idem)."""
    return os.environ.get("IDEM_IDEMPOTENCY_KEY")


def data_dir():
    """IDEM_DATA_DIR: where the app keeps its state for this run, or None."""
    return os.environ.get("IDEM_DATA_DIR")


def app_dir():
    """IDEM_APP_DIR: the app's directory, or None."""
    return os.environ.get("IDEM_APP_DIR")


def naive():
    """True when idem runs the naive control variant (IDEM_NAIVE=1)."""
    return os.environ.get("IDEM_NAIVE") == "1"


def peer_fault():
    """The fault the app's outside service should act out ("unavailable",
    "record_then_die"), or None."""
    return os.environ.get("IDEM_PEER_FAULT") or None


def previous_heartbeat():
    """The details of the previous attempt's last heartbeat, or None."""
    text = os.environ.get("IDEM_HEARTBEAT")
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


# ---- crash points and heartbeats ----------------------------------------------


def _control():
    """IDEM_CONTROL_FD when it is a socket, else None (checked once)."""
    global _control_fd
    if _control_fd is _NO_INPUT:
        fd = _env_int("IDEM_CONTROL_FD")
        try:
            ok = fd is not None and fd >= 0 and stat.S_ISSOCK(os.fstat(fd).st_mode)
        except OSError:
            ok = False
        _control_fd = fd if ok else None
    return _control_fd


def _send(datagram):
    """Sends one datagram to the worker; False when there is no worker."""
    fd = _control()
    if fd is None:
        return False
    try:
        return os.write(fd, datagram) == len(datagram)
    except OSError:
        return False


def point(name):
    """A crash point. When this attempt must die here (IDEM_KILL_AT == name),
    says so on idem's log (IDEM_LOG_FD, the line idem-point writes) and
    SIGKILLs the process group IDEM_PGID: never returns.
    Otherwise tells the worker the point was reached."""
    if not isinstance(name, str) or not _POINT_NAME.match(name):
        raise ValueError(f"crash point name {name!r}: allowed 1..63 of a-z 0-9 _")
    if os.environ.get("IDEM_KILL_AT") == name:
        _die(name)
    _send(b"point " + name.encode())


def _logfmt(value):
    """value as a logfmt value: bare when it can be, else quoted and escaped."""
    if value and not any(c <= " " or c in '="\\\x7f' for c in value):
        return value
    esc = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
    return '"' + "".join(esc.get(c) or (f"\\x{ord(c):02x}" if c < " " or c == "\x7f" else c)
                         for c in value) + '"'


def _kill_line(name, pid):
    """The line idem-point writes on idem's log before a planned kill (logfmt)."""
    now = time.time()
    ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}Z"
    env = os.environ.get
    return (f'ts={ts} level=info role=worker pid={pid} msg="injected fault: kill" point={name}'
            f' wf={_logfmt(env("IDEM_WORKFLOW_ID", ""))} step={_logfmt(env("IDEM_STEP", "?"))}'
            f' attempt={_logfmt(env("IDEM_ATTEMPT", "?"))} activity={_logfmt(env("IDEM_ACTIVITY", "?"))}'
            f" command_pid={pid}\n")


def _die(name):
    pid = os.getpid()
    log_fd = _env_int("IDEM_LOG_FD")
    if log_fd is not None and log_fd >= 0:
        try:
            os.write(log_fd, _kill_line(name, pid).encode())
        except OSError:
            pass
    pgid = _env_int("IDEM_PGID")
    try:
        if pgid is not None and pgid > 1:
            os.killpg(pgid, signal.SIGKILL)
    except OSError:
        pass
    os.kill(pid, signal.SIGKILL)  # not in that group, or no group given
    os._exit(128 + signal.SIGKILL)


def heartbeat(details):
    """Checkpoints progress: details (JSON-serializable, at most 60 KiB of
    JSON) reach the next attempt as previous_heartbeat(). Returns True when
    the worker was told, False outside idem."""
    text = json.dumps(details, separators=(",", ":"), ensure_ascii=True)
    if len(text) > MAX_HEARTBEAT:
        raise ValueError(f"heartbeat details are {len(text)} bytes of JSON: at most {MAX_HEARTBEAT}")
    return _send(b"heartbeat " + text.encode())


# ---- results ----------------------------------------------------------------------


def _emit(obj, code):
    _result_out.write(json.dumps(obj, separators=(",", ":")) + "\n")
    _result_out.flush()
    sys.exit(code)


def succeed(result=None):
    """Writes result (a dict; None means {}) as the attempt's JSON result and exits 0.
    Raises TypeError, having written nothing, when result is not a JSON object."""
    if result is None:
        result = {}
    if not isinstance(result, dict):
        raise TypeError(f"an activity's result is a dict (a JSON object), not {type(result).__name__}")
    json.dumps(result)  # TypeError/ValueError before anything is written
    _emit(result, EX_OK)


def fail(type, message="", retryable=True):
    """Fails the attempt with an error type and message: exit 75 (retried
    under the retry policy) or, with retryable=False, 65 (failed for good)."""
    _emit({"error": {"type": str(type), "message": str(message)}}, EX_TEMPFAIL if retryable else EX_DATAERR)


def run(fn):
    """Runs fn(input()) as the activity: its dict is the result; NonRetryable
    fails for good; Retryable is retried; any other exception is retried
    too, typed by its class name (its traceback goes to stderr). print()
    inside fn goes to stderr, since stdout is the result. A result that is
    not a JSON object fails for good with BadResult."""
    try:
        inp = input()
        with contextlib.redirect_stdout(sys.stderr):
            result = fn(inp)
    except NonRetryable as e:
        fail(e.type, e.message, retryable=False)
    except Retryable as e:
        print(f"{e.type}: {e.message}", file=sys.stderr)
        fail(e.type, e.message, retryable=True)
    except Exception as e:
        traceback.print_exc()
        fail(e.__class__.__name__, str(e), retryable=True)
    try:
        succeed(result)
    except (TypeError, ValueError) as e:
        fail("BadResult", str(e), retryable=False)
