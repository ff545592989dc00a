"""Drive other nodes' lifecycles through their standard services (as a lifecycle manager does)."""

from __future__ import annotations

import time

from lifecycle_msgs.msg import State, Transition
from lifecycle_msgs.srv import ChangeState, GetState
from rclpy.node import Node

TRANSITIONS = {
    'configure': Transition.TRANSITION_CONFIGURE,
    'activate': Transition.TRANSITION_ACTIVATE,
    'deactivate': Transition.TRANSITION_DEACTIVATE,
    'cleanup': Transition.TRANSITION_CLEANUP,
    'shutdown': Transition.TRANSITION_ACTIVE_SHUTDOWN,
}
# `shutdown` is a different transition from each primary state.
SHUTDOWN_FROM = {
    'unconfigured': Transition.TRANSITION_UNCONFIGURED_SHUTDOWN,
    'inactive': Transition.TRANSITION_INACTIVE_SHUTDOWN,
    'active': Transition.TRANSITION_ACTIVE_SHUTDOWN,
}
STATE_LABELS = {
    State.PRIMARY_STATE_UNCONFIGURED: 'unconfigured', State.PRIMARY_STATE_INACTIVE: 'inactive',
    State.PRIMARY_STATE_ACTIVE: 'active', State.PRIMARY_STATE_FINALIZED: 'finalized',
}


class LifecycleClient:
    """Calls <node>/change_state and <node>/get_state from a helper node.

    The helper node must be spun by an executor in another thread, or `spin` must be given: a
    callable that spins it briefly (e.g. lambda: executor.spin_once(timeout_sec=0.05)).
    """

    def __init__(self, node: Node, target: str, spin=None) -> None:
        self._change = node.create_client(ChangeState, f'{target}/change_state')
        self._get = node.create_client(GetState, f'{target}/get_state')
        self._spin = spin
        self.target = target

    def _wait(self, future, timeout: float):
        deadline = time.monotonic() + timeout
        while not future.done() and time.monotonic() < deadline:
            if self._spin is not None:
                self._spin()
            else:
                time.sleep(0.01)
        if not future.done():
            raise TimeoutError(f'{self.target}: no answer within {timeout:.0f} s')
        return future.result()

    def wait_for_services(self, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._change.service_is_ready() and self._get.service_is_ready():
                return True
            if self._spin is not None:
                self._spin()
            else:
                time.sleep(0.05)
        return False

    def change_state(self, transition: str, timeout: float = 60.0) -> bool:
        """Request a transition by name; True when the node accepted and completed it.

        'shutdown' is sent as the shutdown transition of the node's current state.
        """
        request = ChangeState.Request()
        if transition == 'shutdown':
            state = self.get_state(timeout)
            if state not in SHUTDOWN_FROM:
                return False
            request.transition.id = SHUTDOWN_FROM[state]
        else:
            request.transition.id = TRANSITIONS[transition]
        return bool(self._wait(self._change.call_async(request), timeout).success)

    def get_state(self, timeout: float = 10.0) -> str:
        result = self._wait(self._get.call_async(GetState.Request()), timeout)
        return STATE_LABELS.get(result.current_state.id, result.current_state.label)
