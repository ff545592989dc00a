"""A person and what they wear or hold share one depth (geometric source, carried_consistency).

The real case first: YOLO11n on zidane.jpg with the image source's assumed camera (no EXIF, no
calibration) placed the man at 3.8 m and his tie at 2.0 m. Then the rule's cases on estimates
with known answers.
"""

from dataclasses import replace

from support import IMAGES, MODELS, needs_shared
from spatial_caption_ros.core.inputs.image import read_image_file
from spatial_caption_ros.core.params import build_config
from spatial_caption_ros.core.perception.depth.geometric import (
    carried_consistency, CARRIED_RANGE_M, GeometricEstimate, UNIFORM_SIGMA)
from spatial_caption_ros.core.perception.pipeline import PerceptionConfig, PerceptionPipeline
from spatial_caption_ros.core.types import BoundingBox, CameraIntrinsics, Detection, FrameHeader

ATTACH = CARRIED_RANGE_M * UNIFORM_SIGMA


@needs_shared
def test_zidane_and_his_tie_are_placed_together():
    image = read_image_file(IMAGES / 'zidane.jpg')
    camera = replace(CameraIntrinsics.from_horizontal_fov(60.0, image.width, image.height),
                     assumed=True)
    pipeline = PerceptionPipeline(build_config(PerceptionConfig, {'model_dir': str(MODELS)}))
    try:
        objects = pipeline.process(image, FrameHeader(1, 'camera'), camera).objects
    finally:
        pipeline.close()
    tie = next(o for o in objects if o.class_name == 'tie')
    wearer = next(o for o in objects if o.class_name == 'person' and o.box.x_min <= tie.box.x_min
                  and tie.box.x_max <= o.box.x_max)
    # within arm's reach of each other (before: 3.84 m and 2.00 m), and so within their sigmas
    assert abs(wearer.depth - tie.depth) < 0.5 * CARRIED_RANGE_M
    assert abs(wearer.depth - tie.depth) < min(wearer.depth_uncertainty, tie.depth_uncertainty)


def _det(name, box, confidence=0.8):
    return Detection(BoundingBox(*box), 0, name, confidence)


PERSON = _det('person', (100, 50, 300, 470))
PERSON_EST = GeometricEstimate(z=3.0, sigma=0.6, basis='height', metric=True)


def test_an_item_on_a_person_and_the_person_combine_their_depths():
    bag = _det('handbag', (220, 250, 290, 330))
    bag_est = GeometricEstimate(z=2.2, sigma=0.8, basis='height', metric=True)
    person, item = carried_consistency([PERSON, bag], [PERSON_EST, bag_est])
    # the person: inverse-variance mean with the bag's depth widened by its place on the body
    w_p, w_b = 1 / 0.6 ** 2, 1 / (0.8 ** 2 + ATTACH ** 2)
    assert abs(person.z - (w_p * 3.0 + w_b * 2.2) / (w_p + w_b)) < 1e-9
    assert person.sigma < 0.6 and person.basis == 'height+carried'
    assert item.basis == 'height+carrier' and item.sigma < 0.8
    assert abs(item.z - person.z) < 0.3 < abs(bag_est.z - PERSON_EST.z)


def test_items_that_are_not_on_the_person_are_left_alone():
    far_bag = GeometricEstimate(z=7.0, sigma=0.8, basis='height', metric=True)   # behind him
    bag = _det('handbag', (220, 250, 290, 330))
    outside = _det('handbag', (320, 250, 390, 330))                  # beside the box
    cup = _det('cup', (220, 250, 260, 300))                          # not a worn or held class
    near = GeometricEstimate(z=2.5, sigma=0.5, basis='height', metric=True)
    relative = GeometricEstimate(z=0.004, sigma=0.001, basis='height', metric=False)
    ests = [PERSON_EST, far_bag, near, near]
    assert carried_consistency([PERSON, bag, outside, cup], ests) == ests
    rel = [replace(PERSON_EST, metric=False), relative]
    assert carried_consistency([PERSON, bag], rel) == rel          # no metres: nothing to join


def test_each_item_joins_the_person_it_lies_in_and_a_person_takes_all_of_theirs():
    other = _det('person', (350, 60, 560, 470))
    other_est = GeometricEstimate(z=6.0, sigma=0.9, basis='height', metric=True)
    tie = _det('tie', (180, 120, 220, 300))
    phone = _det('cell phone', (400, 200, 440, 260))
    tie_est = GeometricEstimate(z=2.6, sigma=0.9, basis='height', metric=True)
    phone_est = GeometricEstimate(z=5.0, sigma=1.5, basis='width', metric=True)
    out = carried_consistency([PERSON, other, tie, phone],
                              [PERSON_EST, other_est, tie_est, phone_est])
    assert out[0].basis.endswith('+carried') and out[1].basis.endswith('+carried')
    assert out[0].z < PERSON_EST.z and out[1].z < other_est.z
    assert abs(out[2].z - out[0].z) < 0.4 and abs(out[3].z - out[1].z) < 0.6
