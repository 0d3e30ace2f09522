"""Draw a :class:`~report.charts.Chart` with plotly: a div + script for the page.

plotly.js is embedded once in the page's head (:func:`plotly_js`), so the page stays one
self-contained file that opens offline. Numbers travel as base64 typed arrays (plotly's
own encoding): times as float64 milliseconds since the epoch on a date axis, values as
float32, which keeps a 50,000-bar sweep of 8 leverages at a few MiB once downsampled.
"""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
from plotly.offline import get_plotlyjs
from plotly.subplots import make_subplots

from .charts import Chart, HLine, Panel, Trace, log_span

#: d3 number formats per y format: plain digits with thousands separators, never 1e+5
TICK_FORMATS = {"money": ",.6~r", "price": ",.6~r", "percent": ",.1~%", "ratio": ",.3~r",
                "count": ",d", "leverage": ",.3~r"}
HOVER_FORMATS = {"money": ",.2f", "price": ",.2f", "percent": ",.2%", "ratio": ",.3f",
                 "count": ",d", "leverage": ",.2f"}
CONFIG = {"displaylogo": False, "responsive": True,
          "modeBarButtonsToRemove": ["select2d", "lasso2d"]}
MS_PER_NS = 1_000_000


def plotly_js() -> str:
    """The plotly.js bundle the installed plotly ships (embedded once per page)."""
    return get_plotlyjs()


def chart_html(chart: Chart) -> str:
    """``<div>`` + ``<script>`` drawing ``chart`` (needs :func:`plotly_js` on the page)."""
    figure = build_figure(chart)
    return pio.to_html(figure, full_html=False, include_plotlyjs=False, div_id=chart.chart_id,
                       config=CONFIG, default_height=f"{chart.height}px", default_width="100%")


def build_figure(chart: Chart) -> go.Figure:
    """The plotly figure of ``chart`` (one subplot row per panel, x axes linked)."""
    panels = chart.panels
    total = sum(panel.weight for panel in panels) or 1.0
    figure = make_subplots(rows=len(panels), cols=1, shared_xaxes=True,
                           vertical_spacing=0.035 if len(panels) > 1 else 0.0,
                           row_heights=[panel.weight / total for panel in panels])
    for row, panel in enumerate(panels, start=1):
        for trace in panel.traces:
            figure.add_trace(_scatter(chart, panel, trace), row=row, col=1)
        for level in panel.lines:
            figure.add_trace(_reference_line(chart, panel, level), row=row, col=1)
        figure.update_yaxes(_y_axis(panel), row=row, col=1)
    x_axis = {"showgrid": True, "gridcolor": "#e5e5e5", "zeroline": False, "showline": True,
              "linecolor": "#999", "ticks": "outside"}
    if chart.x_kind == "time":
        x_axis.update(type="date", hoverformat="%Y-%m-%d %H:%M")
    else:  # ticks at the grid's leverages, labelled '5x'
        grid = sorted({float(value) for panel in panels for trace in panel.traces
                       for value in np.asarray(trace.x, dtype=np.float64)})
        x_axis.update(type="log" if chart.x_log else "linear", tickmode="array",
                      tickvals=grid, ticktext=[f"{value:g}x" for value in grid])
    figure.update_xaxes(x_axis)
    figure.update_xaxes(title_text=chart.x_label, row=len(panels), col=1)
    figure.update_layout(
        template="none", height=chart.height, hovermode="closest",
        font={"family": "system-ui, sans-serif", "size": 12},
        # the section's heading names the chart; the legend sits above the plot area, so
        # it never hides a marker
        legend={"orientation": "h", "x": 0, "xanchor": "left", "y": 1.0, "yanchor": "bottom",
                "font": {"size": 11}},
        margin={"l": 70, "r": 20, "t": 50, "b": 40},
        plot_bgcolor="white", paper_bgcolor="white")
    return figure


