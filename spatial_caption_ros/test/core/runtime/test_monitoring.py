"""Counters that make every input accountable."""

import math

from spatial_caption_ros.core.runtime.monitoring import percentile, SequenceGaps, StageCounters


def test_sequence_gaps_count_messages_replaced_before_the_callback():
    gaps = SequenceGaps()
    assert gaps.gap(b'a', 1) == 0
    assert gaps.gap(b'a', 2) == 0
    assert gaps.gap(b'a', 6) == 3            # 3, 4, 5 never reached the callback
    assert gaps.gap(b'b', 40) == 0           # a second publisher has its own numbering
    assert gaps.gap(b'a', 2) == 0            # numbers went back: the publisher restarted
    assert gaps.gap(b'a', 4) == 1
    assert gaps.gap(b'a', None) == 0         # middleware without sequence numbers


def test_snapshot_totals_add_up_per_reason():
    c = StageCounters()
    c.reject('invalid_image')
    c.reject('invalid_image')
    c.reject('out_of_order')
    c.supersede('camera_info', 4)
    c.error('backend')
    snap = c.snapshot()
    assert snap['rejected'] == 3 and snap['rejected.invalid_image'] == 2
    assert snap['superseded'] == 4 and snap['superseded.camera_info'] == 4
    assert snap['errors'] == 1


def test_percentile_is_the_nearest_rank():
    assert math.isnan(percentile([], 50))
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([float(i) for i in range(101)], 90) == 90.0
    assert percentile([5.0, 7.0], 0) == 5.0 and percentile([5.0, 7.0], 100) == 7.0
    # the ceil(q/100 * n)-th smallest: half of [1, 2, 3, 4] is at or below 2
    assert percentile([4.0, 1.0, 3.0, 2.0], 50) == 2.0
    assert percentile([float(i) for i in range(1, 11)], 90) == 9.0     # 9 of 10 at or below
    assert percentile([float(i) for i in range(1, 11)], 91) == 10.0


def test_in_flight_counts_main_input_messages_not_yet_finished():
    c = StageCounters()
    c.received = 10
    c.processed, c.dropped_stale = 5, 2
    c.reject('invalid_image')                          # a main-input message
    c.error('backend')                                 # failed while processing
    c.reject('invalid_camera_info', main_input=False)  # a side input: not in the balance
    c.error('pace_timeout', main_input=False)
    assert c.finished == 9 and c.in_flight == 1
    snap = c.snapshot()
    assert snap['in_flight'] == 1 and snap['rejected'] == 2 and snap['errors'] == 2
