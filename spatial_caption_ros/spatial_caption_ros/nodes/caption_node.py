"""Caption node: scene graph -> caption, written off the subscription thread, latest graph wins.

Subscribes:  scene_graph (spatial_caption_interfaces/SceneGraph)
Publishes:   caption (spatial_caption_interfaces/Caption), caption/text (std_msgs/String)
"""

from __future__ import annotations

import time

from spatial_caption_interfaces.msg import Caption as CaptionMsg, SceneGraph
from std_msgs.msg import String

from spatial_caption_ros.core.captioning.captioner import CaptionConfig, Captioner
from spatial_caption_ros.ros import conversions
from spatial_caption_ros.ros.managed_node import ManagedNode
from spatial_caption_ros.ros.spin import run_node


class CaptionNode(ManagedNode):
    """Runs the core Captioner on the newest scene graph."""

    CONFIG = CaptionConfig
    IO_DEFAULTS = {'input_qos': 'reliable_latest'}

    def __init__(self, **kwargs) -> None:
        self.captioner: Captioner | None = None
        self._last_caption_time = float('-inf')
        super().__init__('caption', **kwargs)

    def configure_stage(self, config: CaptionConfig) -> None:
        self.captioner = Captioner(config)
        self.caption_pub = self.publisher(CaptionMsg, 'caption')
        self.text_pub = self.publisher(String, 'caption/text')

    def create_inputs(self) -> None:
        self.subscribe_latest(SceneGraph, 'scene_graph')

    def apply_live(self, config: CaptionConfig) -> None:
        if self.captioner is not None:
            self.captioner.config = config

    def release_stage(self) -> None:
        if self.captioner is not None:
            self.captioner.close()
            self.captioner = None

    def describe(self) -> dict[str, str]:
        return self.captioner.describe() if self.captioner is not None else {}

    def process(self, msg: SceneGraph) -> None:
        wait = self.config.min_period - (time.monotonic() - self._last_caption_time)
        if wait > 0:
            time.sleep(wait)
            newer = self.worker.slot.take(timeout=0)
            if newer is not None:       # a newer graph arrived while waiting: it wins
                self.counters.dropped_stale += 1
                msg = newer
        caption = self.captioner.caption(conversions.msg_to_scene_graph(msg))
        self._last_caption_time = time.monotonic()
        self.caption_pub.publish(conversions.caption_to_msg(caption))
        self.text_pub.publish(String(data=caption.text))
        self.record_timings({'caption': caption.latency * 1e3})


def main(args=None) -> None:
    run_node(CaptionNode, args)


if __name__ == '__main__':
    main()
