# test_sdk.py — tests the Python SDK (sdk/python/idem.py) and the C header (sdk/c/idem_activity.h) without idem: python3 -m unittest discover -s sdk/tests
"""Each test plays the worker: it sets the IDEM_* variables itself, gives
the activity one end of a socketpair(AF_UNIX, SOCK_DGRAM) as
IDEM_CONTROL_FD and a file as IDEM_LOG_FD, runs it, and reads back the
datagrams, the log, stdout and the exit status."""

import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SDK_PY = os.path.join(ROOT, "sdk", "python")
SDK_C = os.path.join(ROOT, "sdk", "c")

PR_SET_CHILD_SUBREAPER = 36
_subreaper = False


def setUpModule():
    """Orphans of the activities (the grandchild `sleep 30`) become ours, so
    that their death is seen by waitpid, signal included."""
    global _subreaper
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        _subreaper = libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        _subreaper = False


# The kill test's wrapper: a new session (pgid = $$), a grandchild
# `sleep 30` in the same group, its pid in $PIDFILE, then the activity.
WRAPPER = 'export IDEM_PGID=$$; sleep 30 & echo $! >"$PIDFILE"; exec "$@"'

ACTIVITY = textwrap.dedent('''\
    import sys
    import idem

    def main(inp):
        mode = inp.get("mode")
        if mode == "point":
            idem.point(inp["name"])
            return {"passed": inp["name"]}
        if mode == "heartbeat":
            return {"sent": idem.heartbeat(inp["details"]), "previous": idem.previous_heartbeat()}
        if mode == "fail":
            idem.fail(inp["type"], inp["message"], retryable=inp["retryable"])
        if mode == "nonretryable":
            raise idem.NonRetryable("CardDeclined", "card 4242 declined")
        if mode == "raise":
            raise KeyError("customer")
        if mode == "retryable":
            raise idem.Retryable("ServiceUnavailable", "503 from the service")
        if mode == "print":
            print("a debug line")
            return {"ok": True}
        if mode == "list":
            return [1, 2]
        if mode == "succeed":
            idem.succeed({"direct": True})
        if mode == "env":
            return {"namespace": idem.namespace(), "workflow_id": idem.workflow_id(),
                    "step": idem.step(), "attempt": idem.attempt(), "activity": idem.activity(),
                    "key": idem.idempotency_key(), "data_dir": idem.data_dir(),
                    "app_dir": idem.app_dir(), "naive": idem.naive(),
                    "peer_fault": idem.peer_fault(), "input": idem.input()}
        return None

    idem.run(main)
''')


class Attempt:
    """What one run of an activity left: exit status, stdout, stderr, the
    datagrams it sent, the log lines, the grandchild's wait status."""

    def __init__(self, returncode, stdout, stderr, datagrams, log, grandchild=None):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr
        self.datagrams, self.log, self.grandchild = datagrams, log, grandchild

    def json(self):
        return json.loads(self.stdout)


def run_attempt(argv, stdin=b"{}", env=None, wrapped=False, control=True, tmp=None):
    """Runs argv as the worker would (IDEM_CONTROL_FD, IDEM_LOG_FD set when
    control); wrapped: in a new session with a grandchild sleep 30."""
    full_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": SDK_PY,
                "PYTHONDONTWRITEBYTECODE": "1"}
    full_env.update(env or {})
    ours = theirs = None
    pass_fds = ()
    log = tempfile.TemporaryFile(dir=tmp)
    if control:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        full_env["IDEM_CONTROL_FD"] = str(theirs.fileno())
        full_env["IDEM_LOG_FD"] = str(log.fileno())
        pass_fds = (theirs.fileno(), log.fileno())
    pidfile = None
    if wrapped:
        pidfile = os.path.join(tmp, "grandchild.pid")
        full_env["PIDFILE"] = pidfile
        argv = ["sh", "-c", WRAPPER, "sh"] + list(argv)
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=full_env, pass_fds=pass_fds,
                            start_new_session=wrapped)
    if theirs is not None:
        theirs.close()
    grandchild_pid = None
    try:
        out, err = proc.communicate(stdin, timeout=10)
    finally:
        if proc.returncode is None:
            os.killpg(proc.pid, signal.SIGKILL) if wrapped else proc.kill()
            proc.wait()
        if pidfile and os.path.exists(pidfile):
            with open(pidfile) as f:
                grandchild_pid = int(f.read())
    datagrams = []
    if ours is not None:
        ours.setblocking(False)
        while True:
            try:
                datagrams.append(ours.recv(70000))
            except BlockingIOError:
                break
        ours.close()
    log.seek(0)
    lines = log.read().decode().splitlines()
    log.close()
    status = reap(grandchild_pid) if grandchild_pid else None
    return Attempt(proc.returncode, out, err, datagrams, lines, status)


