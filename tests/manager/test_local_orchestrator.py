import os
import sys
import time

import pytest

from flops_manager.adapters.local_orchestrator import LocalOrchestrator, service_state
from flops_manager.ports.errors import PermanentError
from flops_manager.ports.orchestrator import ServiceSpec, ServiceState
from tests.fixtures.servers import wait_for

SLEEPER = "import os, time; print('hello from', os.environ['FLOPS_INSTANCE'], flush=True); " \
          "time.sleep(120)"
STUBBORN = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); " \
           "print('ready', flush=True); time.sleep(120)"


def spec(name, code, instances=1, **kw):
    return ServiceSpec(name=name, role="test", image="", command=(sys.executable, "-c", code),
                       instances=instances, **kw)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as handle:  # a zombie counts as gone
        return handle.read().split()[2] != "Z"


@pytest.fixture
def orchestrator(tmp_path):
    orch = LocalOrchestrator(tmp_path, grace_s=1.0)
    yield orch
    orch.close()


def test_instances_run_with_identity_and_logs(orchestrator):
    status = orchestrator.create_service(spec("svc", SLEEPER, instances=2, ports=(18080,)))
    assert status.state is ServiceState.RUNNING and status.running == 2
    assert orchestrator.service_address("svc") == "127.0.0.1:18080"
    wait_for(lambda: all("hello from" in log
                         for log in orchestrator.service_logs("svc").values()), timeout=20)
    logs = orchestrator.service_logs("svc")
    assert logs["svc-0"].strip() == "hello from svc-0"
    assert logs["svc-1"].strip() == "hello from svc-1"
    again = orchestrator.create_service(spec("svc", SLEEPER, instances=5))
    assert again.instances == 2  # idempotent: the existing service is returned


def test_exit_codes_become_states(orchestrator):
    orchestrator.create_service(spec("ok", "print('done')"))
    orchestrator.create_service(spec("bad", "import sys; print('boom'); sys.exit(3)"))
    wait_for(lambda: orchestrator.service_status("ok").state is ServiceState.STOPPED, timeout=20)
    wait_for(lambda: orchestrator.service_status("bad").state is ServiceState.FAILED, timeout=20)
    message = orchestrator.service_status("bad").message
    assert "exited with code 3" in message and "boom" in message


def test_remove_stops_even_processes_that_ignore_sigterm(orchestrator):
    orchestrator.create_service(spec("stubborn", STUBBORN, instances=2))
    wait_for(lambda: all("ready" in log
                         for log in orchestrator.service_logs("stubborn").values()), timeout=20)
    pids = [p.popen.pid for p in orchestrator._services["stubborn"].processes]
    started = time.monotonic()
    assert orchestrator.remove_service("stubborn") is True
    assert time.monotonic() - started < 10
    assert not any(alive(pid) for pid in pids)
    assert orchestrator.remove_service("stubborn") is False
    assert orchestrator.service_status("stubborn") is None


def test_close_leaves_nothing_running(tmp_path):
    orch = LocalOrchestrator(tmp_path, grace_s=1.0)
    orch.create_service(spec("a", SLEEPER, instances=2))
    orch.create_service(spec("b", SLEEPER))
    pids = [p.popen.pid for s in orch._services.values() for p in s.processes]
    orch.close()
    assert not any(alive(pid) for pid in pids)


def test_unstartable_command_is_a_permanent_error(orchestrator):
    with pytest.raises(PermanentError, match="cannot start"):
        orchestrator.create_service(ServiceSpec(name="x", role="t", image="",
                                                command=("/nonexistent/binary",)))
    with pytest.raises(PermanentError, match="needs a command"):
        orchestrator.create_service(ServiceSpec(name="y", role="t", image=""))


@pytest.mark.parametrize(("codes", "state"), [
    ([None, None], ServiceState.RUNNING), ([0, None], ServiceState.RUNNING),
    ([0, 0], ServiceState.STOPPED), ([0, 2], ServiceState.FAILED),
    ([None, -9], ServiceState.FAILED),
])
def test_service_state_table(codes, state):
    assert service_state(codes) is state


