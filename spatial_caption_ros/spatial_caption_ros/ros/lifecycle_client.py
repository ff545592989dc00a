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
# The primary state each transition starts from and the one it ends in (change_state's resend).
FROM_STATE = {'configure': 'unconfigured', 'activate': 'inactive', 'deactivate': 'active',
              'cleanup': 'inactive'}
GOAL_STATE = {'configure': 'inactive', 'activate': 'active', 'deactivate': 'inactive',
              'cleanup': 'unconfigured', 'shutdown': 'finalized'}
# Seconds without an answer after which change_state asks the node's state (see there).
RESEND_AFTER_S = 10.0
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

    def change_state(self, transition: str, timeout: float = 60.0,
                     resend_after: float = RESEND_AFTER_S) -> bool:
        """Request a transition by name; True when the node accepted and completed it.

        'shutdown' is sent as the shutdown transition of the node's current state.

        A request sent just after discovery can be lost: the client sees the service as ready
        once its own side matched, but the node's request reader may match the client a moment
        later, and a volatile reader never gets what was written before (seen once in a loaded
        test run: the image source never configured, no answer in 60 s). So when no answer came
        within `resend_after` seconds, the node's state is asked: already in the transition's
        goal state means done (the answer was the lost part); still in the state it started
        from means the request never arrived and it is sent again; a transition in progress
        (a long configure: model loading, an engine build), or no answer to the state query
        either (the node's one executor thread busy with it), is waited for, never sent twice.
        """
        deadline = time.monotonic() + timeout
        request = ChangeState.Request()
        if transition == 'shutdown':
            state = self.get_state(timeout)
            if state not in SHUTDOWN_FROM:
                return False
            request.transition.id = SHUTDOWN_FROM[state]
        else:
            request.transition.id = TRANSITIONS[transition]
        start_state = None if transition == 'shutdown' else FROM_STATE.get(transition)
        future = self._change.call_async(request)
        while True:
            remaining = deadline - time.monotonic()
            try:
                return bool(self._wait(future, max(0.0, min(resend_after, remaining))).success)
            except TimeoutError:
                if remaining <= resend_after:
                    raise TimeoutError(f'{self.target}: no answer to {transition} within '
                                       f'{timeout:.0f} s') from None
            try:
                state = self.get_state(max(0.1, min(5.0, deadline - time.monotonic())))
            except TimeoutError:
                continue        # busy (a long transition in its only thread): keep waiting
            if state == GOAL_STATE.get(transition):
                return True
            if state == start_state:          # the request never arrived: send it again
                self._change.remove_pending_request(future)
                future = self._change.call_async(request)
            # else a transition in progress: wait for its answer

    def get_state(self, timeout: float = 10.0) -> str:
        result = self._wait(self._get.call_async(GetState.Request()), timeout)
        return STATE_LABELS.get(result.current_state.id, result.current_state.label)
