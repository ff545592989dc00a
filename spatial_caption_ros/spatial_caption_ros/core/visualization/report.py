"""A self-contained HTML report of a processed recording: nothing is fetched when it is viewed.

Images are inlined as base64 JPEG, plots are inline SVG drawn here, there is no script and no
external stylesheet. Per recording: the caption timeline, annotated keyframes, objects over time,
the depth source and latency of every frame, and what was skipped and why; then the run's
parameters and warnings.
"""

from __future__ import annotations

import base64
from collections import Counter
from html import escape
import math
from typing import Any

# Colours of the plots (the report test looks for TIMELINE_COLOR in a screenshot).
TIMELINE_COLOR = '#1f77b4'
UNVERIFIED_COLOR = '#ff7f0e'
SERIES_COLORS = ('#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f',
                 '#bcbd22', '#17becf', '#ff7f0e')
DEPTH_COLORS = {'sensor': '#2ca02c', 'depth_anything_v2': '#9467bd', 'geometric': '#1f77b4',
                'none': '#7f7f7f'}
PLOT_W, PLOT_H, PAD = 1000, 180, 40
TOP_CLASSES = 8

STYLE = """
body{font-family:sans-serif;margin:16px;color:#222;max-width:1100px}
h1{font-size:22px}h2{font-size:18px;border-bottom:1px solid #ccc;margin-top:28px}
h3{font-size:15px;margin-bottom:4px}
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ddd;padding:3px 6px;
text-align:left;vertical-align:top}
.grid{display:grid;grid-template-columns:repeat(3,1fr);gap:8px}
figure{margin:0}figure img{width:100%;display:block}figcaption{font-size:12px}
.scroll{max-height:320px;overflow:auto;border:1px solid #ddd}
.warn{color:#a40}.small{font-size:12px;color:#555}pre{font-size:11px;background:#f6f6f6;
padding:8px;overflow:auto;max-height:400px}
"""


def _t(meta: dict[str, Any], t0: int) -> float:
    return (meta['stamp_ns'] - t0) / 1e9


def _axes(x_max: float, y_max: float, y_label: str) -> list[str]:
    """Frame, ticks and labels of a PLOT_W x PLOT_H plot; x in seconds."""
    out = [f'<rect x="{PAD}" y="10" width="{PLOT_W - 2 * PAD}" height="{PLOT_H - PAD - 10}" '
           'fill="none" stroke="#999"/>',
           f'<text x="{PLOT_W / 2}" y="{PLOT_H - 4}" font-size="11" text-anchor="middle">'
           'time since the first frame (s)</text>',
           f'<text x="{PAD + 4}" y="22" font-size="11">{escape(y_label)}</text>']
    for i in range(6):
        x = PAD + i * (PLOT_W - 2 * PAD) / 5
        out.append(f'<text x="{x:.0f}" y="{PLOT_H - PAD + 14}" font-size="10" '
                   f'text-anchor="middle">{x_max * i / 5:.{2 if x_max < 5 else 1}f}</text>')
    out.append(f'<text x="{PAD - 4}" y="18" font-size="10" text-anchor="end">{y_max:.3g}</text>')
    out.append(f'<text x="{PAD - 4}" y="{PLOT_H - PAD}" font-size="10" text-anchor="end">0</text>')
    return out


def _xy(t: float, v: float, x_max: float, y_max: float) -> tuple[float, float]:
    x = PAD + (t / x_max if x_max > 0 else 0.0) * (PLOT_W - 2 * PAD)
    y = PLOT_H - PAD - (v / y_max if y_max > 0 else 0.0) * (PLOT_H - PAD - 10)
    return x, y


def _svg(body: list[str], name: str, height: int = PLOT_H) -> str:
    return (f'<svg id="{name}" xmlns="http://www.w3.org/2000/svg" width="100%" '
            f'viewBox="0 0 {PLOT_W} {height}" role="img">{"".join(body)}</svg>')


def _lines(series: dict[str, list[tuple[float, float]]], x_max: float, y_label: str,
           name: str) -> str:
    y_max = max((v for pts in series.values() for _, v in pts), default=1.0) or 1.0
    body = _axes(x_max, y_max, y_label)
    for i, (label, pts) in enumerate(series.items()):
        color = SERIES_COLORS[i % len(SERIES_COLORS)]
        path = ' '.join(f'{x:.1f},{y:.1f}' for x, y in (_xy(t, v, x_max, y_max) for t, v in pts))
        body.append(f'<polyline points="{path}" fill="none" stroke="{color}" '
                    'stroke-width="1.5"/>')
        body.append(f'<text x="{PLOT_W - PAD - 150}" y="{24 + 13 * i}" font-size="11" '
                    f'fill="{color}">{escape(label)}</text>')
    return _svg(body, name)


