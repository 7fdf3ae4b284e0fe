"""`agent-loader alerts` without `--once`: the long-running mode the systemd unit starts.

test_alerts.py drives every other case through `--once` or the library; this one leaves the
command running (`--interval 1`) while the operational mart's rows change under it, and
checks it notices both the breach and the recovery on its own, each sent once, signed.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from tests.alerts.planted import Pair, plant_metrics, plant_rules
from tests.alerts.receiver import running_receiver
from tests.conftest import REPO, Database

SECRET = "long-running-secret"
KEY = "error_rate_critical/publisher:pub-a/agent-1"
# pub-a's own critical rule without a cool-down, so the recovery resolves at the next cycle
NO_COOLDOWN = "error_rate_critical,error_rate,>,0.25,15,20,critical,0,0,publisher,pub-a"


def wait_for(condition, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "not within the time allowed"
        time.sleep(0.1)


def test_the_long_running_mode_fires_and_resolves_on_its_own(db: Database) -> None:
    plant_rules(db, [NO_COOLDOWN])
    plant_metrics(db, [Pair("pub-a", invocations=40, errored=20)])
    with running_receiver() as receiver:
        command = [sys.executable, "-m", "loader", "alerts", "--interval", "1"]
        process = subprocess.Popen(
            [*command, "--webhook", receiver.url],
            env={**db.env, "AGENT_ANALYTICS_WEBHOOK_SECRET": SECRET},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        try:
            wait_for(lambda: receiver.alert_ids == [(KEY, "firing")])
            plant_metrics(db, [Pair("pub-a", invocations=40, errored=1)])
            wait_for(lambda: len(receiver.alert_ids) == 2)
            time.sleep(2.5)  # two more cycles: nothing new to send
        finally:
            process.send_signal(signal.SIGTERM)
            _, errors = process.communicate(timeout=30)
    assert process.poll() is not None
    assert receiver.alert_ids == [(KEY, "firing"), (KEY, "resolved")], errors
    assert all(request.signed_with(SECRET.encode()) for request in receiver.requests)
    assert db.query("select status from alerts.deliveries order by 1") == [
        ("delivered",),
        ("delivered",),
    ]