def reap(pid):
    """The grandchild's wait status (we are its subreaper), or, failing
    that, "gone" once /proc shows it dead. Kills it if it still lives."""
    if _subreaper:
        try:
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                got, status = os.waitpid(pid, os.WNOHANG)
                if got == pid:
                    return status
                time.sleep(0.01)
        except ChildProcessError:
            pass
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return "gone"
        except FileNotFoundError:
            return "gone"
        time.sleep(0.01)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    return "alive"


class Base(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="idem-sdk-test-")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def assert_killed_group(self, a, point):
        self.assertEqual(a.returncode, -signal.SIGKILL, a.stderr)
        if a.grandchild != "gone":  # exact when we are the subreaper
            self.assertIsInstance(a.grandchild, int, "the grandchild sleep 30 survived")
            self.assertTrue(os.WIFSIGNALED(a.grandchild))
            self.assertEqual(os.WTERMSIG(a.grandchild), signal.SIGKILL)
        self.assertEqual(len(a.log), 1, a.log)
        self.assertRegex(a.log[0], r'^ts=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z level=info role=worker'
                                   rf' pid=(\d+) msg="injected fault: kill" point={point} wf=(?:"(?:[^"\\]|\\.)*"|\S+)'
                                   r' step=\S+ attempt=\S+ activity=\S+ command_pid=\1$')
        self.assertNotIn(f"point {point}".encode(), a.datagrams)
        self.assertEqual(a.stdout, b"")