def caption_runs(frames: list[dict[str, Any]], t0: int) -> list[dict[str, Any]]:
    """Consecutive frames with the same caption text, as one entry each."""
    runs: list[dict[str, Any]] = []
    for m in frames:
        text = m['caption']['text']
        if runs and runs[-1]['text'] == text:
            runs[-1]['end'] = _t(m, t0)
            runs[-1]['frames'] += 1
            continue
        runs.append({'start': _t(m, t0), 'end': _t(m, t0), 'text': text, 'frames': 1,
                     'verified': m['caption']['verified'],
                     'generator': m['caption']['generator']})
    return runs


def timeline_svg(frames: list[dict[str, Any]], t0: int, x_max: float) -> str:
    """One tick per captioned frame (orange: not verified) and a band per distinct caption."""
    height = 90
    body = [f'<rect x="{PAD}" y="30" width="{PLOT_W - 2 * PAD}" height="24" fill="#eef3f8"/>']
    runs = caption_runs(frames, t0)
    for i, run in enumerate(runs):
        x1 = _xy(run['start'], 0, x_max, 1)[0]
        # a caption holds until the next one starts
        x2 = _xy(runs[i + 1]['start'] if i + 1 < len(runs) else run['end'], 0, x_max, 1)[0]
        x2 = max(x1 + 3, x2)
        shade = TIMELINE_COLOR if i % 2 == 0 else '#6baed6'
        body.append(f'<rect x="{x1:.1f}" y="30" width="{x2 - x1:.1f}" height="24" '
                    f'fill="{shade}"><title>{escape(run["text"])}</title></rect>')
    for m in frames:
        x = _xy(_t(m, t0), 0, x_max, 1)[0]
        color = TIMELINE_COLOR if m['caption']['verified'] else UNVERIFIED_COLOR
        body.append(f'<line x1="{x:.1f}" y1="58" x2="{x:.1f}" y2="70" stroke="{color}"/>')
    body.append(f'<text x="{PAD}" y="20" font-size="12">captions over time: a band per '
                'distinct caption, a tick per frame (orange: not verified)</text>')
    body.append(f'<text x="{PAD}" y="86" font-size="10">0 s</text>')
    body.append(f'<text x="{PLOT_W - PAD}" y="86" font-size="10" text-anchor="end">'
                f'{x_max:.1f} s</text>')
    return _svg(body, 'timeline', height)


def depth_svg(frames: list[dict[str, Any]], t0: int, x_max: float) -> str:
    """A strip coloured by each frame's depth source; a dot where the depth is metric."""
    height = 70
    body = [f'<text x="{PAD}" y="14" font-size="12">depth source per frame (dot: metric '
            'depth for every object)</text>']
    width = max(2.0, (PLOT_W - 2 * PAD) / max(1, len(frames)))
    for m in frames:
        x = min(_xy(_t(m, t0), 0, x_max, 1)[0], PLOT_W - PAD - width)
        color = DEPTH_COLORS.get(m['depth_source'], '#000')
        body.append(f'<rect x="{x:.1f}" y="22" width="{width:.1f}" height="20" '
                    f'fill="{color}"/>')
        if m['depth_metric']:
            body.append(f'<circle cx="{x + width / 2:.1f}" cy="50" r="2" fill="#333"/>')
    counts = Counter(m['depth_source'] for m in frames)
    x = PAD
    for source, n in sorted(counts.items()):
        body.append(f'<rect x="{x}" y="58" width="10" height="10" '
                    f'fill="{DEPTH_COLORS.get(source, "#000")}"/><text x="{x + 14}" y="67" '
                    f'font-size="11">{escape(source)}: {n} frames</text>')
        x += 200
    return _svg(body, 'depth-source', height)


def _stats(values: list[float]) -> str:
    if not values:
        return 'n/a'
    ordered = sorted(values)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(math.ceil(p / 100 * len(ordered))) - 1)]
    return (f'mean {sum(values) / len(values):.1f}, median {pct(50):.1f}, p95 {pct(95):.1f}, '
            f'max {ordered[-1]:.1f}')


def _keyframes(keyframes: list[tuple[dict[str, Any], bytes]], t0: int) -> str:
    cells = []
    for meta, jpeg in keyframes:
        data = base64.b64encode(jpeg).decode('ascii')
        cells.append(f'<figure><img alt="annotated frame {escape(meta["name"])}" '
                     f'src="data:image/jpeg;base64,{data}"><figcaption>'
                     f'{_t(meta, t0):.2f} s: {escape(meta["caption"]["text"])}'
                     '</figcaption></figure>')
    return f'<div class="grid" id="keyframes">{"".join(cells)}</div>'


def _list(items: list[str], empty: str) -> str:
    if not items:
        return f'<p class="small">{escape(empty)}</p>'
    return '<ul>' + ''.join(f'<li class="warn">{escape(i)}</li>' for i in items) + '</ul>'


