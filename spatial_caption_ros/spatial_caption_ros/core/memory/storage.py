"""SQLite storage of the memory: objects, change events and keyframes, crash-safe.

WAL journal mode with synchronous=NORMAL: each update is one transaction, so a process killed
at any instant (kill -9) leaves the file at the last committed update, never half of one (a
power cut may lose the last transactions, not the file). `:memory:` keeps everything in RAM
(tests, or a node that must not persist).

On open the file is checked (`PRAGMA quick_check` and the schema version); a file that is not a
database, is damaged or has another schema is renamed to `<name>.corrupt-<UTC time>` (with its
-wal/-shm files), the reason is kept in `recovered_from` for the node to log as an error, and a
fresh database is started. Nothing is deleted.
"""

from __future__ import annotations

from collections import deque
import datetime
import json
import os
from pathlib import Path
import sqlite3

import numpy as np

from spatial_caption_ros.core.errors import SpatialCaptionError
from spatial_caption_ros.core.memory.keyframes import Features, Keyframe
from spatial_caption_ros.core.memory.store import Change, MemoryObject, ObjectSnapshot

MEMORY = ':memory:'
SCHEMA_VERSION = 2
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS objects (
  id INTEGER PRIMARY KEY, votes TEXT NOT NULL, position BLOB NOT NULL, covariance BLOB NOT NULL,
  first_seen INTEGER NOT NULL, last_seen INTEGER NOT NULL, times_seen INTEGER NOT NULL,
  state TEXT NOT NULL, frames TEXT NOT NULL, missed_in_view INTEGER NOT NULL,
  misses_total INTEGER NOT NULL, evidence TEXT NOT NULL DEFAULT '{}');
