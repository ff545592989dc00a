"""A folder of still photos is one sequence per photo; a video keeps tracking (real nodes).

The image source and the perception node (real YOLO11n) in one executor, paced on detections so
that every frame is processed. Two photos whose boxes overlap (here the same picture under two
names: the worst case of unrelated photos with same-class boxes in the same place) must not
share a track id; the same frames as one sequence (a video, a folder of consecutive frames) must.
"""

import shutil

import cv2
import pytest
from rclpy.executors import MultiThreadedExecutor
from rclpy.parameter import Parameter
from spatial_caption_interfaces.msg import DetectionArray

from support import BUS, MODELS, needs_shared, spin_until
from spatial_caption_ros.nodes.image_source_node import ImageSourceNode
from spatial_caption_ros.nodes.perception_node import PerceptionNode
from spatial_caption_ros.ros.qos import qos_profile

pytestmark = [needs_shared, pytest.mark.usefixtures('rclpy_context')]


def _track_ids(namespace: str, source, **source_params) -> tuple[list[set[int]], dict, dict]:
    """Track ids of each published frame, and the two nodes' describe()."""
    perception = PerceptionNode(namespace=namespace, parameter_overrides=[
        Parameter('model_dir', value=str(MODELS)), Parameter('input_qos', value='reliable')])
    overrides = [Parameter('source', value=str(source)), Parameter('rate', value=20.0),
                 Parameter('pace_on', value='detections'),
                 Parameter('min_subscribers', value=1)]
    overrides += [Parameter(k, value=v) for k, v in source_params.items()]
    source_node = ImageSourceNode(namespace=namespace, parameter_overrides=overrides)
    frames: list[DetectionArray] = []
    perception.create_subscription(DetectionArray, 'detections', frames.append,
                                   qos_profile('reliable'))
    ex = MultiThreadedExecutor()
    for node in (perception, source_node):
        ex.add_node(node)
    try:
        assert perception.active and source_node.active, (perception.last_error,
                                                          source_node.last_error)
        assert spin_until(ex, lambda: source_node.finished and len(frames) == 2, timeout=60)
        return ([{o.id for o in f.objects} for f in frames], source_node.describe(),
                perception.describe())
    finally:
        ex.shutdown()
        for node in (perception, source_node):
            node.destroy_node()


def _two_copies(folder):
    folder.mkdir()
    shutil.copy(BUS, folder / 'a.jpg')
    shutil.copy(BUS, folder / 'b.jpg')
    return folder


def test_each_photo_of_a_folder_is_a_new_sequence(tmp_path):
    ids, source, perception = _track_ids('/stills', _two_copies(tmp_path / 'photos'))
    assert len(ids[0]) >= 5
    assert not ids[0] & ids[1], ids            # no object of photo a is "seen again" in b
    assert source['new_sequences'].startswith('2 of 2 photos')
    assert perception['new_sequences_requested'] == '2'


def test_a_folder_of_consecutive_frames_and_a_video_keep_tracking(tmp_path):
    ids, source, perception = _track_ids('/seq', _two_copies(tmp_path / 'frames'),
                                         folder_is_sequence=True)
    assert len(ids[0]) >= 5 and ids[0] == ids[1], ids
    assert 'new_sequences' not in source and perception['new_sequences_requested'] == '0'
    video = tmp_path / 'clip.avi'
    image = cv2.imread(str(BUS))
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*'MJPG'), 10,
                             (image.shape[1], image.shape[0]))
    for _ in range(2):
        writer.write(image)
    writer.release()
    ids, source, _ = _track_ids('/video', video)
    assert len(ids[0]) >= 5 and ids[0] == ids[1], ids
    assert 'new_sequences' not in source
