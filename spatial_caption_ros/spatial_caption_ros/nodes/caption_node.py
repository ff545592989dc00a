"""Caption node: scene graph -> verified caption, written off the subscription thread.

Subscribes:  scene_graph (spatial_caption_interfaces/SceneGraph)
Publishes:   caption (spatial_caption_interfaces/Caption), caption/text (std_msgs/String)

The subscription only stores the newest graph; the base class's worker thread captions it, so a
slow LLM never blocks callbacks and never builds a queue (the latest graph wins, replaced ones
are counted as dropped_stale). min_period and only_on_change bound the load. The LLM is loaded in
configure: if it cannot be, configure fails (llm_required: true) or the node publishes template
captions with a WARN diagnostic (llm_required: false, the default). min_period and
refresh_period run on the node clock: with use_sim_time they follow /clock. `log_captions`
also logs each caption at INFO (the launch files turn it on: captions on the console).
"""

from __future__ import annotations

from dataclasses import dataclass

from diagnostic_msgs.msg import DiagnosticStatus
from spatial_caption_interfaces.msg import Caption as CaptionMsg, MemoryFacts, SceneGraph
from std_msgs.msg import String

from spatial_caption_ros.core.captioning.captioner import (
    CaptionConfig, Captioner, REASON_ERROR, REASON_TIMEOUT)
from spatial_caption_ros.core.captioning.change import scene_change
from spatial_caption_ros.core.memory.facts import MemoryFactsConfig, with_memory_facts
from spatial_caption_ros.core.params import param
from spatial_caption_ros.core.types import SceneGraph as CoreGraph
from spatial_caption_ros.ros import conversions
from spatial_caption_ros.ros.managed_node import ManagedNode
from spatial_caption_ros.ros.qos import qos_profile
from spatial_caption_ros.ros.spin import run_node

# Longest sleep between checks for a newer graph or a stop while min_period runs out.
_WAIT_STEP_S = 0.05
# Fallback reasons that mean the LLM itself failed (not a caption it wrote that was refused):
# logged (throttled) and a WARN diagnostic.
LLM_FAULTS = (REASON_TIMEOUT, REASON_ERROR)


@dataclass(frozen=True)
class CaptionNodeConfig:
    """Parameters only the node reads: when a graph is captioned (rate, scene changes)."""

    min_period: float = param(
        0.0, 'Minimum seconds between two captions (0: caption every graph that arrives while '
        'idle; the latest graph always wins).', minimum=0.0, maximum=3600.0)
    only_on_change: bool = param(
        False, 'Caption a graph only when the scene changed (class counts, relations, or an '
        'object moved more than change_threshold).')
    change_threshold: float = param(
        0.1, 'only_on_change: movement of an object, as a fraction of the image diagonal, '
        'that counts as a change.', minimum=0.0, maximum=1.0)
    refresh_period: float = param(
        0.0, 'only_on_change: re-caption an unchanged scene after this many seconds '
        '(0: never).', minimum=0.0, maximum=86400.0)
    log_captions: bool = param(
        False, 'Also log each published caption at INFO (the launch files turn it on, so '
        '`ros2 launch` shows the captions on the console).')


