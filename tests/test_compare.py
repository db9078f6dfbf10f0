"""Tests of pyrovae.posterior.compare: metrics by hand, noise floor, flags, k-hat, files
and figures."""

from __future__ import annotations

import csv
import itertools
import math
from pathlib import Path

import numpy as np
import pytest
from matplotlib.colors import to_hex
from matplotlib.figure import Figure
from PIL import Image
from scipy import stats

from pyrovae.posterior.compare import SD_RATIO_LOW, VERDICTS, Comparison, MethodResult, compare
from pyrovae.posterior.distances import (
    KHAT_THRESHOLD,
    energy_distance,
    mean_error_sd,
    mmd,
    noise_floor,
    psis_khat,
    sd_ratio,
    wasserstein1_sd,
)
from pyrovae.posterior.inference.variational import Convergence
from pyrovae.posterior.plots import (
    DPI,
    METHOD_COLORS,
    REFERENCE_COLOR,
    method_colors,
    plot_marginals,
    plot_pairs,
)

NAMES = ("mu", "theta[1]", "theta[2]")
CORRELATED = np.full((3, 3), 0.8) + 0.2 * np.eye(3)
MEAN = np.array([1.0, -2.0, 0.5])

# Tiny hand-computed case: x = {0, 1}, y = {2, 4}; y has mean 3 and sd sqrt(2) (ddof=1).
X_TINY = np.array([[0.0], [1.0]])
Y_TINY = np.array([[2.0], [4.0]])


def gaussian(n: int, seed: int, scale: float = 1.0, shift: float = 0.0) -> np.ndarray:
    """``(n, 3)`` draws of N(MEAN + shift, scale^2 * CORRELATED)."""
    rng = np.random.default_rng(seed)
    return rng.multivariate_normal(MEAN + shift, scale**2 * CORRELATED, size=n)


def brute_energy(x: np.ndarray, y: np.ndarray) -> float:
    """Energy distance U-statistic by explicit loops (columns already standardised)."""
    n, m = len(x), len(y)
    cross = sum(np.linalg.norm(a - b) for a in x for b in y) / (n * m)
    within_x = sum(np.linalg.norm(x[i] - x[j]) for i in range(n) for j in range(n) if i != j)
    within_y = sum(np.linalg.norm(y[i] - y[j]) for i in range(m) for j in range(m) if i != j)
    return 2 * cross - within_x / (n * (n - 1)) - within_y / (m * (m - 1))


