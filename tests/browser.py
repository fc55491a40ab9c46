"""Headless Chromium for page tests, and what each plotly plot on a page actually drew."""

from __future__ import annotations

import os
import shutil
from typing import Any

import pytest


def chromium_driver() -> Any:
    driver_path = shutil.which("chromedriver")
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if not driver_path or not browser:
        if os.environ.get("CI"):
            pytest.fail("chromium / chromium-driver missing: .ci/run installs them with apt-get")
        pytest.skip("chromium and chromium-driver are not installed "
                    "(apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_window_size(1280, 2000)
    return driver


# Per plot, per trace: how many values went in, how many plotly.js counted after binning or
# parsing (a histogram: the sum of its bins; bars and lines: points with a finite value), and how
# many marks are visible on screen (bars at least one pixel wide and high; line or marker paths).
PLOT_POINTS_JS = """
return Array.from(document.querySelectorAll('.js-plotly-plot')).map(function (g) {
  var heading = null, node = g;
  while (node && !heading) {
    var prev = node.previousElementSibling;
    while (prev && !/^H[1-3]$/.test(prev.tagName)) prev = prev.previousElementSibling;
    if (prev) heading = prev.textContent; else node = node.parentElement;
  }
  var layers = g.querySelectorAll('.trace');
  return {title: heading, traces: g._fullData.map(function (t, i) {
    var cd = (g.calcdata || [])[i] || [];
    var input = t._length !== undefined ? t._length : (t.x || t.y || []).length;
    var rendered = 0;
    cd.forEach(function (p) {
      if (t.type === 'histogram') rendered += p.s || 0;
      else if (t.type === 'bar') rendered += isFinite(p.s) ? 1 : 0;
      else rendered += (isFinite(p.x) && isFinite(p.y)) ? 1 : 0;
    });
    var visible = 0;
    var layer = Array.from(layers).filter(function (l) { return l.__data__ && l.__data__[0] &&
      l.__data__[0].trace && l.__data__[0].trace.index === t.index; })[0];
    if (layer) layer.querySelectorAll('path').forEach(function (p) {
      var box = p.getBBox();
      if (t.type === 'histogram' || t.type === 'bar') { if (box.width >= 1 && box.height >= 1) visible++; }
      else if ((p.getAttribute('d') || '').length > 4) visible++;
    });
    return {type: t.type, name: t.name, input: input, rendered: rendered, visible: visible};
  })};
});
"""


def plot_points(driver: Any) -> list[dict[str, Any]]:
    return driver.execute_script(PLOT_POINTS_JS)


def assert_every_plot_shows_its_data(plots: list[dict[str, Any]]) -> None:
    """Every trace counted every value it was given and shows marks (WebGL traces excepted for
    marks: headless Chromium may have no GPU)."""
    assert plots, "no plot on the page"
    for plot in plots:
        for trace in plot["traces"]:
            where = f"{plot['title']!r} trace {trace['name']!r} ({trace['type']})"
            assert trace["input"] > 0, f"{where}: no data"
            assert trace["rendered"] == trace["input"], f"{where}: {trace}"
            if not trace["type"].endswith("gl"):
                assert trace["visible"] > 0, f"{where}: nothing visible: {trace}"