class CaptionNode(ManagedNode):
    """Runs the core Captioner on the newest scene graph."""

    CONFIG = CaptionConfig
    EXTRA_CONFIGS = (CaptionNodeConfig, MemoryFactsConfig)
    IO_DEFAULTS = {'input_qos': 'reliable_latest'}
    MEMORY_FACTS_KEPT = 16     # frames of memory facts kept for graphs still being captioned

    def __init__(self, **kwargs) -> None:
        self.captioner: Captioner | None = None
        self._memory_facts: dict[int, list[str]] = {}
        self._last_caption_time = float('-inf')
        self._last_graph: CoreGraph | None = None
        self.skipped_unchanged = 0
        super().__init__('caption', **kwargs)

    def configure_stage(self, config: CaptionConfig) -> None:
        self.captioner = Captioner(config)
        if self.captioner.llm_error:
            self.get_logger().warning(
                f'LLM not loaded, publishing template captions: {self.captioner.llm_error}')
        self.caption_pub = self.publisher(CaptionMsg, 'caption')
        self.text_pub = self.publisher(String, 'caption/text')
        self._last_graph = None
        self._last_caption_time = float('-inf')

    def create_inputs(self) -> None:
        self.subscribe_latest(SceneGraph, 'scene_graph',
                              precheck=conversions.check_scene_graph_msg)
        if self.extra(MemoryFactsConfig).memory_facts:
            self.subscribe(MemoryFacts, 'memory/facts', self._on_memory_facts,
                           qos_profile('reliable'))

    def _on_memory_facts(self, msg: MemoryFacts) -> None:
        """Keep the memory's statements per frame stamp (hook: core/memory/facts.py)."""
        stamp, statements = conversions.msg_to_memory_statements(msg)
        self._memory_facts[stamp] = statements
        while len(self._memory_facts) > self.MEMORY_FACTS_KEPT:
            self._memory_facts.pop(next(iter(self._memory_facts)))

    def apply_live(self, config: CaptionConfig) -> None:
        if self.captioner is not None:
            self.captioner.config = config

    def release_stage(self) -> None:
        if self.captioner is not None:
            self.captioner.close()
            self.captioner = None

    def destroy_node(self) -> None:
        """Stop the worker, then release the model (a destroyed node keeps nothing mapped)."""
        super().destroy_node()
        self.release_stage()

    def describe(self) -> dict[str, str]:
        return self.captioner.describe() if self.captioner is not None else {}

    def process(self, msg: SceneGraph) -> None:
        msg = self._wait_min_period(msg)
        if msg is None:
            return
        graph = conversions.msg_to_scene_graph(msg)
        when = self.extra(CaptionNodeConfig)
        if when.only_on_change:
            changed = scene_change(self._last_graph, graph, when.change_threshold)
            stale = (when.refresh_period > 0 and self._clock_s()
                     - self._last_caption_time >= when.refresh_period)
            if not changed and not stale:
                self.skipped_unchanged += 1
                return
        caption = self.captioner.caption(graph)
        if self.extra(MemoryFactsConfig).memory_facts:
            caption.text = with_memory_facts(
                caption.text, self._memory_facts.get(graph.header.stamp_ns, []))
        code = caption.fallback_reason.split(':')[0]
        if code in LLM_FAULTS:
            self._throttled_log('warning', f'caption:{code}',
                                f'LLM failed, template caption published: '
                                f'{caption.fallback_reason}')
        self._last_caption_time = self._clock_s()
        self._last_graph = graph
        self.caption_pub.publish(conversions.caption_to_msg(caption))
        self.text_pub.publish(String(data=caption.text))
        if self.extra(CaptionNodeConfig).log_captions:
            self.get_logger().info(f'caption [{caption.generator}]: {caption.text}')
        self.record_timings({'caption': caption.latency * 1e3})

    def _wait_min_period(self, msg: SceneGraph) -> SceneGraph | None:
        """Wait out min_period, taking any newer graph that arrives meanwhile (latest wins)."""
        while self.active:
            wait = (self.extra(CaptionNodeConfig).min_period
                    - (self._clock_s() - self._last_caption_time))
            if wait <= 0:
                return msg
            newer = self.worker.slot.take(timeout=min(wait, _WAIT_STEP_S))
            if newer is not None:
                self.counters.dropped_stale += 1
                msg = newer
        return None

    def _clock_s(self) -> float:
        """Node clock in seconds (sim time with use_sim_time): min_period and refresh_period."""
        return self.get_clock().now().nanoseconds / 1e9

    def diagnostic_values(self) -> dict[str, str]:
        """Caption counters: verified vs fallen back, by generator and by reason."""
        if self.captioner is None:
            return {}
        values = {k: str(v) for k, v in self.captioner.stats.snapshot().items()}
        values['skipped_unchanged'] = str(self.skipped_unchanged)
        return values

    def diagnostic_status(self) -> DiagnosticStatus:
        """WARN while the LLM could not be loaded, or once it timed out or failed on a graph.

        Template captions stand in for it then (still verified). Like the base class's
        rejected/failed counts, the LLM fault counts are totals since configure.
        """
        status = super().diagnostic_status()
        if self.captioner is None or status.level != DiagnosticStatus.OK:
            return status
        fallback = self.captioner.stats.snapshot()
        faults = {code: fallback.get(f'fallback.{code}', 0) for code in LLM_FAULTS}
        if self.captioner.llm_error:
            status.level = DiagnosticStatus.WARN
            status.message = f'{status.message}; LLM unavailable, template captions'[:256]
        elif any(faults.values()):
            status.level = DiagnosticStatus.WARN
            counts = ', '.join(f'{n} {code}' for code, n in faults.items() if n)
            status.message = (f'{status.message}; LLM fell back to template captions '
                              f'({counts})')[:256]
        return status

def main(args=None) -> None:
    run_node(CaptionNode, args)


if __name__ == '__main__':
    main()