CREATE TABLE IF NOT EXISTS changes (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, stamp INTEGER NOT NULL, kind TEXT NOT NULL,
  object TEXT NOT NULL, previous TEXT, evidence TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS changes_stamp ON changes (stamp);
CREATE TABLE IF NOT EXISTS keyframes (
  id INTEGER PRIMARY KEY, stamp INTEGER NOT NULL, points BLOB NOT NULL,
  descriptors BLOB NOT NULL, signature TEXT NOT NULL, pose TEXT NOT NULL,
  object_ids TEXT NOT NULL);
"""


class StorageError(SpatialCaptionError):
    """The memory database cannot be opened or written (disk full, permissions)."""


def _now_tag() -> str:
    return datetime.datetime.now(datetime.UTC).strftime('%Y%m%dT%H%M%SZ')


class MemoryDatabase:
    """One SQLite file (or :memory:) holding the memory; one writer thread at a time."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.recovered_from = ''      # why an existing file was moved aside, where to
        try:
            self.conn = self._open()
        except sqlite3.DatabaseError as exc:
            if path == MEMORY:
                raise StorageError(f'cannot create an in-memory database: {exc}') from exc
            self.recovered_from = self._move_aside(str(exc))
            try:
                self.conn = self._open()
            except sqlite3.Error as exc2:
                raise StorageError(f'cannot create a fresh memory database {path}: '
                                   f'{exc2}') from exc2

    def _open(self) -> sqlite3.Connection:
        if self.path != MEMORY:
            parent = Path(self.path).expanduser().parent
            try:
                parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StorageError(f'cannot create the folder of {self.path}: {exc}') from exc
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        try:
            if self.path != MEMORY:
                mode = conn.execute('PRAGMA journal_mode=WAL').fetchone()[0]
                if mode.lower() != 'wal':
                    raise sqlite3.DatabaseError(f'journal mode is {mode}, WAL refused')
                conn.execute('PRAGMA synchronous=NORMAL')
                check = conn.execute('PRAGMA quick_check').fetchone()[0]
                if check != 'ok':
                    raise sqlite3.DatabaseError(f'integrity check failed: {check}')
            conn.executescript(_SCHEMA)
            row = conn.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
            if row is not None and row[0] == '1':
                # version 1 lacked the evidence column (size, sightings in view): add it
                conn.execute("ALTER TABLE objects ADD COLUMN evidence TEXT NOT NULL "
                             "DEFAULT '{}'")
                conn.execute("UPDATE meta SET value=? WHERE key='schema'",
                             (str(SCHEMA_VERSION),))
                row = (str(SCHEMA_VERSION),)
            if row is None:
                conn.execute("INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
            elif row[0] != str(SCHEMA_VERSION):
                raise sqlite3.DatabaseError(f'schema version {row[0]}, expected '
                                            f'{SCHEMA_VERSION}')
            conn.execute('SELECT id, votes, position, covariance, first_seen, last_seen, '
                         'times_seen, state, frames, missed_in_view, misses_total, evidence '
                         'FROM objects '
                         'LIMIT 1').fetchall()
        except sqlite3.DatabaseError:
            conn.close()
            raise
        return conn

    def _move_aside(self, reason: str) -> str:
        target = f'{self.path}.corrupt-{_now_tag()}'
        for suffix in ('', '-wal', '-shm'):
            if os.path.exists(self.path + suffix):
                try:
                    os.replace(self.path + suffix, target + suffix)
                except OSError as exc:
                    raise StorageError(f'memory database {self.path} is unusable ({reason}) and '
                                       f'cannot be moved aside: {exc}') from exc
        return f'{self.path} was unusable ({reason}); moved to {target}, started a fresh one'

    def close(self) -> None:
        self.conn.close()

    # ------------------------------------------------------------ writing

    def write(self, objects: list[MemoryObject], removed: set[int], changes: list[Change],
              keyframes: list[Keyframe] = (), dropped_keyframes: list[int] = (),
              forget_changes_before: int = 0, max_changes: int = 0) -> None:
        """One update in one transaction: all of it is on disk afterwards, or none of it."""
        try:
            c = self.conn
            c.execute('BEGIN IMMEDIATE')
            try:
                c.executemany('INSERT OR REPLACE INTO objects VALUES (?,?,?,?,?,?,?,?,?,?,?,?)',
                              [_object_row(o) for o in objects])
                if removed:
                    c.executemany('DELETE FROM objects WHERE id=?', [(i,) for i in removed])
                c.executemany('INSERT INTO changes (stamp, kind, object, previous, evidence) '
                              'VALUES (?,?,?,?,?)', [_change_row(ch) for ch in changes])
                c.executemany('INSERT OR REPLACE INTO keyframes VALUES (?,?,?,?,?,?,?)',
                              [_keyframe_row(k) for k in keyframes])
                if dropped_keyframes:
                    c.executemany('DELETE FROM keyframes WHERE id=?',
                                  [(i,) for i in dropped_keyframes])
                if forget_changes_before:
                    c.execute('DELETE FROM changes WHERE stamp < ?', (forget_changes_before,))
                if max_changes and changes:
                    c.execute('DELETE FROM changes WHERE seq <= (SELECT MAX(seq) FROM changes)'
                              ' - ?', (max_changes,))
                c.execute('COMMIT')
            except BaseException:
                c.execute('ROLLBACK')
                raise
        except sqlite3.Error as exc:
            raise StorageError(f'writing the memory database {self.path} failed: {exc}') from exc

    # ------------------------------------------------------------ reading

    def load(self, frames_per_object: int) -> tuple[dict[int, MemoryObject], deque[Change],
                                                    list[Keyframe]]:
        """Everything stored, to continue where the last run stopped."""
        objects = {}
        for row in self.conn.execute('SELECT * FROM objects ORDER BY id'):
            obj = MemoryObject(
                id=row[0], class_votes=json.loads(row[1]),
                position=np.frombuffer(row[2], np.float64).copy(),
                covariance=np.frombuffer(row[3], np.float64).reshape(3, 3).copy(),
                first_seen_ns=row[4], last_seen_ns=row[5], times_seen=row[6], state=row[7],
                frames=deque(json.loads(row[8]), maxlen=frames_per_object),
                missed_in_view=row[9], misses_total=row[10])
            evidence = json.loads(row[11])
            obj.size = float(evidence.get('size', 0.0))
            obj.size_n = int(evidence.get('size_n', 0))
            obj.seen_in_view = int(evidence.get('seen_in_view', 0))
            obj.miss_since_ns = int(evidence.get('miss_since_ns', 0))
            objects[obj.id] = obj
        changes = deque(_row_change(r) for r in self.conn.execute(
            'SELECT stamp, kind, object, previous, evidence FROM changes ORDER BY seq'))
        keyframes = [_row_keyframe(r) for r in self.conn.execute(
            'SELECT * FROM keyframes ORDER BY id')]
        return objects, changes, keyframes

    def counts(self) -> dict[str, int]:
        return {t: self.conn.execute(f'SELECT COUNT(*) FROM {t}').fetchone()[0]
                for t in ('objects', 'changes', 'keyframes')}


def _object_row(o: MemoryObject) -> tuple:
    return (o.id, json.dumps(o.class_votes), np.asarray(o.position, np.float64).tobytes(),
            np.asarray(o.covariance, np.float64).tobytes(), o.first_seen_ns, o.last_seen_ns,
            o.times_seen, o.state, json.dumps(list(o.frames)), o.missed_in_view,
            o.misses_total, json.dumps({'size': o.size, 'size_n': o.size_n,
                                        'seen_in_view': o.seen_in_view,
                                        'miss_since_ns': o.miss_since_ns}))


def _snapshot_json(s: ObjectSnapshot) -> str:
    return json.dumps({'id': s.id, 'class_name': s.class_name,
                       'class_confidence': s.class_confidence, 'position': s.position,
                       'covariance': s.covariance, 'uncertainty': s.uncertainty,
                       'first_seen_ns': s.first_seen_ns, 'last_seen_ns': s.last_seen_ns,
                       'times_seen': s.times_seen, 'state': s.state, 'frames': s.frames})


def _change_row(ch: Change) -> tuple:
    return (ch.stamp_ns, ch.kind, _snapshot_json(ch.object),
            json.dumps(ch.previous_position) if ch.previous_position is not None else None,
            ch.evidence)


def _row_change(r: tuple) -> Change:
    d = json.loads(r[2])
    snap = ObjectSnapshot(d['id'], d['class_name'], d['class_confidence'],
                          tuple(d['position']), tuple(d['covariance']), d['uncertainty'],
                          d['first_seen_ns'], d['last_seen_ns'], d['times_seen'], d['state'],
                          tuple(d['frames']))
    previous = tuple(json.loads(r[3])) if r[3] is not None else None
    return Change(r[1], r[0], snap, previous, r[4])


def _keyframe_row(k: Keyframe) -> tuple:
    return (k.id, k.stamp_ns, k.features.points.astype(np.float32).tobytes(),
            k.features.descriptors.astype(np.uint8).tobytes(), json.dumps(k.signature),
            json.dumps(list(k.pose)), json.dumps(list(k.object_ids)))


def _row_keyframe(r: tuple) -> Keyframe:
    points = np.frombuffer(r[2], np.float32).reshape(-1, 2).copy()
    descriptors = np.frombuffer(r[3], np.uint8).reshape(-1, 32).copy()
    return Keyframe(r[0], r[1], Features(points, descriptors), json.loads(r[4]),
                    tuple(json.loads(r[5])), tuple(json.loads(r[6])))
