"""Several module runs through ONE ``ansible-playbook`` start.

``ansible -m`` costs an Ansible start (~1 CPU-s) per run; a playbook with one task per run pays
it once and each task only its module execution (~0.4 CPU-s). Each task runs the module the way
``ansible -m`` does (the installed collection, on localhost, as a task of its own with its own
arguments, environment and check mode); a failed task does not stop the others
(``ignore_errors``). A small callback records what each task returned, as the ``tree`` callback
does for ``ansible -m``, so the tests read the module's JSON, never scrape the screen; the screen
output (default callback, what a person sees) is kept for the checks on what gets printed.
"""

import json
import tempfile
import time
from pathlib import Path

CALLBACK = '''
import json
import os
import time

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "modbatch"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.results, self.started = {}, {}

    def v2_playbook_on_task_start(self, task, is_conditional):
        self.started[task.get_name()] = time.monotonic()

    def _record(self, result, outcome):
        name = result.task_name if hasattr(result, "task_name") else result._task.get_name()
        start = self.started.get(name, time.monotonic())
        self.results[name] = {"result": dict(result._result), "outcome": outcome,
                              "duration": time.monotonic() - start}

    def v2_runner_on_ok(self, result, *args, **kwargs):
        self._record(result, "ok")

    def v2_runner_on_failed(self, result, *args, **kwargs):
        self._record(result, "failed")

    def v2_runner_on_unreachable(self, result, *args, **kwargs):
        self._record(result, "unreachable")

    def v2_runner_on_skipped(self, result, *args, **kwargs):
        self._record(result, "skipped")

    def v2_playbook_on_stats(self, stats):
        with open(os.environ["MODBATCH_OUT"], "w") as out:
            json.dump(self.results, out, default=str)
'''


class Run:
    """One module run of a batch, shaped like conftest.Result: ``rc`` is what ``ansible -m`` exits
    with (0, or 2 when the module failed), ``output`` the whole playbook's screen output."""

    def __init__(self, result, duration, output, outcome):
        self.result, self.duration, self.output = result, duration, output
        self.rc = 0 if outcome == "ok" else 2
        if outcome == "failed":
            self.result = dict(result, failed=True)

    @property
    def own_output(self):
        """What this run alone put on the screen: its result and its warnings as Ansible shows them."""
        return json.dumps(self.result) + "".join("\n[WARNING]: %s" % w for w in self.result.get("warnings") or [])

    def __getitem__(self, key):
        return self.result[key]

    def get(self, key, default=None):
        return self.result.get(key, default)

    def __repr__(self):
        return "Run(rc=%s, %.2fs, result=%s, output=%s)" % (self.rc, self.duration, json.dumps(self.result)[:2000],
                                                            self.output[-3000:])


def case(module, args, check=False, env=None):
    """One run of ``callcenter.ops.<module>`` with ``args`` (as ``ansible -m ... -a``). ``env``
    becomes the task's ``environment``, which Ansible prints at -vvv: a secret that a -vvv run
    must not show goes to the process's environment (run_batch(env=...)) or ``ansible -m``."""
    return dict(module=module, args=args, check=check, env=env or {})


def probe(expression):
    """A look between two runs that needs no module execution: ``set_fact`` (on the controller,
    which is this host) of ``expression``, a Jinja expression; its value is the run's ``value``."""
    return dict(task={"ansible.builtin.set_fact": {"value": "{{ %s }}" % expression}})


def prepare(ansible, cases):
    """Write the playbook of ``cases`` (a dict label -> case(...) or probe(...)); returns
    ``(playbook path, environment for ansible-playbook, read)``, where ``read(playbook Result)``
    gives ``{label: Run}``. For a run that must start ansible-playbook itself (in a PID
    namespace); run_batch() does all of it."""
    home = Path(ansible.home)
    work = Path(tempfile.mkdtemp(dir=home, prefix="batch-"))
    cb = home / "modbatch-callback"
    if not (cb / "modbatch.py").exists():
        cb.mkdir(exist_ok=True)
        tmp = cb / ("modbatch.%d.tmp" % time.monotonic_ns())
        tmp.write_text(CALLBACK)
        tmp.rename(cb / "modbatch.py")
    tasks = []
    for label, c in cases.items():
        if "task" in c:
            task = dict(c["task"], name=label)
        else:
            task = {"name": label, "callcenter.ops." + c["module"]: c["args"]}
            if c["check"]:
                task["check_mode"] = True
            if c["env"]:
                task["environment"] = c["env"]
        task["ignore_errors"] = True
        tasks.append(task)
    pb = work / "batch.yml"
    pb.write_text(json.dumps([{"name": "Module runs", "hosts": "localhost", "gather_facts": False, "tasks": tasks}]))
    out = work / "results.json"
    env = dict(ANSIBLE_CALLBACK_PLUGINS=str(cb), ANSIBLE_CALLBACKS_ENABLED="modbatch", MODBATCH_OUT=str(out))

    def read(r):
        got = json.loads(out.read_text()) if out.exists() else {}
        assert set(got) == set(cases), ("not every case ran", sorted(set(cases) - set(got)), r)
        runs = {}
        for label in cases:
            result = got[label]["result"]
            if "task" in cases[label]:
                result = dict(result, value=result.get("ansible_facts", {}).get("value"))
            runs[label] = Run(result, got[label]["duration"], r.output, got[label]["outcome"])
        return runs

    return pb, env, read


def run_batch(ansible, cases, verbosity=0, env=None, timeout=600):
    """Run ``cases`` (a dict label -> case(...)) as the tasks of one playbook, in order.
    Returns ``(playbook Result, {label: Run})``."""
    pb, batch_env, read = prepare(ansible, cases)
    r = ansible.playbook(pb, verbosity=verbosity, env=dict(env or {}, **batch_env), timeout=timeout)
    return r, read(r)
