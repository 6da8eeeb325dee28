"""SVG charts: well-formed XML, escaped text, and geometry that follows the data."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

from flagapp.rollouts.charts import (
    ExperimentRow,
    Marker,
    TimelinePoint,
    experiment_svg,
    rollout_timeline_svg,
)

NS = {"s": "http://www.w3.org/2000/svg"}
T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def _points(el: ET.Element) -> list[tuple[float, float]]:
    return [(float(a), float(b)) for a, b in (p.split(",") for p in el.attrib["points"].split())]


def test_timeline_svg__steps_metric_threshold__step_line_and_dashed_threshold() -> None:
    pct = [TimelinePoint(T0 + timedelta(minutes=10 * i), v) for i, v in enumerate([1, 10, 50])]
    metric = [TimelinePoint(T0 + timedelta(minutes=5 * i), 0.002 * i) for i in range(6)]
    svg = rollout_timeline_svg(
        pct,
        metric=metric,
        metric_label="error_rate",
        threshold=0.01,
        markers=[Marker(T0 + timedelta(minutes=25), "rolled back", bad=True)],
    )
    root = ET.fromstring(svg)
    line = root.find("s:polyline[@class='percentage']", NS)
    assert line is not None
    points = _points(line)
    # A step line: each change is a vertical segment (same x, new y), y falls as % rises.
    assert points[1][0] == points[2][0] and points[1][1] > points[2][1]
    ys = [y for _, y in points]
    assert ys == sorted(ys, reverse=True)
    threshold = root.find("s:line[@class='threshold']", NS)
    assert threshold is not None and threshold.attrib["stroke-dasharray"]
    # Metric points above the threshold are drawn in the alarm colour.
    circles = root.findall("s:circle", NS)
    assert len(circles) == 6
    assert sum(c.attrib["fill"] == "#dc2626" for c in circles) == 0  # max value 0.010, not >
    assert root.find("s:line[@class='marker']", NS) is not None
    assert "threshold 1.0%" in svg


def test_timeline_svg__metric_above_threshold__red_dots() -> None:
    metric = [TimelinePoint(T0, 0.004), TimelinePoint(T0 + timedelta(minutes=1), 0.031)]
    svg = rollout_timeline_svg([TimelinePoint(T0, 1)], metric=metric, threshold=0.01)
    fills = [c.attrib["fill"] for c in ET.fromstring(svg).findall("s:circle", NS)]
    assert fills == ["#d97706", "#dc2626"]


def test_timeline_svg__no_data__placeholder_text() -> None:
    svg = rollout_timeline_svg([])
    assert "no data yet" in svg
    ET.fromstring(svg)


def test_charts__hostile_names__escaped_and_no_script() -> None:
    evil = '<script>alert("x")</script>&'
    svg1 = rollout_timeline_svg(
        [TimelinePoint(T0, 5)], metric=[TimelinePoint(T0, 0.1)], metric_label=evil, title=evil
    )
    svg2 = experiment_svg([ExperimentRow(evil, 0.1, 100, control=True)], title=evil)
    for svg in (svg1, svg2):
        ET.fromstring(svg)
        assert "<script" not in svg
        assert "&lt;script&gt;" in svg
        assert "http://" not in svg.replace('xmlns="http://www.w3.org/2000/svg"', "")


def test_experiment_svg__rows__ci_bar_spans_interval_and_significance_colour() -> None:
    rows = [
        ExperimentRow("off", 0.10, 1000, control=True),
        ExperimentRow("on", 0.13, 1000, 0.03, 0.0021, 0.0579, significant=True),
        ExperimentRow("blue", 0.105, 1000, 0.005, -0.021, 0.031, significant=False),
    ]
    root = ET.fromstring(experiment_svg(rows))
    groups = root.findall("s:g[@class='ci']", NS)
    assert len(groups) == 2  # the control has no interval of its own
    on_line = groups[0].find("s:line", NS)
    blue_line = groups[1].find("s:line", NS)
    assert on_line is not None and blue_line is not None
    assert on_line.attrib["stroke"] == "#2563eb" and blue_line.attrib["stroke"] == "#9ca3af"
    # The 'blue' interval crosses zero: the zero line's x lies between its ends.
    zero_x = float(root.findall("s:line", NS)[0].attrib["x1"])
    assert float(blue_line.attrib["x1"]) < zero_x < float(blue_line.attrib["x2"])
    assert float(on_line.attrib["x1"]) > zero_x
    assert "13.00% of 1,000" in ET.tostring(root, encoding="unicode")


def test_timeline_svg__point_status__breach_red_insufficient_hollow_even_above_threshold() -> None:
    metric = [
        TimelinePoint(T0, 0.0133, "insufficient"),
        TimelinePoint(T0 + timedelta(minutes=1), 0.004, "ok"),
        TimelinePoint(T0 + timedelta(minutes=2), 0.087, "breach"),
    ]
    svg = rollout_timeline_svg([TimelinePoint(T0, 5)], metric=metric, threshold=0.01)
    circles = ET.fromstring(svg).findall("s:circle", NS)
    assert [(c.attrib["fill"], c.attrib["stroke"]) for c in circles] == [
        ("#ffffff", "#d97706"),
        ("#d97706", "#d97706"),
        ("#dc2626", "#dc2626"),
    ]
    assert "below the minimum sample" in svg


def test_charts__text_and_grid__admin_theme_variables_for_dark_mode() -> None:
    """Text drawn in a fixed dark grey was low-contrast on the admin's dark theme."""
    root = ET.fromstring(rollout_timeline_svg([]))
    texts = [e for e in root.iter() if e.tag.endswith("text")]
    assert texts and all("var(--body-fg" in e.get("style", "") for e in texts)
    assert not any(e.get("fill") == "#374151" for e in root.iter())
