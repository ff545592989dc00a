"""Measure best-effort image delivery between two processes, per DDS transport configuration.

Why: with Fast DDS's default transports, large best-effort samples (camera images with sensor-data
QoS) are mostly lost between processes (../shared/docs/ENVIRONMENT.md). This command publishes
synthetic images at a camera rate from one process to another and prints how many arrived and
their latency, for each configuration side by side in one run:

  default     Fast DDS's built-in transports (UDPv4 + 512 KB shared memory)
  large_data  FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA
  profile     the shipped config/fastdds_large_images.xml (FASTDDS_DEFAULT_PROFILES_FILE)

  spatial-caption-dds-check --sizes 640x480,1920x1080 --rate 30 --frames 300

Use it on a robot to check that the camera -> perception link delivers before blaming a node.
Traffic stays on this machine unless ROS_AUTOMATIC_DISCOVERY_RANGE says otherwise.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass
import json
import os
import random
import subprocess
import sys
import time

from spatial_caption_ros.core.runtime.monitoring import percentile
from spatial_caption_ros.core.runtime.resources import package_file

PROFILE = 'config/fastdds_large_images.xml'
CONFIGS = ('default', 'large_data', 'profile')
TOPIC = 'dds_check/image'
# Seconds the subscriber keeps listening after the publisher said it is done (late samples).
DRAIN_S = 1.0
# Seconds both sides wait for each other (discovery) before giving up.
MATCH_TIMEOUT_S = 20.0
_DDS_VARS = ('FASTDDS_BUILTIN_TRANSPORTS', 'FASTDDS_DEFAULT_PROFILES_FILE',
             'RMW_FASTRTPS_USE_QOS_FROM_XML', 'SKIP_DEFAULT_XML_FILE')


@dataclass
class Delivery:
    """What one publisher -> subscriber run delivered."""

    config: str
    width: int
    height: int
    encoding: str
    rate_hz: float
    published: int
    received: int
    latency_mean_ms: float | None
    latency_p99_ms: float | None
    publish_rate_hz: float

    @property
    def delivered(self) -> float:
        return self.received / self.published if self.published else 0.0


def profile_path() -> str:
    """Absolute path of the shipped Fast DDS profile."""
    return str(package_file(PROFILE))


def dds_environment(config: str, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a process that uses `config` (one of CONFIGS)."""
    env = {k: v for k, v in (base if base is not None else os.environ).items()
           if k not in _DDS_VARS}
    # Never pick up a DEFAULT_FASTDDS_PROFILES.xml lying in the working directory.
    env['SKIP_DEFAULT_XML_FILE'] = '1'
    if config == 'large_data':
        env['FASTDDS_BUILTIN_TRANSPORTS'] = 'LARGE_DATA'
    elif config == 'profile':
        env['FASTDDS_DEFAULT_PROFILES_FILE'] = profile_path()
    elif config != 'default':
        raise ValueError(f'unknown DDS configuration {config!r}; use one of {CONFIGS}')
    env.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    return env


def _qos():
    from spatial_caption_ros.ros.qos import qos_profile
    return qos_profile('sensor_data')


def _wait(node, ready, timeout: float) -> bool:
    import rclpy
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return True
        rclpy.spin_once(node, timeout_sec=0.05)
    return ready()


def run_publisher(width: int, height: int, encoding: str, rate: float, frames: int) -> int:
    """Publish `frames` images at `rate` Hz (best effort) once a subscriber matched."""
    import array

    import numpy as np
    import rclpy
    from sensor_msgs.msg import Image
    from std_msgs.msg import UInt32

    from spatial_caption_ros.ros.qos import qos_profile

    channels = {'rgb8': 3, 'bgr8': 3, 'mono8': 1, 'rgba8': 4, 'bgra8': 4}[encoding]
    rclpy.init()
    node = rclpy.create_node('dds_check_publisher')
    pub = node.create_publisher(Image, TOPIC, _qos())
    done = node.create_publisher(UInt32, 'dds_check/done', qos_profile('latched'))
    msg = Image(width=width, height=height, encoding=encoding, step=width * channels)
    msg.header.frame_id = 'dds_check'
    pixels = np.random.default_rng(0).integers(0, 256, width * height * channels, np.uint8)
    buf = array.array('B')
    buf.frombytes(pixels.tobytes())
    msg.data = buf
    if not _wait(node, lambda: pub.get_subscription_count() >= 1, MATCH_TIMEOUT_S):
        print(json.dumps({'error': 'no subscriber matched'}), flush=True)
        return 1
    time.sleep(0.5)          # let the reader finish matching every locator
    period = 1.0 / rate
    start = time.monotonic()
    for i in range(frames):
        msg.header.stamp = node.get_clock().now().to_msg()
        pub.publish(msg)
        delay = start + (i + 1) * period - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    elapsed = time.monotonic() - start
    done.publish(UInt32(data=frames))
    print(json.dumps({'published': frames, 'publish_rate_hz': frames / elapsed}), flush=True)
    _wait(node, lambda: False, DRAIN_S + 1.0)   # keep serving late fragments, then leave
    node.destroy_node()
    rclpy.try_shutdown()
    return 0


