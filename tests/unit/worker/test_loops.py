import threading
import time

from worker.loops import Loop


def wait_for(check, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.01)
    return False


def test_a_failing_step_is_logged_and_the_loop_goes_on(caplog):
    stop, calls = threading.Event(), []

    def step():
        calls.append(1)
        if len(calls) == 1:
            raise ValueError("invalid literal for int(): b'finished_at'")

    loop = Loop("t-loop", step, every_s=0.01, stop=stop)
    loop.start()
    assert wait_for(lambda: len(calls) >= 3)
    stop.set()
    assert loop.errors == 1 and "a step failed" in caplog.text


def test_a_dead_thread_is_noticed_and_restarted():
    stop, calls = threading.Event(), []

    def step():
        calls.append(1)
        if len(calls) == 1:
            raise SystemExit  # not an Exception: it ends the thread

    loop = Loop("t-dies", step, every_s=0.01, stop=stop)
    loop.start()
    assert wait_for(lambda: not loop.alive)
    assert loop.ensure_running() is True and loop.restarts == 1
    assert wait_for(lambda: len(calls) >= 3)
    assert loop.ensure_running() is False  # alive: nothing to do
    stop.set()