class PythonSDK(Base):
    def setUp(self):
        super().setUp()
        self.script = os.path.join(self.tmp, "activity.py")
        with open(self.script, "w") as f:
            f.write(ACTIVITY)

    def run_py(self, inp, env=None, **kw):
        data = inp if isinstance(inp, bytes) else json.dumps(inp).encode()
        return run_attempt([sys.executable, self.script], data, env, tmp=self.tmp, **kw)

    def test_point_not_planned_tells_the_worker(self):
        a = self.run_py({"mode": "point", "name": "before_charge"}, {"IDEM_KILL_AT": "after_charge"})
        self.assertEqual(a.returncode, 0, a.stderr)
        self.assertEqual(a.json(), {"passed": "before_charge"})
        self.assertEqual(a.datagrams, [b"point before_charge"])
        self.assertEqual(a.log, [])

    def test_point_planned_kills_the_process_group(self):
        a = self.run_py({"mode": "point", "name": "after_charge"},
                        {"IDEM_KILL_AT": "after_charge", "IDEM_WORKFLOW_ID": 'p=1 "x"', "IDEM_STEP": "2"},
                        wrapped=True)
        self.assert_killed_group(a, "after_charge")
        self.assertIn(' wf="p=1 \\"x\\"" step=2 attempt=? activity=? ', a.log[0])

    def test_point_outside_idem_just_returns(self):
        a = self.run_py({"mode": "point", "name": "after_charge"}, control=False)
        self.assertEqual((a.returncode, a.json()), (0, {"passed": "after_charge"}))

    def test_point_bad_name_is_an_error(self):
        a = self.run_py({"mode": "point", "name": "After-Charge"})
        self.assertEqual(a.returncode, 75)
        self.assertEqual(a.json()["error"]["type"], "ValueError")
        self.assertEqual(a.datagrams, [])

    def test_heartbeat_sends_one_datagram(self):
        details = {"charge_id": "ch_1", "note": "two\nlines", "n": 3}
        a = self.run_py({"mode": "heartbeat", "details": details},
                        {"IDEM_HEARTBEAT": '{"charge_id":"ch_0"}'})
        self.assertEqual(a.returncode, 0, a.stderr)
        self.assertEqual(a.json(), {"sent": True, "previous": {"charge_id": "ch_0"}})
        self.assertEqual(len(a.datagrams), 1)
        kind, _, text = a.datagrams[0].partition(b" ")
        self.assertEqual(kind, b"heartbeat")
        self.assertNotIn(b"\n", text)
        self.assertEqual(json.loads(text), details)

    def test_heartbeat_too_large_and_outside_idem(self):
        a = self.run_py({"mode": "heartbeat", "details": {"x": "y" * 70000}})
        self.assertEqual((a.returncode, a.json()["error"]["type"]), (75, "ValueError"))
        self.assertEqual(a.datagrams, [])
        a = self.run_py({"mode": "heartbeat", "details": {"x": 1}}, control=False)
        self.assertEqual(a.json(), {"sent": False, "previous": None})

    def test_succeed_and_empty_result(self):
        a = self.run_py({"mode": "succeed"})
        self.assertEqual((a.returncode, a.json()), (0, {"direct": True}))
        a = self.run_py({"mode": "nothing"})
        self.assertEqual((a.returncode, a.json()), (0, {}))

    def test_fail_exit_codes(self):
        for retryable, code in ((True, 75), (False, 65)):
            a = self.run_py({"mode": "fail", "type": "CardDeclined", "message": 'say "no"',
                             "retryable": retryable})
            self.assertEqual(a.returncode, code)
            self.assertEqual(a.json(), {"error": {"type": "CardDeclined", "message": 'say "no"'}})

    def test_run_maps_exceptions(self):
        a = self.run_py({"mode": "nonretryable"})
        self.assertEqual(a.returncode, 65)
        self.assertEqual(a.json(), {"error": {"type": "CardDeclined", "message": "card 4242 declined"}})
        a = self.run_py({"mode": "raise"})
        self.assertEqual(a.returncode, 75)
        self.assertEqual(a.json(), {"error": {"type": "KeyError", "message": "'customer'"}})
        self.assertIn(b"Traceback", a.stderr)
        a = self.run_py({"mode": "retryable"})
        self.assertEqual(a.returncode, 75)
        self.assertEqual(a.json(), {"error": {"type": "ServiceUnavailable", "message": "503 from the service"}})
        self.assertEqual(a.stderr, b"ServiceUnavailable: 503 from the service\n")
        a = self.run_py({"mode": "list"})
        self.assertEqual((a.returncode, a.json()["error"]["type"]), (65, "BadResult"))

    def test_print_goes_to_stderr(self):
        a = self.run_py({"mode": "print"})
        self.assertEqual((a.returncode, a.json()), (0, {"ok": True}))
        self.assertIn(b"a debug line", a.stderr)

    def test_bad_input_is_not_retryable(self):
        for data in (b"[1, 2]", b"not json", b'{"a": '):
            a = self.run_py(data)
            self.assertEqual((a.returncode, a.json()["error"]["type"]), (65, "BadInput"), data)

    def test_environment(self):
        env = {"IDEM_NAMESPACE": "default", "IDEM_WORKFLOW_ID": "p-17", "IDEM_STEP": "1",
               "IDEM_ATTEMPT": "3", "IDEM_ACTIVITY": "charge",
               "IDEM_IDEMPOTENCY_KEY": "default/p-17/1", "IDEM_DATA_DIR": "/d",
               "IDEM_APP_DIR": "/a", "IDEM_NAIVE": "1", "IDEM_PEER_FAULT": "unavailable"}
        a = self.run_py({"mode": "env", "amount": 5}, env)
        self.assertEqual(a.json(), {"namespace": "default", "workflow_id": "p-17", "step": 1,
                                    "attempt": 3, "activity": "charge", "key": "default/p-17/1",
                                    "data_dir": "/d", "app_dir": "/a", "naive": True,
                                    "peer_fault": "unavailable",
                                    "input": {"mode": "env", "amount": 5}})
        a = self.run_py({"mode": "env"}, control=False)
        self.assertEqual(a.json()["step"], None)
        self.assertEqual(a.json()["naive"], False)