def run_subscriber(timeout: float) -> int:
    """Count images until the publisher says it is done; print counts and latencies as JSON."""
    import rclpy
    from sensor_msgs.msg import Image
    from std_msgs.msg import UInt32

    from spatial_caption_ros.ros.qos import qos_profile

    rclpy.init()
    node = rclpy.create_node('dds_check_subscriber')
    latencies: list[float] = []
    done: list[int] = []

    def on_image(msg: Image) -> None:
        now = node.get_clock().now().nanoseconds
        sent = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        latencies.append((now - sent) / 1e6)

    node.create_subscription(Image, TOPIC, on_image, _qos())
    node.create_subscription(UInt32, 'dds_check/done', lambda m: done.append(m.data),
                             qos_profile('latched'))
    _wait(node, lambda: bool(done), timeout)
    _wait(node, lambda: False, DRAIN_S)
    lat = sorted(latencies)
    print(json.dumps({
        'received': len(lat),
        'latency_mean_ms': sum(lat) / len(lat) if lat else None,
        'latency_p99_ms': percentile(lat, 99) if lat else None,
    }), flush=True)
    node.destroy_node()
    rclpy.try_shutdown()
    return 0


def _last_json(text: str) -> dict:
    for line in reversed(text.strip().splitlines()):
        if line.startswith('{'):
            return json.loads(line)
    raise RuntimeError(f'no result printed; output was:\n{text[-2000:]}')


def measure(config: str, width: int, height: int, rate: float = 30.0, frames: int = 300,
            encoding: str = 'rgb8', timeout: float | None = None) -> Delivery:
    """Run one publisher and one subscriber process with `config`; return what was delivered."""
    env = dds_environment(config)
    env['ROS_DOMAIN_ID'] = str(random.randint(1, 200))
    timeout = timeout or (MATCH_TIMEOUT_S + frames / rate * 3 + 10)
    me = [sys.executable, '-m', 'spatial_caption_ros.tools.dds_check']
    sub = subprocess.Popen(me + ['--role', 'sub', '--timeout', str(timeout)], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    pub = subprocess.Popen(me + ['--role', 'pub', '--sizes', f'{width}x{height}',
                                 '--rate', str(rate), '--frames', str(frames),
                                 '--encoding', encoding], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        pub_out, _ = pub.communicate(timeout=timeout + 10)
        sub_out, _ = sub.communicate(timeout=timeout + 10)
    finally:
        for p in (pub, sub):
            if p.poll() is None:
                p.kill()
                p.wait()
    p, s = _last_json(pub_out), _last_json(sub_out)
    if 'error' in p:
        raise RuntimeError(f'{config} {width}x{height}: publisher: {p["error"]}')
    return Delivery(config=config, width=width, height=height, encoding=encoding, rate_hz=rate,
                    published=p['published'], received=s['received'],
                    latency_mean_ms=s['latency_mean_ms'], latency_p99_ms=s['latency_p99_ms'],
                    publish_rate_hz=p['publish_rate_hz'])


def format_table(rows: list[Delivery]) -> str:
    """A Markdown table of the measured deliveries."""
    def ms(v):
        return '-' if v is None else f'{v:.1f}'
    lines = ['| configuration | image | published | received | delivered | mean latency ms '
             '| p99 latency ms | publish rate Hz |', '|---|---|---|---|---|---|---|---|']
    for r in rows:
        lines.append(f'| {r.config} | {r.width}x{r.height} {r.encoding} | {r.published} | '
                     f'{r.received} | {100 * r.delivered:.0f}% | {ms(r.latency_mean_ms)} | '
                     f'{ms(r.latency_p99_ms)} | {r.publish_rate_hz:.1f} |')
    return '\n'.join(lines)


def _sizes(text: str) -> list[tuple[int, int]]:
    out = []
    for item in text.split(','):
        w, _, h = item.strip().partition('x')
        out.append((int(w), int(h)))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog='spatial-caption-dds-check',
                                description=__doc__.split('\n\n')[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--sizes', default='640x480,1920x1080', help='WxH[,WxH...]')
    p.add_argument('--rate', type=float, default=30.0, help='frames per second (default 30)')
    p.add_argument('--frames', type=int, default=300, help='frames per run (default 300)')
    p.add_argument('--encoding', default='rgb8', choices=('rgb8', 'bgr8', 'mono8', 'rgba8',
                                                          'bgra8'))
    p.add_argument('--configs', default=','.join(CONFIGS),
                   help=f'comma-separated, from: {", ".join(CONFIGS)}')
    p.add_argument('--json', help='also write the results to this JSON file')
    p.add_argument('--role', choices=('pub', 'sub'), help=argparse.SUPPRESS)
    p.add_argument('--timeout', type=float, default=120.0, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.role == 'pub':
        (w, h), = _sizes(args.sizes)
        return run_publisher(w, h, args.encoding, args.rate, args.frames)
    if args.role == 'sub':
        return run_subscriber(args.timeout)
    rows = []
    for width, height in _sizes(args.sizes):
        for config in args.configs.split(','):
            row = measure(config.strip(), width, height, args.rate, args.frames, args.encoding)
            print(f'{row.config:>10} {width}x{height}: {row.received}/{row.published} '
                  f'delivered', file=sys.stderr, flush=True)
            rows.append(row)
    print(format_table(rows))
    if args.json:
        with open(args.json, 'w', encoding='utf-8') as f:
            json.dump([asdict(r) for r in rows], f, indent=1)
    return 0


if __name__ == '__main__':
    sys.exit(main())
