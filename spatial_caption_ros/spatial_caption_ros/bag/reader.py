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
import mmap
import sqlite3
import struct

from rosbags.rosbag2 import Reader
from rosbags.interfaces import MessageDefinitionFormat
import yaml

IMAGE = 'sensor_msgs/msg/Image'
COMPRESSED = 'sensor_msgs/msg/CompressedImage'
CAMERA_INFO = 'sensor_msgs/msg/CameraInfo'
TF = 'tf2_msgs/msg/TFMessage'
MCAP_MAGIC = b'\x89MCAP0\r\n'
# rosbag2 custom_data key (metadata.yaml) of the metres per step of 16UC1 depth images.
DEPTH_UNIT_KEY = 'depth_unit_m'
STORAGE_SUFFIXES = {'.mcap': 'mcap', '.db3': 'sqlite3'}
# Words that mark a depth image topic, and the preferred colour and depth topics among several.
DEPTH_WORDS = ('depth',)
COLOR_PREFERENCE = ('color', 'rgb', 'image_raw', 'image_rect')
DEPTH_PREFERENCE = ('aligned', 'registered')
# A damaged sqlite3 file without a readable row count is read by id until this many in a row
# are missing.
MISSING_ROWS = 1000


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
    data: bytes        # or a memoryview of the storage file's chunk (no copy)


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

    def log_times(self, topic: str) -> list[int]:
        """Log times of a topic's messages in reading order, from the indexes when it can.

        An intact MCAP file has the log time of every message in its message index records and
        a sqlite3 file in its timestamp column: neither needs the (large) messages to be read.
        A damaged recording is read message by message.
        """
        if self._reader_path is not None:
            try:
                times: list[int] = []
                for path in _storage_files(self._reader_path):
                    times += (_mcap_index_times if path.suffix == '.mcap'
                              else _sqlite_times)(path, topic)
                return sorted(times)
            except Exception:   # noqa: BLE001 - an index that cannot be used: read instead
                pass
        return [m.log_time_ns for m in self.messages({topic})]

    def _rosbags_messages(self, topics: set[str], start_ns: int | None,
                          stop_ns: int | None) -> Iterator[RawMessage]:
        with Reader(self._reader_path) as reader:
            conns = [c for c in reader.connections if c.topic in topics]
            if not conns:
                return
            try:
                for conn, stamp, data in reader.messages(conns, start_ns, stop_ns):
                    yield RawMessage(conn.topic, conn.msgtype, stamp, data)
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
    files = _storage_files(path)
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
    return Recording(path, STORAGE_SUFFIXES[files[0].suffix], topics, _custom_data(path),
                     problems, files)


def _custom_data(path: Path) -> dict[str, str]:
    """custom_data of a recording folder's metadata.yaml, read on its own ({} when unusable).

    A damaged storage file beside an intact metadata.yaml keeps what the metadata says (the
    depth unit: without it TUM's 1/5000 m depth would be read as millimetres, 5 times too far).
    """
    try:
        doc = yaml.safe_load((path / 'metadata.yaml').read_text(encoding='utf-8'))
        custom = doc['rosbag2_bagfile_information'].get('custom_data') or {}
        return {str(k): str(v) for k, v in custom.items()}
    except (OSError, yaml.YAMLError, KeyError, TypeError, AttributeError):
        return {}


def _storage_files(path: Path) -> list[Path]:
    """The .mcap/.db3 files of a recording folder (or the file itself), sorted."""
    return sorted(f for f in (path.iterdir() if path.is_dir() else [path])
                  if f.suffix in STORAGE_SUFFIXES)


def _open_with_rosbags(path: Path, reader_path: Path, problems: list[str]) -> Recording:
    with Reader(reader_path) as reader:
        topics = {}
        for name, info in reader.topics.items():
            msgdef = ''
            if info.msgdef.format == MessageDefinitionFormat.MSG:
                msgdef = info.msgdef.data
            topics[name] = TopicInfo(name, info.msgtype or '', info.msgcount, msgdef)
        custom = getattr(getattr(reader.storage, 'metadata', None), 'custom', None) or {}
    files = _storage_files(reader_path)
    storage = STORAGE_SUFFIXES[files[0].suffix] if files else 'unknown'
    return Recording(path, storage, topics, {str(k): str(v) for k, v in custom.items()},
                     problems, [], reader_path)


