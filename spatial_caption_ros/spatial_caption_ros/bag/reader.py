"""Open a rosbag2 recording (sqlite3 or MCAP) with `rosbags` and find its camera topics.

No ROS install is needed: messages come out as raw CDR bytes with their topic, type and log
time. A damaged recording is read as far as it can be: unreadable metadata.yaml -> the storage
files are opened on their own; a truncated or corrupt storage file -> its records are scanned up
to the damage. Each such step is recorded in `Recording.problems`, so the report says what was
lost and why.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
import sqlite3

from rosbags.rosbag2 import Reader
from rosbags.interfaces import MessageDefinitionFormat

IMAGE = 'sensor_msgs/msg/Image'
COMPRESSED = 'sensor_msgs/msg/CompressedImage'
CAMERA_INFO = 'sensor_msgs/msg/CameraInfo'
TF = 'tf2_msgs/msg/TFMessage'
STORAGE_SUFFIXES = {'.mcap': 'mcap', '.db3': 'sqlite3'}
# Words that mark a depth image topic, and the preferred colour and depth topics among several.
DEPTH_WORDS = ('depth',)
COLOR_PREFERENCE = ('color', 'rgb', 'image_raw', 'image_rect')
DEPTH_PREFERENCE = ('aligned', 'registered')


class RecordingError(Exception):
    """A recording (or a topic asked for) that cannot be processed at all; names what and why."""


@dataclass(frozen=True)
class TopicInfo:
    name: str
    msgtype: str
    count: int
    msgdef: str = ''          # ros2msg definition stored in the recording ('' when absent)


@dataclass(frozen=True)
class RawMessage:
    topic: str
    msgtype: str
    log_time_ns: int
    data: bytes


@dataclass
class Recording:
    """One opened recording: its topics, custom metadata and what went wrong opening it."""

    path: Path
    storage: str
    topics: dict[str, TopicInfo]
    custom: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    _files: list[Path] = field(default_factory=list, repr=False)
    _reader_path: Path | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return self.path.stem if self.path.is_file() else self.path.name

    def messages(self, topics: set[str], start_ns: int | None = None,
                 stop_ns: int | None = None) -> Iterator[RawMessage]:
        """Messages of these topics in log-time order, in [start_ns, stop_ns).

        Reading stops at the first damage it cannot pass (problem recorded); what came before
        has been delivered.
        """
        if self._reader_path is not None:
            yield from self._rosbags_messages(topics, start_ns, stop_ns)
            return
        for path in self._files:
            scan = _scan_mcap if path.suffix == '.mcap' else _scan_sqlite
            for msg in scan(path, self.problems):
                if msg.topic in topics and (start_ns is None or msg.log_time_ns >= start_ns) \
                        and (stop_ns is None or msg.log_time_ns < stop_ns):
                    yield msg

    def _rosbags_messages(self, topics: set[str], start_ns: int | None,
                          stop_ns: int | None) -> Iterator[RawMessage]:
        with Reader(self._reader_path) as reader:
            conns = [c for c in reader.connections if c.topic in topics]
            if not conns:
                return
            try:
                for conn, stamp, data in reader.messages(conns, start_ns, stop_ns):
                    yield RawMessage(conn.topic, conn.msgtype, stamp, bytes(data))
            except Exception as exc:   # noqa: BLE001 - any storage damage: keep what was read
                self.problems.append(f'{self.path}: reading stopped early: '
                                     f'{type(exc).__name__}: {exc}')


def open_recording(path: str | Path) -> Recording:
    """Open a rosbag2 folder (metadata.yaml + storage files) or one .mcap/.db3 file.

    Raises RecordingError when nothing of it can be read.
    """
    path = Path(path)
    if not path.exists():
        raise RecordingError(f'{path}: no such file or folder')
    problems: list[str] = []
    try:
        return _open_with_rosbags(path, path, problems)
    except Exception as exc:   # noqa: BLE001 - rosbags raises several types; salvage below
        problems.append(f'{path}: {type(exc).__name__}: {exc}')
    files = sorted(f for f in (path.iterdir() if path.is_dir() else [path])
                   if f.suffix in STORAGE_SUFFIXES)
    if not files:
        raise RecordingError(f'{path}: not a readable rosbag2 recording ({problems[-1]}) and '
                             'no .mcap or .db3 storage file in it')
    if path.is_dir() and len(files) == 1:
        try:
            rec = _open_with_rosbags(path, files[0], problems)
            problems.append(f'{path}: metadata.yaml not usable; read {files[0].name} directly')
            return rec
        except Exception as exc:   # noqa: BLE001
            problems.append(f'{files[0]}: {type(exc).__name__}: {exc}')
    topics: dict[str, TopicInfo] = {}
    for f in files:
        for msg in (_scan_mcap if f.suffix == '.mcap' else _scan_sqlite)(f, problems,
                                                                         topics_only=topics):
            del msg
    if not topics:
        raise RecordingError(f'{path}: nothing readable: {"; ".join(problems)}')
    problems.append(f'{path}: damaged; its records were scanned up to the damage')
    return Recording(path, STORAGE_SUFFIXES[files[0].suffix], topics, {}, problems, files)


def _open_with_rosbags(path: Path, reader_path: Path, problems: list[str]) -> Recording:
    with Reader(reader_path) as reader:
        topics = {}
        for name, info in reader.topics.items():
            msgdef = ''
            if info.msgdef.format == MessageDefinitionFormat.MSG:
                msgdef = info.msgdef.data
            topics[name] = TopicInfo(name, info.msgtype or '', info.msgcount, msgdef)
        custom = dict(reader.storage.metadata.custom or {}) \
            if hasattr(reader.storage, 'metadata') else {}
        storage = 'mcap' if any(c.owner.__class__.__name__ == 'McapReader'
                                for c in reader.connections) else 'sqlite3'
        if reader_path.is_dir():
            files = list(reader_path.glob('*.mcap')) + list(reader_path.glob('*.db3'))
            storage = STORAGE_SUFFIXES[files[0].suffix] if files else storage
    return Recording(path, storage, topics, {str(k): str(v) for k, v in custom.items()},
                     problems, [], reader_path)


def _scan_mcap(path: Path, problems: list[str],
               topics_only: dict[str, TopicInfo] | None = None) -> Iterator[RawMessage]:
    """Records of an MCAP file in file order, up to the first damage (no index needed)."""
    from mcap.records import Channel, Message, Schema
    from mcap.stream_reader import StreamReader

    schemas: dict[int, Schema] = {}
    channels: dict[int, tuple[str, str]] = {}
    counts: dict[str, int] = {}
    read = 0
    try:
        with open(path, 'rb') as f:
            for record in StreamReader(f, validate_crcs=True).records:
                if isinstance(record, Schema):
                    schemas[record.id] = record
                elif isinstance(record, Channel):
                    schema = schemas.get(record.schema_id)
                    channels[record.id] = (record.topic, schema.name if schema else '')
                    if topics_only is not None:
                        topics_only[record.topic] = TopicInfo(
                            record.topic, schema.name if schema else '', 0,
                            schema.data.decode('utf-8', 'replace') if schema else '')
                elif isinstance(record, Message) and record.channel_id in channels:
                    topic, msgtype = channels[record.channel_id]
                    read += 1
                    if topics_only is not None:
                        counts[topic] = counts.get(topic, 0) + 1
                        continue
                    yield RawMessage(topic, msgtype, record.log_time, record.data)
    except Exception as exc:   # noqa: BLE001 - truncation or corruption ends the scan
        if topics_only is not None:
            problems.append(f'{path.name}: readable up to message {read}; then '
                            f'{type(exc).__name__}: {exc or "unexpected end of file"}')
    if topics_only is not None:
        for topic, n in counts.items():
            info = topics_only[topic]
            topics_only[topic] = TopicInfo(info.name, info.msgtype, n, info.msgdef)


def _scan_sqlite(path: Path, problems: list[str],
                 topics_only: dict[str, TopicInfo] | None = None) -> Iterator[RawMessage]:
    """Rows of a rosbag2 sqlite3 file one at a time, skipping the rows it cannot read."""
    try:
        db = sqlite3.connect(f'file:{path}?mode=ro', uri=True)
        names = {tid: (name, kind) for tid, name, kind in
                 db.execute('SELECT id, name, type FROM topics')}
        last = db.execute('SELECT MAX(id) FROM messages').fetchone()[0] or 0
    except sqlite3.DatabaseError as exc:
        problems.append(f'{path.name}: sqlite3: {exc}')
        return
    counts: dict[str, int] = {}
    bad = 0
    for row_id in range(1, last + 1):
        try:
            row = db.execute('SELECT topic_id, timestamp, data FROM messages WHERE id = ?',
                             (row_id,)).fetchone()
        except sqlite3.DatabaseError:
            bad += 1
            continue
        if row is None or row[0] not in names:
            continue
        topic, msgtype = names[row[0]]
        if topics_only is not None:
            counts[topic] = counts.get(topic, 0) + 1
            continue
        yield RawMessage(topic, msgtype, int(row[1]), bytes(row[2]))
    db.close()
    if topics_only is not None:
        for topic, msgtype in names.values():
            topics_only[topic] = TopicInfo(topic, msgtype, counts.get(topic, 0))
        if bad:
            problems.append(f'{path.name}: {bad} damaged message rows could not be read')


@dataclass(frozen=True)
class CameraTopics:
    """The topics a recording is processed from (None: not in the recording)."""

    image: str
    image_type: str
    camera_info: str | None
    depth: str | None
    tf: tuple[str, ...]
    notes: tuple[str, ...] = ()


def _pick(candidates: list[str], preference: tuple[str, ...]) -> str:
    for word in preference:
        for name in candidates:
            if word in name.lower():
                return name
    return candidates[0]


def _namespace(topic: str) -> str:
    return topic.rsplit('/', 1)[0]


def find_topics(rec: Recording, image: str | None = None, depth: str | None = None,
                camera_info: str | None = None) -> CameraTopics:
    """The colour, depth, camera_info and tf topics: by name when given, else by type.

    Raises RecordingError naming the topic when one asked for is absent or of a type that cannot
    be used, or when the recording has no colour image topic at all.
    """
    topics = rec.topics
    notes: list[str] = []

    def named(name: str, allowed: tuple[str, ...], what: str) -> str:
        if name not in topics:
            raise RecordingError(f'{rec.path}: {what} topic {name} is not in the recording '
                                 f'(topics: {", ".join(sorted(topics)) or "none"})')
        if topics[name].msgtype not in allowed:
            raise RecordingError(f'{rec.path}: {what} topic {name} has message type '
                                 f'{topics[name].msgtype or "unknown"}; expected '
                                 f'{" or ".join(allowed)}')
        return name

    def of_type(kind: str) -> list[str]:
        return sorted(n for n, t in topics.items() if t.msgtype == kind)

    raw = [n for n in of_type(IMAGE) if not any(w in n.lower() for w in DEPTH_WORDS)]
    compressed = [n for n in of_type(COMPRESSED) if not any(w in n.lower() for w in DEPTH_WORDS)]
    if image:
        image = named(image, (IMAGE, COMPRESSED), 'image')
    elif raw or compressed:
        image = _pick(raw or compressed, COLOR_PREFERENCE)
        others = [n for n in raw + compressed if n != image]
        if others:
            notes.append(f'colour topic {image} chosen; also present: {", ".join(others)} '
                         '(--image-topic picks another)')
    else:
        listed = ', '.join(f'{n} ({t.msgtype})' for n, t in sorted(topics.items()))
        raise RecordingError(f'{rec.path}: no colour image topic ({IMAGE} or {COMPRESSED}); '
                             f'topics: {listed or "none"}')
    if depth:
        depth = named(depth, (IMAGE,), 'depth')
    else:
        depths = [n for n in of_type(IMAGE) if any(w in n.lower() for w in DEPTH_WORDS)]
        depth = _pick(depths, DEPTH_PREFERENCE) if depths else None
    if camera_info:
        camera_info = named(camera_info, (CAMERA_INFO,), 'camera_info')
    else:
        infos = [n for n in of_type(CAMERA_INFO) if 'depth' not in n.lower()] \
            or of_type(CAMERA_INFO)
        near = [n for n in infos if _namespace(n) == _namespace(image)]
        camera_info = (near or infos or [None])[0]
        if camera_info is None:
            notes.append('no camera_info topic: no 3D positions or metric sizes (geometric '
                         'depth needs it)')
    tf = tuple(n for n in of_type(TF) if n in ('/tf', '/tf_static')) or tuple(of_type(TF))
    used = {image, depth, camera_info, *tf}
    unused = [f'{n} ({t.msgtype or "unknown type"})' for n, t in sorted(topics.items())
              if n not in used]
    if unused:
        notes.append(f'topics not used: {", ".join(unused)}')
    return CameraTopics(image, topics[image].msgtype, camera_info, depth, tf, tuple(notes))