def test_components_and_their_children_run_at_lower_cpu_priority(tmp_path):
    """The API must keep answering while components saturate the CPU."""
    code = ("import os, subprocess, sys, time; "
            "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)']); "
            "print('nice', os.getpriority(os.PRIO_PROCESS, 0), "
            "os.getpriority(os.PRIO_PROCESS, child.pid), flush=True); time.sleep(120)")
    orch = LocalOrchestrator(tmp_path, grace_s=1.0, niceness=7)
    try:
        orch.create_service(spec("busy", code))
        wait_for(lambda: "nice" in orch.service_logs("busy")["busy-0"], timeout=20)
        own = os.getpriority(os.PRIO_PROCESS, 0)
        words = orch.service_logs("busy")["busy-0"].split()
        assert words[:3] == ["nice", str(min(own + 7, 19)), str(min(own + 7, 19))]
    finally:
        orch.close()


def test_an_instance_killed_from_outside_is_missing_and_started_again(orchestrator):
    import signal

    orchestrator.create_service(spec("svc", SLEEPER, instances=2))
    wait_for(lambda: all("hello from" in log
                         for log in orchestrator.service_logs("svc").values()), timeout=20)
    victim = orchestrator._services["svc"].processes[1].popen.pid
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: orchestrator.service_status("svc").missing == ("svc-1",), timeout=20,
             what="svc-1 reported missing")
    status = orchestrator.service_status("svc")
    assert status.state is ServiceState.FAILED and status.running == 1
    repaired = orchestrator.create_service(spec("svc", SLEEPER, instances=2))
    assert repaired.missing == () and repaired.running == 2
    assert orchestrator._services["svc"].processes[1].popen.pid != victim
    wait_for(lambda: orchestrator.service_logs("svc")["svc-1"].count("hello from svc-1") == 2,
             timeout=20, what="the restarted instance's output appended to its log")


def test_public_services_keep_their_port_across_managers(tmp_path):
    """Saved inference links keep working after `flops down` / `flops up`."""
    public = spec("p-inference", SLEEPER, listen_env="FLOPS_LISTEN_ADDRESS", public=True)
    first = LocalOrchestrator(tmp_path, grace_s=1.0)
    address = first.create_service(public).address
    first.close()
    second = LocalOrchestrator(tmp_path, grace_s=1.0)
    try:
        assert second.create_service(public).address == address
        private = second.create_service(spec("p-learner", SLEEPER, listen_env="FLOPS_X"))
        assert private.address != address
    finally:
        second.close()


def test_close_stops_every_service_even_stubborn_ones(tmp_path):
    orch = LocalOrchestrator(tmp_path, grace_s=1.0)
    for name in ("a", "b", "c"):
        orch.create_service(spec(name, STUBBORN))
    wait_for(lambda: all("ready" in log for name in ("a", "b", "c")
                         for log in orch.service_logs(name).values()), timeout=20)
    pids = [p.popen.pid for s in orch._services.values() for p in s.processes]
    orch.close()
    assert not any(alive(pid) for pid in pids)


def test_a_port_is_not_handed_to_two_instances_in_a_row(orchestrator, monkeypatch):
    """free_port closes its socket before the instance binds: the same port could come twice."""
    from flops_manager.adapters import local_orchestrator
    from flops_manager.local_processes import free_port

    repeated = free_port()
    offers = iter([repeated, repeated, repeated])
    monkeypatch.setattr(local_orchestrator, "free_port",
                        lambda host="127.0.0.1": next(offers, None) or free_port(host))
    first = orchestrator.create_service(spec("a", SLEEPER, listen_env="FLOPS_X"))
    second = orchestrator.create_service(spec("b", SLEEPER, listen_env="FLOPS_X"))
    assert first.address == f"127.0.0.1:{repeated}"
    assert second.address != first.address


def test_a_restarted_instance_whose_port_was_taken_listens_elsewhere(orchestrator):
    import signal
    import socket

    service = spec("svc", SLEEPER, listen_env="FLOPS_X")
    before = orchestrator.create_service(service).address
    assert before is not None
    port = int(before.rpartition(":")[2])
    os.kill(orchestrator._services["svc"].processes[0].popen.pid, signal.SIGKILL)
    wait_for(lambda: orchestrator.service_status("svc").missing == ("svc-0",), timeout=20)
    with socket.socket() as squatter:  # another process took the port meanwhile
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        after = orchestrator.create_service(service)
    assert after.running == 1 and after.address != before