def recording_section(summary: dict[str, Any], frames: list[dict[str, Any]],
                      keyframes: list[tuple[dict[str, Any], bytes]]) -> str:
    """The report part of one recording."""
    done = [m for m in frames if not m.get('skipped')]
    t0 = min((m['stamp_ns'] for m in done), default=0)
    x_max = max((_t(m, t0) for m in done), default=0.0) or 1.0
    topics = summary['topics']
    rows = [('recording', summary['recording']), ('storage', summary['storage']),
            ('colour topic', f'{topics["image"]} ({topics["image_type"]})'),
            ('camera_info', topics['camera_info'] or 'none'),
            ('depth topic', topics['depth'] or 'none (geometric or model depth)'),
            ('tf topics', ', '.join(topics['tf']) or 'none'),
            ('frames', f'{summary["processed"]} processed of {summary["selected"]} selected '
                       f'({summary["colour_messages"]} colour messages); '
                       f'{summary["skipped_frames"]} skipped; {summary["resumed_frames"]} '
                       'taken from an interrupted run'),
            ('output', f'{summary["output_mcap"]} '
                       f'({sum(summary["output_topics"].values())} messages)')]
    parts = [f'<h2>{escape(summary["name"])}</h2>', '<table>']
    parts += [f'<tr><th>{escape(k)}</th><td>{escape(str(v))}</td></tr>' for k, v in rows]
    parts.append('</table>')
    if not done:
        parts.append('<p class="warn">No frame could be processed.</p>')
    else:
        parts.append('<h3>Caption timeline</h3>' + timeline_svg(done, t0, x_max))
        parts.append('<h3>Annotated keyframes</h3>' + _keyframes(keyframes, t0))
        runs = caption_runs(done, t0)
        parts.append(f'<h3>Captions ({len(runs)} distinct)</h3><div class="scroll">'
                     '<table id="captions"><tr><th>from (s)</th><th>to (s)</th><th>frames'
                     '</th><th>caption</th><th>generator</th></tr>')
        parts += [f'<tr><td>{r["start"]:.2f}</td><td>{r["end"]:.2f}</td><td>{r["frames"]}'
                  f'</td><td>{escape(r["text"])}</td><td>{escape(r["generator"])}'
                  f'{"" if r["verified"] else " (not verified)"}</td></tr>' for r in runs]
        parts.append('</table></div>')
        totals = Counter()
        for m in done:
            totals.update(m['objects'])
        classes = [c for c, _ in totals.most_common(TOP_CLASSES)]
        series = {f'{c} ({totals[c]} detections)': [(_t(m, t0), m['objects'].get(c, 0))
                                                    for m in done] for c in classes}
        parts.append('<h3>Objects over time</h3>' + (
            _lines(series, x_max, 'objects per frame', 'objects') if series
            else '<p class="small">No objects detected.</p>'))
        parts.append('<h3>Depth source</h3>' + depth_svg(done, t0, x_max))
        keys = ('total', 'perception', 'caption', 'scene_graph', 'decode', 'output')
        latency = {f'{k} ms': [(_t(m, t0), m['times_ms'][k]) for m in done] for k in keys[:3]}
        parts.append('<h3>Latency per frame</h3>' + _lines(latency, x_max, 'ms', 'latency'))
        parts.append('<table>' + ''.join(
            f'<tr><th>{k} (ms)</th><td>{_stats([m["times_ms"][k] for m in done])}</td></tr>'
            for k in keys) + '</table>')
    skipped = [f'{s.get("topic", "")} at log time {s.get("log_time_ns", 0) / 1e9:.3f} s'
               f'{" (frame " + str(s["frame"]) + ")" if "frame" in s else ""}: {s["reason"]}'
               for s in summary['skipped']]
    parts.append('<h3>Skipped</h3>' + _list(skipped, 'Nothing was skipped.'))
    parts.append('<h3>Problems and warnings</h3>'
                 + _list(summary['problems'] + summary['warnings'], 'None.'))
    return '\n'.join(parts)


def render_report(run: dict[str, Any], sections: list[str]) -> str:
    """The whole report: run information, one section per recording, then the parameters."""
    rows = ''.join(f'<tr><th>{escape(k)}</th><td>{escape(str(v))}</td></tr>'
                   for k, v in run.get('info', {}).items())
    warnings = _list(run.get('warnings', []), 'None.')
    return (f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>spatial_caption_ros '
            f'recording report</title><style>{STYLE}</style></head><body>'
            f'<h1>spatial_caption_ros: captions of recorded data</h1><table>{rows}</table>'
            + '\n'.join(sections)
            + f'<h2>Run warnings</h2>{warnings}<h2>Run parameters</h2>'
            f'<pre>{escape(run.get("params", ""))}</pre></body></html>')