def _mcap_index_times(path: Path, topic: str) -> list[int]:
    """Log times of a topic's messages from an MCAP file's chunk and message indexes."""
    from mcap.reader import make_reader
    with open(path, 'rb') as f:
        summary = make_reader(f).get_summary()
        if summary is None or not summary.chunk_indexes:
            raise ValueError('no chunk index')
        channels = {c.id for c in summary.channels.values() if c.topic == topic}
        times = []
        for chunk in summary.chunk_indexes:
            for cid, offset in chunk.message_index_offsets.items():
                if cid not in channels:
                    continue
                f.seek(offset)
                head = f.read(15)         # opcode, record length, channel id, entries length
                if head[0] != 0x07:
                    raise ValueError('not a message index record')
                (size,) = struct.unpack_from('<I', head, 11)
                entries = f.read(size)
                times += [t for t, _ in struct.iter_unpack('<QQ', entries)]
    return times


def _sqlite_times(path: Path, topic: str) -> list[int]:
    """Log times of a topic's messages from a rosbag2 sqlite3 file's timestamp column."""
    db = sqlite3.connect(f'file:{path}?mode=ro', uri=True)
    try:
        return [t for (t,) in db.execute(
            'SELECT messages.timestamp FROM messages JOIN topics ON messages.topic_id = '
            'topics.id WHERE topics.name = ? ORDER BY messages.timestamp', (topic,))]
    finally:
        db.close()


class _Cut(Exception):
    """The data ends inside a record."""


def _records(buf, pos: int, end: int) -> Iterator[tuple[int, memoryview, bool]]:
    """(opcode, body, complete) of the MCAP records in buf[pos:end]; a cut record comes last.

    A cut chunk is still returned (complete False): its first records may be whole.
    """
    while pos + 9 <= end:
        op = buf[pos]
        (length,) = struct.unpack_from('<Q', buf, pos + 1)
        body_end = pos + 9 + length
        if body_end > end:
            yield op, memoryview(buf)[pos + 9:end], False
            return
        yield op, memoryview(buf)[pos + 9:body_end], True
        pos = body_end


def _string(body: memoryview, pos: int) -> tuple[str, int]:
    if pos + 4 > len(body):
        raise _Cut
    (n,) = struct.unpack_from('<I', body, pos)
    if pos + 4 + n > len(body):
        raise _Cut
    return bytes(body[pos + 4:pos + 4 + n]).decode('utf-8', 'replace'), pos + 4 + n


def _chunk_records(body: memoryview, complete: bool) -> tuple[bytes, str]:
    """The records inside a chunk body (as far as they are there) and what was lost, if any."""
    if len(body) < 28:
        raise _Cut
    compression, pos = _string(body, 28)
    if pos + 8 > len(body):
        raise _Cut
    (size,) = struct.unpack_from('<Q', body, pos)
    data = bytes(body[pos + 8:pos + 8 + size])
    if compression == '':
        return data, ''
    if compression == 'zstd':
        import zstandard
        try:
            return zstandard.ZstdDecompressor().decompressobj().decompress(data), ''
        except zstandard.ZstdError as exc:
            return b'', f'zstd chunk not readable: {exc}'
    if compression == 'lz4' and complete:
        import lz4.frame
        return lz4.frame.decompress(data), ''
    return b'', f'{compression} chunk cut: its messages are lost'