@unittest.skipUnless(shutil.which("cc"), "no C compiler (cc)")
class CHeader(Base):
    @classmethod
    def setUpClass(cls):
        cls.build = tempfile.mkdtemp(prefix="idem-sdk-c-")
        cls.exe = os.path.join(cls.build, "example")
        subprocess.run(["cc", "-std=c11", "-Wall", "-Wextra", "-Wpedantic", "-Werror", "-O1",
                        "-o", cls.exe, os.path.join(SDK_C, "example.c")], check=True)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.build, True)

    def env(self, **more):
        env = {"IDEM_IDEMPOTENCY_KEY": "default/w-1/0", "IDEM_DATA_DIR": self.tmp,
               "IDEM_KILL_AT": "after_commit"}
        env.update(more)
        return env

    def test_succeed_then_replay(self):
        a = run_attempt([self.exe], b'{"n": 1}', self.env(), tmp=self.tmp)
        self.assertEqual(a.returncode, 0, a.stderr)
        self.assertEqual(a.json(), {"key": "default/w-1/0", "replayed": False, "input_bytes": 8,
                                    "previous_heartbeat": None})
        self.assertEqual(a.datagrams, [b"point before_effect", b'heartbeat {"created": true}',
                                       b"point after_effect"])
        self.assertEqual(os.listdir(self.tmp).count("example-default%2Fw-1%2F0.done"), 1)
        a = run_attempt([self.exe], b'{"n": 1}', self.env(IDEM_HEARTBEAT='{"created":true}'),
                        tmp=self.tmp)
        self.assertEqual(a.json()["replayed"], True)
        self.assertEqual(a.json()["previous_heartbeat"], {"created": True})
        self.assertEqual(a.datagrams, [b"point before_effect"])

    def test_point_planned_kills_the_process_group(self):
        a = run_attempt([self.exe], b"{}", self.env(IDEM_KILL_AT="after_effect", IDEM_WORKFLOW_ID='p=1 "x"',
                                                     IDEM_STEP="2"), wrapped=True, tmp=self.tmp)
        self.assert_killed_group(a, "after_effect")
        self.assertIn(' wf="p=1 \\"x\\"" step=2 attempt=? activity=? ', a.log[0])
        self.assertIn(b'heartbeat {"created": true}', a.datagrams)
        a = run_attempt([self.exe], b"{}", self.env(), tmp=self.tmp)  # the retry
        self.assertEqual((a.returncode, a.json()["replayed"]), (0, True))

    def test_fail_escapes_json(self):
        nasty = b'x"quoted" back\\slash\nnew\x01ctl\xff'
        a = run_attempt([self.exe], nasty, self.env(), tmp=self.tmp)
        self.assertEqual(a.returncode, 65)
        self.assertEqual(a.json(), {"error": {
            "type": "InvalidInput",
            "message": 'the input is not a JSON object: x"quoted" back\\slash\nnew\x01ctl\ufffd'}})

    def test_retryable_failure(self):
        a = run_attempt([self.exe], b"{}", self.env(IDEM_DATA_DIR=os.path.join(self.tmp, "none")),
                        tmp=self.tmp)
        self.assertEqual((a.returncode, a.json()["error"]["type"]), (75, "IOError"))

    def test_outside_idem(self):
        a = run_attempt([self.exe], b"{}", self.env(), control=False, tmp=self.tmp)
        self.assertEqual((a.returncode, a.json()["replayed"]), (0, False))


if __name__ == "__main__":
    unittest.main()
