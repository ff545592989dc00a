"""Base class of the package's lifecycle nodes.

What every stage node shares lives here so each node file only wires its topics to the core:
- parameters declared from the core configuration dataclass (plus EXTRA_CONFIGS, plus IOConfig),
  validated on change with a reason. Three kinds (core/params.py): live ones apply on the next
  frame; configure-time ones are accepted only while the node is unconfigured and take effect at
  the next configure (cleanup, set, configure, activate); read-only ones are start-up only;
- lifecycle: models load in configure and are released in cleanup; a failed load returns FAILURE
  with the reason and the node can be configured again; `autostart` configures and activates at
  start-up (as a lifecycle manager would);
- latest-only input: subscription callbacks only store the newest message, a worker thread
  processes it, replaced messages are counted as dropped-as-stale;
- errors: bad input is rejected with a throttled log line and a counter, the node keeps running;
- diagnostics on /diagnostics: state, backend, input rate, per-stage times, all counters, plus
  whatever a node adds through `diagnostic_values()`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
import re
import threading
import time
import traceback
from typing import Any
from collections.abc import Callable

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import SetParametersResult
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import QoSProfile

from spatial_caption_ros.core.errors import InvalidInputError, SpatialCaptionError
from spatial_caption_ros.core.runtime.latest import LatestWorker
from spatial_caption_ros.core.runtime.monitoring import (
    RateMeter, SequenceGaps, StageCounters, TimingStats)
from spatial_caption_ros.core.params import CONFIGURE, param, parameters, ParamSpec, READ_ONLY
from spatial_caption_ros.ros import conversions
from spatial_caption_ros.ros.params import declare_parameters, read_config, validate_changes
from spatial_caption_ros.ros.qos import QOS_NAMES, qos_profile

# Seconds between two log lines of the same kind about bad input or failures.
LOG_THROTTLE_S = 5.0
# Characters kept of a diagnostics value; errors (last_error, llm_error...) get more room, since
# they name the file and what the file should have been (several hundred characters with paths).
DIAG_VALUE_CHARS = 256
DIAG_ERROR_CHARS = 1024


@dataclass(frozen=True)
class StartConfig:
    """Start-up behaviour shared by every managed node."""

    autostart: bool = param(
        True, 'Configure and activate at start-up (without a lifecycle manager).',
        when=READ_ONLY)


@dataclass(frozen=True)
class IOConfig:
    """Topic QoS and diagnostics settings shared by every stage node."""

    input_qos: str = param(
        'sensor_data', 'QoS of the main input topic: sensor_data (best effort, newest only), '
        'reliable, reliable_latest or latched.', choices=QOS_NAMES, when=CONFIGURE)
    output_qos: str = param(
        'reliable', 'QoS of the output topics.', choices=QOS_NAMES, when=CONFIGURE)
    diagnostics_period: float = param(
        1.0, 'Seconds between two diagnostics messages on /diagnostics.', minimum=0.1,
        maximum=60.0, when=CONFIGURE)


def _snake(name: str) -> str:
    return re.sub(r'(?<!^)(?=[A-Z])', '_', name).lower().removesuffix('_error')


class ManagedNode(LifecycleNode):
    """A lifecycle node around one core stage. Subclasses set CONFIG and implement the hooks."""

    CONFIG: type | None = None         # the core configuration dataclass of the stage
    # Node-only parameter dataclasses (read by the node, not the core stage), e.g. the input
    # image format; their values: self.extra(cls).
    EXTRA_CONFIGS: tuple[type, ...] = ()
    IO_DEFAULTS: dict[str, Any] = {}   # this node's defaults of IOConfig fields

    @classmethod
    def config_classes(cls) -> tuple[type, ...]:
        """Every parameter dataclass the node declares, in declaration order."""
        return tuple(c for c in (StartConfig, cls.CONFIG, *cls.EXTRA_CONFIGS, IOConfig)
                     if c is not None)

    @classmethod
    def parameter_specs(cls) -> list[ParamSpec]:
        """Every parameter the node declares, in order, with THIS node's defaults.

        The one place a node's effective defaults are computed: the declaration, the shipped
        parameter file (config/pipeline.yaml) and the reference tables all read it.
        """
        specs, seen = [], set()
        for config_cls in cls.config_classes():
            for p in parameters(config_cls):
                if p.name in seen:
                    raise TypeError(f'{cls.__name__} declares {p.name} twice')
                seen.add(p.name)
                if config_cls is IOConfig and p.name in cls.IO_DEFAULTS:
                    p = replace(p, default=cls.IO_DEFAULTS[p.name])
                specs.append(p)
        return specs

    def __init__(self, node_name: str, **kwargs) -> None:
        super().__init__(node_name, **kwargs)
        declare_parameters(self, self.parameter_specs())
        self.config: Any = None
        self.io: IOConfig | None = None
        self.extras: dict[type, Any] = {}
        self.active = False
        self.last_error = ''
        self.counters = StageCounters()
        self._log_times: dict[str, tuple[float, int]] = {}
        self._log_lock = threading.Lock()
        self.timings = TimingStats()
        self.input_rate = RateMeter()
        self.worker: LatestWorker = LatestWorker(f'{node_name}_worker', self._handle,
                                                 self._on_worker_error)
        self._stage_subscriptions: list = []
        self._stage_publishers: list = []
        self._diag_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self._diag_timer = None
        self._start_diagnostics(1.0)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.add_post_set_parameters_callback(self._after_set_parameters)
        if self.get_parameter('autostart').value:
            self.autostart()

    # ----------------------------------------------------------- hooks for subclasses

    def configure_stage(self, config: Any) -> None:
        """Load models and create output publishers (raise SpatialCaptionError on failure)."""

    def create_inputs(self) -> None:
        """Create the input subscriptions (called on activate)."""

    def process(self, msg: Any) -> None:
        """Process the newest input message (runs on the worker thread).

        A node with an input must override this; the base refuses loudly, so a subclass that
        forgets it counts every message as an error instead of as processed.
        """
        raise NotImplementedError(f'{type(self).__name__} has an input but does not implement '
                                  'process()')

    def apply_live(self, config: Any) -> None:
        """Apply a configuration whose changed fields may change while active."""

    def release_stage(self) -> None:
        """Release models and buffers (cleanup, shutdown, failed configure)."""

    def describe(self) -> dict[str, str]:
        """What is running: backend, device, models... (logs and diagnostics)."""
        return {}

    def diagnostic_values(self) -> dict[str, str]:
        """Extra key/values for /diagnostics (e.g. caption counters); called on the timer."""
        return {}

    # ----------------------------------------------------------- helpers for subclasses

    def extra(self, config_cls: type) -> Any:
        """The configured values of one of EXTRA_CONFIGS (valid from configure to cleanup)."""
        return self.extras[config_cls]

    def publisher(self, msg_type, topic: str, qos: QoSProfile | None = None):
        """A lifecycle publisher on `topic` (destroyed on cleanup)."""
        pub = self.create_lifecycle_publisher(msg_type, topic,
                                              qos or qos_profile(self.io.output_qos))
        self._stage_publishers.append(pub)
        return pub

    def subscribe_latest(self, msg_type, topic: str, qos: QoSProfile | None = None,
                         precheck: Callable[[Any], None] | None = None):
        """Subscribe `topic`; its newest message goes to the worker (older unread ones drop).

        `precheck(msg)` runs in the callback and raises InvalidInputError for a message that
        can be refused from its header alone (O(1) or O(objects), no decoding): such a message
        is counted and logged as rejected and never takes the place of a good frame waiting
        for the worker.
        """
        gaps = SequenceGaps()

        def callback(msg, info) -> None:   # two parameters: rclpy passes the MessageInfo
            self.counters.received += 1
            self.input_rate.tick()
            self._count_superseded(topic, gaps, info)
            if precheck is not None:
                try:
                    precheck(msg)
                except InvalidInputError as exc:
                    self.reject(_snake(type(exc).__name__), str(exc))
                    return
            if self.worker.submit(msg):
                self.counters.dropped_stale += 1
        return self._add_subscription(msg_type, topic, callback,
                                      qos or qos_profile(self.io.input_qos))

    def subscribe(self, msg_type, topic: str, callback: Callable, qos: QoSProfile):
        """A subscription that lives while the node is active.

        Messages that a newer one replaced before `callback` ran are counted as superseded
        (diagnostics `superseded.<topic>`), so no input disappears without a trace.
        """
        gaps = SequenceGaps()

        def counted(msg, info) -> None:     # two parameters: rclpy passes the MessageInfo
            self._count_superseded(topic, gaps, info)
            callback(msg)
        return self._add_subscription(msg_type, topic, counted, qos)

    def _add_subscription(self, msg_type, topic: str, callback: Callable, qos: QoSProfile):
        sub = self.create_subscription(msg_type, topic, callback, qos)
        self._stage_subscriptions.append(sub)
        return sub

    def _count_superseded(self, topic: str, gaps: SequenceGaps, info) -> None:
        gid = info.get('publisher_gid') or {}
        missed = gaps.gap(bytes(gid.get('data') or b''), info.get('publication_sequence_number'))
        if missed:
            self.counters.supersede(topic, missed)

    def reject(self, reason: str, message: str, main_input: bool = True) -> None:
        """Count a rejected input and log why (at most once per LOG_THROTTLE_S per reason).

        main_input=False: a side input (camera_info, depth), outside StageCounters.in_flight.
        """
        self.counters.reject(reason, main_input)
        self._throttled_log('warning', f'rejected:{reason}', f'rejected input ({reason}): '
                                                             f'{message}')

    def _throttled_log(self, level: str, key: str, text: str) -> None:
        """Log `text` unless a line of the same key went out in the last LOG_THROTTLE_S.

        The next line that does go out says how many were suppressed in between.
        """
        now = time.monotonic()
        with self._log_lock:
            last, suppressed = self._log_times.get(key, (-1e9, 0))
            if now - last < LOG_THROTTLE_S:
                self._log_times[key] = (last, suppressed + 1)
                return
            self._log_times[key] = (now, 0)
        if suppressed:
            text += f' ({suppressed} more like this in the last {now - last:.0f} s)'
        getattr(self.get_logger(), level)(text)

    # ----------------------------------------------------------- lifecycle

    def autostart(self) -> None:
        if self.trigger_configure() == TransitionCallbackReturn.SUCCESS:
            self.trigger_activate()

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self.io = read_config(self, IOConfig)
            self.extras = {cls: read_config(self, cls) for cls in self.EXTRA_CONFIGS}
            self.config = read_config(self, self.CONFIG) if self.CONFIG else self.io
            self._start_diagnostics(self.io.diagnostics_period)
            self.configure_stage(self.config)
        except Exception as exc:  # noqa: BLE001 - any failure is a FAILURE with its reason
            self.last_error = str(exc)
            if isinstance(exc, SpatialCaptionError):
                self.get_logger().error(f'configure failed: {exc}')
            else:
                self.get_logger().error(f'configure failed: {exc}\n{traceback.format_exc()}')
            self._release()
            return TransitionCallbackReturn.FAILURE
        self.last_error = ''
        details = ', '.join(f'{k}={v}' for k, v in self.describe().items())
        self.get_logger().info(f'configured{": " + details if details else ""}')
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.worker.start()
        self.create_inputs()
        self.active = True
        self.get_logger().info('active')
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.active = False
        self._destroy_inputs()
        self.worker.stop()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        self.get_logger().info('cleaned up: models and buffers released')
        return super().on_cleanup(state)

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_and_release()
        return super().on_shutdown(state)

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_and_release()
        return super().on_error(state)

    def _stop_and_release(self) -> None:
        self.active = False
        self._destroy_inputs()
        self.worker.stop()
        self._release()

    def _release(self) -> None:
        """Release models and publishers; the node is unconfigured afterwards."""
        try:
            self.release_stage()
        except Exception as exc:  # noqa: BLE001
            self.get_logger().error(f'releasing the stage failed: {exc}')
        for pub in self._stage_publishers:
            self.destroy_lifecycle_publisher(pub)
        self._stage_publishers.clear()
        self.config = None
        self.extras = {}

    def _destroy_inputs(self) -> None:
        for sub in self._stage_subscriptions:
            self.destroy_subscription(sub)
        self._stage_subscriptions.clear()

    def destroy_node(self) -> None:
        self.active = False
        # A node whose construction failed (a parameter of the wrong type in the parameter file)
        # has no worker yet, but the context still destroys it at shutdown.
        if getattr(self, 'worker', None) is not None:
            self.worker.stop()
        super().destroy_node()

    # ----------------------------------------------------------- parameters

    def _on_set_parameters(self, params) -> SetParametersResult:
        configured = self.config is not None
        for cls in self.config_classes():
            result = validate_changes(self, cls, params, configured)
            if not result.successful:
                return result
        return SetParametersResult(successful=True)

    def _after_set_parameters(self, params) -> None:
        """Apply accepted live changes (configure-time ones wait for the next configure).

        Configure-time parameters only change while unconfigured (see validate_changes), so a
        configured node's new configuration differs from the running one in live fields only.
        """
        if self.config is None:
            return
        try:
            extras = {cls: read_config(self, cls) for cls in self.EXTRA_CONFIGS}
            config = read_config(self, self.CONFIG) if self.CONFIG else self.config
        except SpatialCaptionError as exc:
            self.get_logger().error(f'parameter update not applied: {exc}')
            return
        self.extras = extras
        if config != self.config:
            self.config = config
            self.apply_live(config)

    # ----------------------------------------------------------- worker

    def _handle(self, msg: Any) -> None:
        if not self.active:
            return
        stamp = getattr(getattr(msg, 'header', None), 'stamp', None)
        if stamp is not None and (stamp.sec or stamp.nanosec):
            # how old the input is when its processing starts: transport, the wait for the
            # worker (under one input period with the latest-only slot) and scheduling
            age_ns = self.get_clock().now().nanoseconds - conversions.stamp_to_ns(stamp)
            self.timings.add({'input_age': age_ns / 1e6})
        self.process(msg)
        self.counters.processed += 1

    def _on_worker_error(self, msg: Any, exc: BaseException) -> None:
        if not self.context.ok():
            # Ctrl-C: rclpy's signal handler shut the context down while a frame was in
            # flight; its outputs cannot be published any more. Not a processing error.
            return
        if isinstance(exc, InvalidInputError):
            self.reject(_snake(type(exc).__name__), str(exc))
        elif isinstance(exc, SpatialCaptionError):
            kind = _snake(type(exc).__name__)
            self.counters.error(kind)
            self._throttled_log('error', f'error:{kind}', f'frame skipped: {exc}')
        else:
            self.counters.error(type(exc).__name__)
            self._throttled_log(
                'error', f'error:{type(exc).__name__}',
                f'frame skipped after an unexpected {type(exc).__name__}: {exc}\n'
                f'{"".join(traceback.format_exception(exc))}')

    # ----------------------------------------------------------- diagnostics

    def _start_diagnostics(self, period: float) -> None:
        if self._diag_timer is not None:
            if abs(self._diag_timer.timer_period_ns - period * 1e9) < 1:
                return
            self.destroy_timer(self._diag_timer)
        self._diag_timer = self.create_timer(period, self.publish_diagnostics)

    def diagnostic_status(self) -> DiagnosticStatus:
        """The node's current DiagnosticStatus."""
        snap = self.counters.snapshot()
        values = {'state': 'active' if self.active else (
            'inactive' if self.config is not None else 'unconfigured')}
        values.update(self.describe() if self.config is not None else {})
        values['input_rate_hz'] = f'{self.input_rate.rate():.2f}'
        try:
            values.update(self.diagnostic_values())
        except Exception as exc:  # noqa: BLE001 - diagnostics must never take the node down
            values['diagnostic_values_error'] = str(exc)
        values.update({k: str(v) for k, v in snap.items()})
        for stage, (last, mean, peak) in sorted(self.timings.summary().items()):
            values[f'time_ms.{stage}'] = f'last {last:.1f} mean {mean:.1f} max {peak:.1f}'
        if self.last_error:
            values['last_error'] = self.last_error
        level, message = DiagnosticStatus.OK, values['state']
        if self.last_error:
            level, message = DiagnosticStatus.ERROR, f'configure failed: {self.last_error}'
        elif snap['errors'] or snap['rejected']:
            level = DiagnosticStatus.WARN
            message = f"{values['state']}; {snap['rejected']} inputs rejected, " \
                      f"{snap['errors']} frames failed"
        return DiagnosticStatus(
            level=level, name=f'spatial_caption: {self.get_fully_qualified_name()}',
            message=message[:256], hardware_id=values.get('device', ''),
            values=[KeyValue(key=k, value=str(v)[:DIAG_ERROR_CHARS if k.endswith('error')
                                                   else DIAG_VALUE_CHARS])
                    for k, v in values.items()])

    def publish_diagnostics(self) -> None:
        msg = DiagnosticArray()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.status = [self.diagnostic_status()]
        self._diag_pub.publish(msg)

    def record_timings(self, timings_ms: dict[str, float]) -> None:
        self.timings.add(timings_ms)

    @staticmethod
    def now_s() -> float:
        return time.perf_counter()