def brute_mmd(x: np.ndarray, y: np.ndarray, h: float) -> float:
    """Unbiased MMD^2 with a Gaussian kernel of width ``h`` by explicit loops."""

    def k(a: np.ndarray, b: np.ndarray) -> float:
        return math.exp(-np.sum((a - b) ** 2) / (2 * h**2))

    n, m = len(x), len(y)
    kxx = sum(k(x[i], x[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    kyy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    kxy = sum(k(a, b) for a in x for b in y) / (n * m)
    return kxx + kyy - 2 * kxy


# --- per-parameter metrics by hand ------------------------------------------------------------


def test_per_parameter_metrics_by_hand() -> None:
    # means 0.5 vs 3, sds 1/sqrt(2) vs sqrt(2); sorted pairs (0, 2) and (1, 4): W1 = 2.5.
    assert mean_error_sd(X_TINY, Y_TINY) == pytest.approx([-2.5 / math.sqrt(2)])
    assert sd_ratio(X_TINY, Y_TINY) == pytest.approx([0.5])
    assert wasserstein1_sd(X_TINY, Y_TINY) == pytest.approx([2.5 / math.sqrt(2)])


def test_per_parameter_metrics_are_per_column() -> None:
    draws = np.array([[0.0, 10.0], [1.0, 10.0], [2.0, 13.0]])
    reference = np.array([[0.0, 10.0], [2.0, 12.0], [4.0, 14.0]])
    # column 0: mean 1 vs 2, sd 1 vs 2; column 1: mean 11 vs 12, sd sqrt(3) vs 2.
    assert mean_error_sd(draws, reference) == pytest.approx([-0.5, -0.5])
    assert sd_ratio(draws, reference) == pytest.approx([0.5, math.sqrt(3) / 2])
    # W1 of equal-size samples: mean |sorted difference|: (0+1+2)/3 and (0+2+1)/3.
    assert wasserstein1_sd(draws, reference) == pytest.approx([0.5, 0.5])


# --- energy distance and MMD ------------------------------------------------------------------


def test_energy_distance_by_hand() -> None:
    # |x - y|: 2, 4, 1, 3 (mean 2.5); |x - x'| = 1; |y - y'| = 2 -> 2 * 2.5 - 1 - 2 = 2,
    # divided by y's sd sqrt(2).
    assert energy_distance(X_TINY, Y_TINY) == pytest.approx(math.sqrt(2))


def test_energy_distance_matches_brute_force() -> None:
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(4, 2)), rng.normal(1.0, 2.0, size=(5, 2))
    scale = y.std(axis=0, ddof=1)
    assert energy_distance(x, y) == pytest.approx(brute_energy(x / scale, y / scale))


def test_mmd_by_hand() -> None:
    # Standardised by sqrt(2): x = {0, 1/sqrt2}, y = {sqrt2, 2 sqrt2}; squared distances:
    # xx 1/2, yy 2, xy 2, 8, 1/2, 9/2. With h = 1, k = exp(-d^2 / 2).
    expected = (
        math.exp(-0.25)
        + math.exp(-1.0)
        - 2 * (math.exp(-1.0) + math.exp(-4.0) + math.exp(-0.25) + math.exp(-2.25)) / 4
    )
    assert mmd(X_TINY, Y_TINY, bandwidth=1.0) == pytest.approx(expected)


def test_mmd_median_heuristic_by_hand() -> None:
    # Pooled distances: 1/sqrt2 (twice), sqrt2 (twice), 3/sqrt2, 2 sqrt2 -> median sqrt2.
    assert mmd(X_TINY, Y_TINY) == pytest.approx(mmd(X_TINY, Y_TINY, bandwidth=math.sqrt(2)))


def test_mmd_matches_brute_force() -> None:
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(5, 2)), rng.normal(0.5, 3.0, size=(4, 2))
    scale = y.std(axis=0, ddof=1)
    assert mmd(x, y, bandwidth=0.8) == pytest.approx(brute_mmd(x / scale, y / scale, 0.8))


@pytest.mark.parametrize("metric", [energy_distance, mmd])
def test_joint_metric_near_zero_for_same_distribution(metric) -> None:
    value = metric(gaussian(1500, seed=1), gaussian(1500, seed=2))
    assert abs(value) < 0.01


@pytest.mark.parametrize("metric", [energy_distance, mmd])
def test_joint_metric_grows_with_the_shift(metric) -> None:
    reference = gaussian(1000, seed=1)
    values = [metric(gaussian(1000, seed=2, shift=s), reference) for s in (0.0, 0.5, 1.0, 2.0)]
    assert values[1] > 0.02
    assert values == sorted(values)
    assert values[1] > 10 * abs(values[0])


@pytest.mark.parametrize("metric", [energy_distance, mmd])
def test_joint_metric_is_scale_free(metric) -> None:
    x, y = gaussian(300, seed=1, shift=0.5), gaussian(300, seed=2)
    assert metric(100 * x, 100 * y) == pytest.approx(metric(x, y), rel=1e-9)


@pytest.mark.parametrize("metric", [energy_distance, mmd])
def test_joint_metric_subsample_is_seeded(metric) -> None:
    x, y = gaussian(500, seed=1, shift=0.3), gaussian(400, seed=2)
    first = metric(x, y, max_points=100, seed=7)
    assert metric(x, y, max_points=100, seed=7) == first
    assert metric(x, y, max_points=100, seed=8) != first


# --- noise floor and compare ------------------------------------------------------------------


def test_noise_floor_near_zero_for_large_gaussian() -> None:
    floor = noise_floor(gaussian(3000, seed=5))
    assert set(floor) == {
        "energy",
        "mmd",
        "max_abs_mean_error_sd",
        "max_abs_log_sd_ratio",
        "max_w1_sd",
    }
    assert abs(floor["energy"]) < 0.01
    assert abs(floor["mmd"]) < 0.01
    for key in ("max_abs_mean_error_sd", "max_abs_log_sd_ratio", "max_w1_sd"):
        assert 0 < floor[key] < 0.1


@pytest.fixture(scope="module")
def reference() -> np.ndarray:
    return gaussian(1000, seed=10)


def _compare(reference: np.ndarray, *methods: MethodResult) -> Comparison:
    return compare(reference, NAMES, methods, reference_name="analytic", log_evidence=-10.0)


def test_exact_method_is_within_the_noise_floor_and_not_flagged(reference) -> None:
    comparison = _compare(reference, MethodResult("nuts", gaussian(1000, seed=11)))
    row, floor = comparison.method_rows[0], comparison.noise_floor
    assert row["flagged"] == []
    assert abs(row["energy"]) <= 3 * floor["energy"]
    assert abs(row["mmd"]) <= 3 * floor["mmd"]
    assert row["max_abs_mean_error_sd"] <= 3 * floor["max_abs_mean_error_sd"]
    assert abs(math.log(row["min_sd_ratio"])) <= 3 * floor["max_abs_log_sd_ratio"]
    assert row["max_w1_sd"] <= 3 * floor["max_w1_sd"]


def test_shifted_method_is_flagged_naming_the_parameter(reference) -> None:
    draws = gaussian(1000, seed=12)
    draws[:, 1] += 1.0  # one reference sd on theta[1] only
    comparison = _compare(reference, MethodResult("auto_normal", draws))
    flags = comparison.method_rows[0]["flagged"]
    assert len(flags) == 1
    assert "mean error" in flags[0]
    assert "theta[1]" in flags[0]
    assert "mu" not in flags[0]


def test_underdispersed_method_is_flagged_with_its_sd_ratio(reference) -> None:
    draws = gaussian(1000, seed=13, scale=0.5)
    comparison = _compare(reference, MethodResult("auto_normal", draws))
    (flag,) = comparison.method_rows[0]["flagged"]
    assert flag.startswith("underdispersed: sd ratio 0.5")
    assert f"< {SD_RATIO_LOW}" in flag
    assert all(name in flag for name in NAMES)
    assert comparison.method_rows[0]["min_sd_ratio"] == pytest.approx(0.5, abs=0.05)


def test_value_within_the_noise_floor_is_not_flagged() -> None:
    tiny = gaussian(8, seed=14)  # two halves of 4 draws: a very noisy floor
    floor = noise_floor(tiny)["max_abs_log_sd_ratio"]
    assert floor > -math.log(SD_RATIO_LOW)
    ratio = math.exp(-0.9 * floor)  # below SD_RATIO_LOW, yet within the floor
    narrow = tiny.mean(axis=0) + ratio * (tiny - tiny.mean(axis=0))
    comparison = _compare(tiny, MethodResult("auto_normal", narrow))
    assert comparison.method_rows[0]["min_sd_ratio"] == pytest.approx(ratio)
    assert comparison.method_rows[0]["flagged"] == []


def test_khat_flag_and_defaults(reference) -> None:
    bad = MethodResult("auto_normal", gaussian(500, seed=15), khats=(0.3, 1.3, 0.5))
    good = MethodResult("auto_mvn", gaussian(500, seed=16), khat=0.2)
    comparison = _compare(reference, bad, good)
    bad_row, good_row = comparison.method_rows
    assert bad.khat == 1.3
    assert bad_row["khat_ok"] is False
    assert f"k-hat 1.3 > {KHAT_THRESHOLD} (worst of 3 seeds)" in bad_row["flagged"]
    assert good_row["khat_ok"] is True
    assert good_row["flagged"] == []


def test_method_row_bookkeeping(reference) -> None:
    nuts = MethodResult("nuts", gaussian(500, seed=17), seconds=4.0, ess=[400.0, 300.0, 500.0])
    vi = MethodResult("amortized", gaussian(500, seed=18), elbo=-12.0, log_evidence_estimate=-9.5)
    nuts_row, vi_row = _compare(reference, nuts, vi).method_rows
    assert nuts_row["ess_per_second"] == pytest.approx(75.0)
    assert nuts_row["khat"] is None and nuts_row["khat_ok"] is None
    assert vi_row["ess_per_second"] is None
    assert vi_row["log_evidence_error"] == pytest.approx(0.5)


def test_compare_rejects_mismatched_shapes(reference) -> None:
    with pytest.raises(ValueError, match="parameters"):
        _compare(reference, MethodResult("nuts", np.zeros((10, 2))))
    with pytest.raises(ValueError, match="parameter names"):
        compare(reference, ["a", "b"], [], reference_name="analytic")
    with pytest.raises(ValueError, match="non-finite"):
        MethodResult("nuts", np.full((10, 3), np.nan))


def _fit(converged: bool, judged: str, gap: float = 0.01) -> Convergence:
    return Convergence(converged, judged, 1200, 0.02, gap, 0.3, int(converged) * 3, 3)


def test_an_unfinished_fit_is_told_apart_from_a_family_limit(reference) -> None:
    narrow = gaussian(1000, seed=30, scale=0.5)  # underdispersed on every parameter
    stopped = "not converged: step budget (50 steps) reached before a plateau, offset 0.8 sd"
    methods = [
        MethodResult("nuts", gaussian(1000, seed=31), ess=[900.0, 800.0, 950.0]),
        MethodResult("mean_field", narrow, convergence=_fit(True, "converged (plateau)")),
        MethodResult("unfinished", narrow, convergence=_fit(False, stopped, gap=-2.0)),
        MethodResult("fine", gaussian(1000, seed=32), convergence=_fit(True, "converged")),
        MethodResult("stalled", gaussian(1000, seed=33), convergence=_fit(False, stopped)),
    ]
    rows = {row["method"]: row for row in _compare(reference, *methods).method_rows}
    verdicts = {name: row["verdict"] for name, row in rows.items()}
    assert verdicts == {
        "nuts": "ok",
        "mean_field": "family limit",
        "unfinished": "not converged",
        "fine": "ok",
        "stalled": "not converged",
    }
    assert set(verdicts.values()) <= set(VERDICTS)
    # an unfinished fit says so first, then what else is wrong with its draws
    assert rows["unfinished"]["flagged"][0] == stopped
    assert rows["unfinished"]["flagged"][1].startswith("underdispersed")
    assert rows["stalled"]["flagged"] == [stopped]  # flagged even with good draws
    assert rows["mean_field"]["flagged"][0].startswith("underdispersed")
    assert rows["nuts"]["converged"] is None and rows["nuts"]["fit_steps"] is None
    assert rows["unfinished"]["converged"] is False
    assert rows["unfinished"]["fits_converged"] == "0/3"
    assert rows["unfinished"]["elbo_gap_laplace"] == -2.0
    assert rows["fine"]["fit_steps"] == 1200 and rows["fine"]["offset_sd"] == 0.02


def test_markdown_groups_flags_by_verdict_and_tables_convergence(reference, tmp_path) -> None:
    narrow = gaussian(1000, seed=34, scale=0.5)
    stopped = "not converged: plateaued but still 0.4 sd from its optimum (> 0.1)"
    comparison = _compare(
        reference,
        MethodResult("nuts", gaussian(1000, seed=35) + 1.0),  # off by one sd: flagged
        MethodResult("mean_field", narrow, convergence=_fit(True, "converged (plateau)")),
        MethodResult("unfinished", gaussian(1000, seed=36), convergence=_fit(False, stopped)),
    )
    text = comparison.to_markdown()
    flags = text[text.index("### Flagged problems") : text.index("### Convergence")]
    at = {verdict: flags.index(f"*{verdict}*") for verdict in ("not converged", "family limit")}
    assert at["not converged"] < flags.index("**unfinished**") < at["family limit"]
    assert at["family limit"] < flags.index("**mean_field**") < flags.index("*flagged*")
    assert flags.index("*flagged*") < flags.index("**nuts**: mean error")
    table = text[text.index("### Convergence") : text.index("### Per parameter")]
    assert f"| unfinished | no | 0/3 | 1200 | 0.02 | 0.01 | 0.3 | {stopped} |" in table
    assert "| mean_field | yes | 3/3 |" in table
    assert "| nuts |" not in table  # no fit, no row
    methods = {row["method"]: row for row in _read_csv(comparison.write(tmp_path)["methods"])}
    assert methods["unfinished"]["verdict"] == "not converged"
    assert methods["unfinished"]["converged"] == "false"
    assert methods["nuts"]["converged"] == "" and methods["nuts"]["verdict"] == "flagged"
    assert methods["mean_field"]["convergence"] == "converged (plateau)"


def test_no_convergence_table_without_variational_fits(reference) -> None:
    text = _compare(reference, MethodResult("nuts", gaussian(500, seed=37))).to_markdown()
    assert "### Convergence" not in text
    assert "\n### Flagged problems\n\nNone.\n" in text


# --- PSIS k-hat -------------------------------------------------------------------------------


def _log_ratios(q_scale: float, n: int = 4000, seed: int = 0) -> np.ndarray:
    """log p(theta) - log q(theta) for theta ~ q = N(0, q_scale^2), p = N(0, 1)."""
    theta = np.random.default_rng(seed).normal(0.0, q_scale, size=n)
    return stats.norm.logpdf(theta) - stats.norm.logpdf(theta, scale=q_scale)


def test_psis_khat_small_when_q_is_close_to_p() -> None:
    assert psis_khat(_log_ratios(1.1)) < 0.5


def test_psis_khat_large_when_q_is_much_narrower() -> None:
    assert psis_khat(_log_ratios(0.2)) > KHAT_THRESHOLD


def test_psis_khat_ignores_a_constant_offset() -> None:
    ratios = _log_ratios(0.5)
    assert psis_khat(ratios + 123.0) == pytest.approx(psis_khat(ratios), abs=1e-6)


# --- files, markdown and figures --------------------------------------------------------------


@pytest.fixture(scope="module")
def comparison(reference) -> Comparison:
    methods = [
        MethodResult("nuts", gaussian(600, seed=20), seconds=3.0, ess=[500.0, 450.0, 550.0]),
        MethodResult("auto_normal", gaussian(600, seed=21, scale=0.6), seconds=1.0, khat=0.9),
        MethodResult("my_flow", gaussian(600, seed=22), seconds=2.0, khats=(0.2, 0.4)),
    ]
    return _compare(reference, *methods)


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _check_png(path: Path, inches: tuple[float, float]) -> None:
    """A PNG of ``inches`` at DPI pixels with something drawn on its white background."""
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.size == (round(inches[0] * DPI), round(inches[1] * DPI))
        pixels = np.asarray(image.convert("RGB"), dtype=np.int16)
    inked = float(np.any(pixels < 245, axis=-1).mean())
    assert pixels.std() > 0 and inked > 0.01, f"{path.name} is blank ({inked:.2%} drawn)"


def _legend(fig: Figure) -> list[str]:
    return [t.get_text() for t in fig.legends[0].get_texts()]


def _check_marginal_panel(ax, comparison, p: int) -> None:
    """Parameter ``p``: the reference histogram in grey, then one line per method in its
    colour, a density (or a vertical line where the draws are constant) of its column."""
    assert ax.patches and all(
        to_hex(patch.get_facecolor()) == to_hex(REFERENCE_COLOR) for patch in ax.patches
    )
    colors = method_colors([m.method for m in comparison.methods])
    lines = ax.get_lines()
    assert [to_hex(line.get_color()) for line in lines] == list(colors.values())
    for line, method in zip(lines, comparison.methods, strict=True):
        column = method.draws[:, p]
        x, y = np.asarray(line.get_xdata(), float), np.asarray(line.get_ydata(), float)
        if np.ptp(column) == 0:
            np.testing.assert_array_equal(x, column[0])
            continue
        assert np.trapezoid(y, x) == pytest.approx(1.0, abs=0.03)  # a density on 99% range
        assert np.sum(x * y) / np.sum(y) == pytest.approx(column.mean(), abs=0.15 * column.std())


def _check_pairs(fig: Figure, comparison, k: int) -> None:
    """A k x k grid: marginals on the diagonal, draws of columns (j, i) below it (reference
    first), contours above it; names on the outer edges."""
    assert len(fig.axes) == k * k
    axes = np.array(fig.axes).reshape(k, k)
    samples = [comparison.reference] + [m.draws for m in comparison.methods]
    for i, j in itertools.product(range(k), range(k)):
        ax = axes[i, j]
        if i == j:
            _check_marginal_panel(ax, comparison, i)
        elif j < i:
            assert len(ax.collections) == len(samples)
            for drawn, draws in zip(ax.collections, samples, strict=True):
                pairs = {tuple(row) for row in draws[:, [j, i]]}
                assert all(tuple(row) in pairs for row in np.asarray(drawn.get_offsets()))
        else:
            assert ax.collections  # contours
    names = comparison.parameters
    assert [ax.get_xlabel() for ax in axes[-1]] == list(names[:k])
    assert [ax.get_ylabel() for ax in axes[1:, 0]] == list(names[1:k])


def test_write_files_and_columns(comparison, tmp_path) -> None:
    paths = comparison.write(tmp_path / "out")
    for key in ("summary", "methods", "markdown", "marginals", "pairs"):
        assert paths[key].is_file() and paths[key].stat().st_size > 0
    assert paths["marginals"] == tmp_path / "out" / "figures" / "marginals.png"

    summary = _read_csv(paths["summary"])
    assert {"method", "parameter", "mean_error_sd", "sd_ratio", "w1_sd"} <= set(summary[0])
    assert len(summary) == 3 * len(NAMES)
    pairs = [(row["method"], row["parameter"]) for row in summary]
    assert pairs == list(itertools.product(["nuts", "auto_normal", "my_flow"], NAMES))

    methods = {row["method"]: row for row in _read_csv(paths["methods"])}
    assert list(methods) == ["nuts", "auto_normal", "my_flow"]
    columns = {"method", "energy", "mmd", "khat", "seconds", "ess_per_second"}
    assert columns <= set(methods["nuts"])
    assert methods["nuts"]["khat"] == ""
    assert methods["auto_normal"]["ess_per_second"] == ""
    assert float(methods["nuts"]["ess_per_second"]) == pytest.approx(150.0)
    assert float(methods["my_flow"]["khat"]) == pytest.approx(0.4)
    assert "underdispersed" in methods["auto_normal"]["flagged"]
    assert methods["nuts"]["flagged"] == ""


def test_write_draws_the_figures(comparison, tmp_path, saved) -> None:
    """Both figures: declared pixel size, not blank, every parameter and method drawn."""
    paths = comparison.write(tmp_path / "out")
    marginals, pairs = saved
    legend = ["reference (analytic)", "nuts", "auto_normal", "my_flow"]

    _check_png(paths["marginals"], (9.0, 2.3 + 1.1))  # one row of three panels
    assert len(marginals.axes) == len(NAMES)
    for p, ax in enumerate(marginals.axes):
        assert ax.get_title() == NAMES[p]
        _check_marginal_panel(ax, comparison, p)
    assert marginals.get_suptitle() == "Posterior marginals" and _legend(marginals) == legend

    _check_png(paths["pairs"], (7.2, 8.0))
    _check_pairs(pairs, comparison, 3)
    assert pairs.get_suptitle().startswith("Pairs\n") and _legend(pairs) == legend


def test_to_markdown_has_tables_methods_and_flags(comparison) -> None:
    text = comparison.to_markdown()
    assert "| method |" in text
    assert "| parameter | method |" in text
    for name in ("nuts", "auto_normal", "my_flow", "analytic", "noise floor", *NAMES):
        assert name in text
    assert "k-hat 0.9 > 0.7" in text
    assert text.index("| nuts") < text.index("| auto_normal") < text.index("| my_flow")


def test_method_colors_fixed_deterministic_and_distinct() -> None:
    names = ["nuts", "auto_normal", "flow_a", "flow_b", "flow_c"]
    colors = method_colors(names)
    assert colors["nuts"] == "#1f77b4" and "nuts" in METHOD_COLORS
    assert method_colors(list(reversed(names)))["nuts"] == colors["nuts"]
    assert method_colors(names) == colors
    assert len(set(colors.values())) == len(names)
    assert "#7f7f7f" not in colors.values()  # tab:gray is the reference's


def test_plots_with_many_parameters(tmp_path, saved) -> None:
    """The first 12 (marginals) or 2 (pairs) parameters; a constant method is a vertical line."""
    rng = np.random.default_rng(30)
    reference = rng.normal(size=(300, 14))
    constant = np.ones((300, 14))  # a degenerate method must not break the density estimates
    names = [f"beta[{i + 1}]" for i in range(14)]
    result = compare(
        reference,
        names,
        [MethodResult("nuts", rng.normal(size=(300, 14))), MethodResult("broken", constant)],
        reference_name="posteriordb",
    )
    marginals = plot_marginals(result, tmp_path / "a" / "marginals.png")
    pairs = plot_pairs(result, tmp_path / "pairs.png", max_parameters=2)
    marginals_fig, pairs_fig = saved
    legend = ["reference (posteriordb)", "nuts", "broken"]

    _check_png(marginals, (12.0, 3 * 2.3 + 1.1))  # 4 x 3 panels
    assert len(marginals_fig.axes) == 12
    for p, ax in enumerate(marginals_fig.axes):
        assert ax.get_title() == names[p]
        _check_marginal_panel(ax, result, p)
        np.testing.assert_array_equal(ax.get_lines()[1].get_xdata(), [1.0, 1.0])  # constant
    assert marginals_fig.get_suptitle() == "Posterior marginals (first 12 of 14 parameters)"
    assert _legend(marginals_fig) == legend

    _check_png(pairs, (6.0, 6.8))
    _check_pairs(pairs_fig, result, 2)
    assert pairs_fig.get_suptitle().startswith("Pairs (first 2 of 14 parameters)\n")
    assert _legend(pairs_fig) == legend
