"""Write the results of a recording as a rosbag2 recording in MCAP storage.

Every connection carries its full ros2msg definition (spatial_caption_interfaces types from
their .msg files, standard types from rosbags' Kilted type store), so `ros2 bag info/play` and
Foxglove read it without our packages installed.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
import shutil

from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import get_types_from_msg, get_typestore, Stores
from rosbags.typesys.store import Typestore

INTERFACES = 'spatial_caption_interfaces'


def _interface_msg_dir() -> Path:
    """The installed .msg files of spatial_caption_interfaces (ament share folder)."""
    from ament_index_python.packages import get_package_share_directory
    return Path(get_package_share_directory(INTERFACES)) / 'msg'


def typestore() -> Typestore:
    """Kilted's standard types plus spatial_caption_interfaces."""
    store = get_typestore(Stores.ROS2_KILTED)
    types = {}
    for path in sorted(_interface_msg_dir().glob('*.msg')):
        types.update(get_types_from_msg(path.read_text(encoding='utf-8'),
                                        f'{INTERFACES}/msg/{path.stem}'))
    store.register(types)
    return store


class McapOutput:
    """A new rosbag2 folder with one MCAP file; topics are added on first use."""

    def __init__(self, path: Path, custom: dict[str, str] | None = None) -> None:
        self.path = Path(path)
        if self.path.exists():    # derived from the per-frame results: rewritten whole
            shutil.rmtree(self.path)
        self.store = typestore()
        self.writer = Writer(self.path, version=9, storage_plugin=StoragePlugin.MCAP)
        for key, value in (custom or {}).items():
            self.writer.set_custom_data(key, value)
        self.writer.open()
        self._connections = {}
        self.counts: dict[str, int] = {}

    def write(self, topic: str, msgtype: str, log_time_ns: int, data: bytes,
              msgdef: str = '') -> None:
        """One CDR message; msgdef: the recording's own definition of a passed-through type."""
        conn = self._connections.get(topic)
        if conn is None:
            if msgtype not in self.store.fielddefs and msgdef:
                self.store.register(get_types_from_msg(msgdef.split('\n' + '=' * 80)[0],
                                                       msgtype))
            conn = self._connections[topic] = self.writer.add_connection(
                topic, msgtype, typestore=self.store)
        self.writer.write(conn, log_time_ns, data)
        self.counts[topic] = self.counts.get(topic, 0) + 1

    def write_all(self, messages: Iterable[tuple[str, str, int, bytes]]) -> None:
        for topic, msgtype, stamp, data in messages:
            self.write(topic, msgtype, stamp, data)

    def close(self) -> None:
        self.writer.close()