def _scatter(chart: Chart, panel: Panel, trace: Trace) -> go.Scatter:
    if trace.kind == "band":
        return _band(chart, trace)
    x = _x_values(chart, trace.x)
    y = np.asarray(trace.y, dtype=np.float64)
    if panel.y_format != "count":
        y = y.astype(np.float32)
    mode = {"line": "lines", "area": "lines", "markers": "markers",
            "lines+markers": "lines+markers"}[trace.kind]
    keywords = {"x": x, "y": y, "mode": mode, "name": trace.name, "showlegend": trace.legend}
    if trace.kind in ("line", "area", "lines+markers"):
        keywords["line"] = {"color": trace.color, "width": trace.width,
                            "dash": "dash" if trace.dash else "solid"}
    if trace.kind in ("markers", "lines+markers"):
        keywords["marker"] = {"symbol": trace.marker, "size": trace.size, "color": trace.color,
                              "line": {"width": 1, "color": trace.color or "#333"}}
    if trace.kind == "area":
        keywords.update(fill="tozeroy", fillcolor=_fade(trace.color))
    x_hover = "%{x|%Y-%m-%d %H:%M}" if chart.x_kind == "time" else "%{x:,.3~r}x"
    if trace.hover is not None:
        keywords.update(hovertext=list(trace.hover), hovertemplate="%{hovertext}<extra></extra>")
    else:
        keywords["hovertemplate"] = (f"{x_hover}<br>{panel.y_label}: "
                                     f"%{{y:{HOVER_FORMATS.get(panel.y_format, ',.4g')}}}"
                                     f"<extra>{trace.name}</extra>")
    return go.Scatter(**keywords)


def _band(chart: Chart, trace: Trace) -> go.Scatter:
    """A filled range between ``trace.base`` and ``trace.y``: one closed polygon."""
    x = _x_values(chart, trace.x)
    upper = np.asarray(trace.y, dtype=np.float64)
    lower = np.asarray(trace.base, dtype=np.float64)
    return go.Scatter(x=np.concatenate([x, x[::-1]]),
                      y=np.concatenate([upper, lower[::-1]]).astype(np.float32),
                      mode="lines", fill="toself", fillcolor=_fade(trace.color, trace.opacity),
                      line={"width": 0, "color": trace.color}, name=trace.name,
                      showlegend=trace.legend, hoverinfo="skip")


def _reference_line(chart: Chart, panel: Panel, level: HLine) -> go.Scatter:
    """A horizontal line spanning the panel's data, as a legend entry (no label on the plot)."""
    xs = [trace.x for trace in panel.traces if len(trace.x)]
    if xs:
        low = min(np.min(values) for values in xs)
        high = max(np.max(values) for values in xs)
        x = _x_values(chart, np.array([low, high]))
    else:
        x = np.array([0.0, 1.0])
    return go.Scatter(x=x, y=[level.y, level.y], mode="lines", name=level.label,
                      line={"color": level.color, "width": 1, "dash": "dash" if level.dash else "solid"},
                      hoverinfo="skip")


def _y_axis(panel: Panel) -> dict:
    axis = {"title": {"text": panel.y_label, "font": {"size": 11}}, "showgrid": True,
            "gridcolor": "#e5e5e5", "zeroline": False, "showline": True, "linecolor": "#999",
            "ticks": "outside", "exponentformat": "none", "separatethousands": True,
            "tickformat": TICK_FORMATS.get(panel.y_format, ",.6~r"), "automargin": True}
    if panel.scale == "log":
        axis["type"] = "log"
        axis["dtick"] = "D2" if log_span(panel) >= 10 else "D1"   # see charts.log_span
    if panel.y_format == "count":
        top = max((float(np.nanmax(trace.y)) for trace in panel.traces if len(trace.y)),
                  default=1.0)
        axis.update(tick0=0, dtick=max(1, int(np.ceil(top / 5))), rangemode="tozero")
    if panel.y_range is not None:
        axis["range"] = list(panel.y_range)
    return axis


def _x_values(chart: Chart, x) -> np.ndarray:
    values = np.asarray(x)
    if chart.x_kind == "time":
        # datetime64 -> float ms since the epoch (a date axis reads numbers as ms)
        return values.astype("datetime64[ns]").astype(np.int64).astype(np.float64) / MS_PER_NS
    return values.astype(np.float64)


def _fade(color: str | None, opacity: float = 0.25) -> str:
    """A translucent fill of a '#rrggbb' colour."""
    if not color or not color.startswith("#") or len(color) != 7:
        return f"rgba(200, 40, 40, {opacity})"
    red, green, blue = (int(color[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({red}, {green}, {blue}, {opacity})"