def _scan_mcap(path: Path, problems: list[str],
               topics_only: dict[str, TopicInfo] | None = None) -> Iterator[RawMessage]:
    """Messages of an MCAP file in file order, without its index, up to the first damage.

    Every whole message is recovered, also those at the start of a chunk cut by a truncation.
    """
    schemas: dict[int, tuple[str, str]] = {}
    channels: dict[int, tuple[str, str]] = {}
    counts: dict[str, int] = {}
    read, lost = 0, ''
    with open(path, 'rb') as f:
        try:
            buf = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError:              # empty file
            buf = b''
        if bytes(buf[:8]) != MCAP_MAGIC:
            problems.append(f'{path.name}: not an MCAP file (no MCAP magic at its start)')
            return
        stack = [_records(buf, len(MCAP_MAGIC), len(buf))]
        while stack:
            try:
                op, body, complete = next(stack[-1])
            except StopIteration:
                stack.pop()
                continue
            try:
                if op == 0x06:              # chunk
                    data, problem = _chunk_records(body, complete)
                    lost = lost or problem
                    stack.append(_records(data, 0, len(data)))
                    if not complete:
                        lost = lost or 'the file ends inside a chunk'
                    continue
                if not complete:
                    lost = lost or 'the file ends inside a record'
                    continue
                if op == 0x03:              # schema
                    (sid,) = struct.unpack_from('<H', body, 0)
                    name, pos = _string(body, 2)
                    _, pos = _string(body, pos)
                    definition, _ = _string(body, pos)
                    schemas[sid] = (name, definition)
                elif op == 0x04:            # channel
                    cid, sid = struct.unpack_from('<HH', body, 0)
                    topic, _ = _string(body, 4)
                    name, definition = schemas.get(sid, ('', ''))
                    channels[cid] = (topic, name)
                    if topics_only is not None and topic not in topics_only:
                        topics_only[topic] = TopicInfo(topic, name, 0, definition)
                elif op == 0x05 and len(body) >= 22:   # message
                    cid, _, log_time = struct.unpack_from('<HIQ', body, 0)
                    if cid not in channels:
                        continue
                    topic, msgtype = channels[cid]
                    read += 1
                    if topics_only is not None:
                        counts[topic] = counts.get(topic, 0) + 1
                        continue
                    yield RawMessage(topic, msgtype, log_time, bytes(body[22:]))
                elif op == 0x02:            # footer
                    break
            except (_Cut, struct.error):
                lost = lost or 'the file ends inside a record'
    if topics_only is not None:
        for topic, n in counts.items():
            info = topics_only[topic]
            topics_only[topic] = TopicInfo(info.name, info.msgtype, n, info.msgdef)
        if lost:
            problems.append(f'{path.name}: {read} whole messages recovered; {lost}')


def _scan_sqlite(path: Path, problems: list[str],
                 topics_only: dict[str, TopicInfo] | None = None) -> Iterator[RawMessage]:
    """Rows of a rosbag2 sqlite3 file one at a time, skipping the rows it cannot read.

    A cut file has an index whose pages are gone, which makes SQLite refuse the whole schema;
    writable_schema (on a read-only connection) skips that check, and rows are then read by id
    until MISSING_ROWS ids in a row are unreadable.
    """
    try:
        db = sqlite3.connect(f'file:{path}?mode=ro', uri=True)
        db.execute('PRAGMA writable_schema=ON')
        names = {tid: (name, kind) for tid, name, kind in
                 db.execute('SELECT id, name, type FROM topics')}
    except sqlite3.DatabaseError as exc:
        problems.append(f'{path.name}: sqlite3: {exc}')
        return
    try:
        last = db.execute('SELECT MAX(id) FROM messages').fetchone()[0] or 0
    except sqlite3.DatabaseError:
        last = None
    counts: dict[str, int] = {}
    bad = missing = 0
    row_id = 0
    while (row_id < last) if last is not None else (missing < MISSING_ROWS):
        row_id += 1
        try:
            row = db.execute('SELECT topic_id, timestamp, data FROM messages WHERE id = ?',
                             (row_id,)).fetchone()
        except sqlite3.DatabaseError:
            row = None
            bad += 1
        missing = 0 if row is not None else missing + 1
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
        read = sum(counts.values())
        if last is None or bad:
            extent = (f'rows read by id until {MISSING_ROWS} in a row were unreadable'
                      if last is None else f'{bad} of {last} rows unreadable')
            problems.append(f'{path.name}: damaged sqlite3 file; {read} messages could be read '
                            f'({extent})')


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
