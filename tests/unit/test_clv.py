"""BG/NBD, MBG/NBD and Gamma-Gamma CLV models: recovery from their own generative processes, closed
forms against independent computations, model selection, the RFM summary by hand, CLV arithmetic,
input errors, and the rule for zero and negative amounts in warehouse purchases.

Reference values are computed here without the module's helpers: simulators written from the
models' stories, the Gauss hypergeometric series summed in plain Python, and numerical
integration over the posterior with scipy.integrate.quad.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import replace

import duckdb
import numpy as np
import pandas as pd
import pytest
from scipy import integrate
from scipy.special import gammaln

from models_ml.clv import (
    BetaGeoParams,
    GammaGammaParams,
    bgnbd_log_likelihood,
    customer_lifetime_value,
    expected_average_spend,
    expected_purchases,
    expected_purchases_new_customer,
    fit_bgnbd,
    fit_gamma_gamma,
    gamma_gamma_log_likelihood,
    probability_alive,
    rfm_summary,
    select_beta_geo,
    spend_frequency_correlation,
)
from models_ml.features import FeatureSources
from models_ml.lifetime_value import _require_finite_spend, train_clv, transactions
from models_ml.registry import LoadedModel
from models_ml.scoring import score_customers
from models_ml.training import InsufficientData

BG_TRUE = BetaGeoParams(r=0.8, alpha=40.0, a=0.8, b=2.5)  # time unit: days
BG_A_ABOVE_1 = BetaGeoParams(r=2.0, alpha=10.0, a=3.0, b=8.0)
# the same numbers under the MBG/NBD: about a quarter (a / (a + b)) of new customers drop out at once
MBG_TRUE = replace(BG_TRUE, variant="mbgnbd")
MBG_A_ABOVE_1 = replace(BG_A_ABOVE_1, variant="mbgnbd")
GG_TRUE = GammaGammaParams(p=6.0, q=4.0, v=15.0)

# Relative tolerances for recovery, about 5 standard deviations of each estimate: in 40 repeated
# simulations of these sizes the estimates' relative SDs were r 1.1%, alpha 1.5%, a 2.8%, b 4.0%
# (20,000 customers) and p 3.3%, q 1.4%, v 4.6%, p v / (q - 1) 0.45% (30,000 customers).
BG_TOL = {"r": 0.06, "alpha": 0.08, "a": 0.15, "b": 0.20}
# The MBG/NBD at 20,000 customers (40 simulations): relative SDs r 2.7%, alpha 2.5%, a 2.8%, b 5.0%,
# biases under 1%. r and alpha are less sharp than under the BG/NBD: a customer without a repeat
# purchase is either gone or slow, and only the MBG/NBD has to tell which.
MBG_TOL = {"r": 0.14, "alpha": 0.13, "a": 0.14, "b": 0.25}
GG_TOL = {"p": 0.15, "q": 0.08, "v": 0.20}
GG_MEAN_TOL = 0.025


# --------------------------------------------------------------------------------------------
# simulators: the models' generative stories
# --------------------------------------------------------------------------------------------


def simulate_bgnbd(
    params: BetaGeoParams, T: np.ndarray, rng: np.random.Generator, future: float = 0.0
) -> dict[str, np.ndarray]:
    """Per customer: lambda ~ Gamma(r, rate alpha), p ~ Beta(a, b); purchases arrive as a Poisson
    process with rate lambda from time 0; after each repeat purchase the customer dies with
    probability p, and for ``params.variant == "mbgnbd"`` also right after the first purchase (at
    time 0, before any repeat purchase). Observed: x (purchases in (0, T]), t_x (time of the last),
    plus the truth (alive at T) and the purchases in (T, T + future]."""
    n = T.shape[0]
    lam = rng.gamma(params.r, 1.0 / params.alpha, n)
    p = rng.beta(params.a, params.b, n)
    end = T + future
    x = np.zeros(n, dtype=np.int64)
    tx = np.zeros(n)
    later = np.zeros(n, dtype=np.int64)
    died_at = np.full(n, np.inf)
    now = np.zeros(n)
    active = np.arange(n)
    if params.variant == "mbgnbd":  # the drop-out coin of the first purchase
        dies = rng.random(n) < p
        died_at[dies] = 0.0
        active = active[~dies]
    while active.size:
        now[active] += rng.exponential(1.0, active.size) / lam[active]
        active = active[now[active] <= end[active]]
        observed = now[active] <= T[active]
        x[active[observed]] += 1
        tx[active[observed]] = now[active[observed]]
        later[active[~observed]] += 1
        dies = rng.random(active.size) < p[active]
        died_at[active[dies]] = now[active[dies]]
        active = active[~dies]
    return {"x": x, "tx": tx, "T": T, "alive": died_at > T, "future": later}


def simulate_gamma_gamma(
    params: GammaGammaParams, frequency: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """nu ~ Gamma(q, rate v) per customer; each purchase's spend z ~ Gamma(p, rate nu); returns the
    mean spend of each customer's ``frequency`` purchases."""
    nu = rng.gamma(params.q, 1.0 / params.v, frequency.shape[0])
    spend = rng.gamma(params.p, 1.0 / np.repeat(nu, frequency))
    starts = np.concatenate([[0], np.cumsum(frequency)[:-1]])
    return np.add.reduceat(spend, starts) / frequency


@pytest.fixture(scope="module")
def bg_data() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(20240601)
    return simulate_bgnbd(BG_TRUE, rng.uniform(180.0, 720.0, 20_000), rng)


@pytest.fixture(scope="module")
def mbg_data() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(20240602)
    return simulate_bgnbd(MBG_TRUE, rng.uniform(180.0, 720.0, 20_000), rng)


@pytest.fixture(scope="module")
def gg_data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    frequency = 1 + rng.poisson(1.0, 30_000)
    return frequency, simulate_gamma_gamma(GG_TRUE, frequency, rng)


# --------------------------------------------------------------------------------------------
# independent references
# --------------------------------------------------------------------------------------------


def hyp2f1_series(a: float, b: float, c: float, z: float) -> float:
    """Gauss hypergeometric series, summed term by term (positive parameters, 0 <= z < 1)."""
    total, term, k = 1.0, 1.0, 0
    while True:
        term *= (a + k) * (b + k) / ((c + k) * (k + 1)) * z
        total += term
        k += 1
        if abs(term) < 1e-17 * abs(total) and k > 5:
            return total


def beta_integral(f, a: float, b: float) -> float:
    """int_0^1 f(p) p^(a-1) (1-p)^(b-1) dp (unnormalised; endpoint singularities by QAWS)."""
    value, _ = integrate.quad(
        f, 0.0, 1.0, weight="alg", wvar=(a - 1.0, b - 1.0), epsabs=0, epsrel=1e-11, limit=200
    )
    return value


def coins(params: BetaGeoParams, x: int) -> int:
    """Drop-out coins survived by a customer alive after x repeat purchases: one per repeat
    purchase, plus the first purchase's under the MBG/NBD."""
    return x + 1 if params.variant == "mbgnbd" else x


def posterior_reference(params: BetaGeoParams, t: float, x: int, tx: float, T: float) -> tuple[float, float]:
    """(P(alive), E[Y(t)]) by integrating lambda out by hand and p numerically.

    With n = coins(params, x), for given (lambda, p):
    L = (1-p)^n lambda^x e^(-lambda T) + [n>0] p (1-p)^(n-1) lambda^x e^(-lambda t_x),
    and alive at T the future purchases have mean (1 - e^(-lambda p t)) / p. With lambda ~ Gamma(r, alpha),
    E[lambda^x e^(-lambda s)] is proportional to (alpha + s)^-(r+x); every term is scaled by (alpha+T)^(r+x).
    """
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    s = r + x
    n = coins(params, x)

    def alive(p: float) -> float:
        return (1 - p) ** n

    def dead(p: float) -> float:
        return p * (1 - p) ** (n - 1) * ((alpha + T) / (alpha + tx)) ** s if n > 0 else 0.0

    def future(p: float) -> float:
        if p == 0:
            return s * t / (alpha + T)
        return (1 - p) ** n * (1 - ((alpha + T) / (alpha + T + p * t)) ** s) / p

    total = beta_integral(lambda p: alive(p) + dead(p), a, b)
    return beta_integral(alive, a, b) / total, beta_integral(future, a, b) / total


def new_customer_reference_series(params: BetaGeoParams, t: float) -> float:
    """Fader, Hardie & Lee (2005) eq. (9), or for the MBG/NBD Batislam, Denizel & Filiztekin (2007),
    with the series above."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    z = t / (alpha + t)
    if params.variant == "mbgnbd":
        return b / (a - 1) * (1 - (alpha / (alpha + t)) ** r * hyp2f1_series(r, b + 1, a + b, z))
    return (a + b - 1) / (a - 1) * (1 - (alpha / (alpha + t)) ** r * hyp2f1_series(r, b, a + b - 1, z))


def conditional_reference_series(params: BetaGeoParams, t: float, x: int, tx: float, T: float) -> float:
    """Fader, Hardie & Lee (2005) eq. (10), or the MBG/NBD's published form, with the series above."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    z = t / (alpha + T + t)
    ratio = ((alpha + T) / (alpha + tx)) ** (r + x)
    if params.variant == "mbgnbd":
        bracket = 1 - ((alpha + T) / (alpha + T + t)) ** (r + x) * hyp2f1_series(
            r + x, b + x + 1, a + b + x, z
        )
        return (a + b + x) / (a - 1) * bracket / (1 + a / (b + x) * ratio)
    bracket = 1 - ((alpha + T) / (alpha + T + t)) ** (r + x) * hyp2f1_series(r + x, b + x, a + b + x - 1, z)
    odds = a / (b + x - 1) * ratio if x > 0 else 0.0
    return (a + b + x - 1) / (a - 1) * bracket / (1 + odds)


# --------------------------------------------------------------------------------------------
# BG/NBD: fit
# --------------------------------------------------------------------------------------------


def test_bgnbd_recovers_simulated_parameters(bg_data) -> None:
    fit = fit_bgnbd(bg_data["x"], bg_data["tx"], bg_data["T"])
    assert fit.converged, fit.message
    assert fit.n == 20_000
    assert fit.params.variant == "bgnbd"
    assert fit.compared == ()
    for name, tol in BG_TOL.items():
        got, true = getattr(fit.params, name), getattr(BG_TRUE, name)
        assert abs(got / true - 1) < tol, f"{name}: fitted {got:.4f}, true {true}, tolerance {tol:.0%}"
    ll = fit.log_likelihood
    assert ll == pytest.approx(
        bgnbd_log_likelihood(fit.params, bg_data["x"], bg_data["tx"], bg_data["T"]).sum()
    )


def test_bgnbd_fit_is_a_real_maximum(bg_data) -> None:
    x, tx, T = bg_data["x"], bg_data["tx"], bg_data["T"]
    fit = fit_bgnbd(x, tx, T)

    def total(params: BetaGeoParams) -> float:
        return float(bgnbd_log_likelihood(params, x, tx, T).sum())

    # the MLE beats the truth, but not by more than sampling noise (chi-square, 4 df)
    assert 0 <= fit.log_likelihood - total(BG_TRUE) < 15
    for name, tol in BG_TOL.items():
        for sign in (+1, -1):
            value = getattr(fit.params, name)
            # a stationary point: tiny moves do not help ...
            assert (
                total(replace(fit.params, **{name: value * (1 + sign * 1e-3)})) <= fit.log_likelihood + 1e-6
            )
            # ... and a parameter off by its tolerance is clearly worse (chi-square 1 df: 1.92 at 95%)
            assert fit.log_likelihood - total(replace(fit.params, **{name: value * (1 + sign * tol)})) > 10
    # another start reaches the same optimum
    other = fit_bgnbd(x, tx, T, initial=BetaGeoParams(r=0.1, alpha=1.0, a=5.0, b=0.2))
    assert other.converged
    for name in BG_TOL:
        assert getattr(other.params, name) == pytest.approx(getattr(fit.params, name), rel=1e-3)


def test_bgnbd_weights_equal_repeated_rows(bg_data) -> None:
    # in whole months, so that many customers share (x, t_x, T)
    frame = pd.DataFrame(
        {
            "x": bg_data["x"][:3000],
            "tx": np.floor(bg_data["tx"][:3000] / 30),
            "T": np.ceil(bg_data["T"][:3000] / 30),
        }
    )
    counts = frame.groupby(["x", "tx", "T"]).size().reset_index(name="n")
    full = fit_bgnbd(frame["x"], frame["tx"], frame["T"])
    weighted = fit_bgnbd(counts["x"], counts["tx"], counts["T"], weights=counts["n"])
    assert weighted.n == full.n == 3000
    assert weighted.log_likelihood == pytest.approx(full.log_likelihood, rel=1e-9)
    for name in BG_TOL:
        assert getattr(weighted.params, name) == pytest.approx(getattr(full.params, name), rel=1e-4)


def test_penalizer_shrinks_log_parameters(bg_data) -> None:
    x, tx, T = bg_data["x"][:5000], bg_data["tx"][:5000], bg_data["T"][:5000]
    free = fit_bgnbd(x, tx, T)
    shrunk = fit_bgnbd(x, tx, T, penalizer=0.1)
    norm = lambda p: sum(math.log(getattr(p, k)) ** 2 for k in BG_TOL)  # noqa: E731
    assert norm(shrunk.params) < norm(free.params)
    assert shrunk.log_likelihood < free.log_likelihood


@pytest.mark.parametrize("params", [BG_TRUE, MBG_TRUE, MBG_A_ABOVE_1], ids=["bgnbd", "mbgnbd", "mbgnbd a>1"])
def test_bgnbd_likelihood_is_a_probability_distribution(params: BetaGeoParams) -> None:
    """Sum over x of the density of (x, t_x) is 1 and its mean is E[X(T)].

    The likelihood is the density of the whole purchase sequence, which depends on it only
    through (x, t_x); the sequences with a given t_x fill a volume t_x^(x-1) / (x-1)!.
    """
    T = 100.0
    nodes, weights = np.polynomial.legendre.leggauss(80)
    t = (nodes + 1) * T / 2
    probs = [math.exp(bgnbd_log_likelihood(params, [0], [0], [T])[0])]
    for x in range(1, 200):
        ll = bgnbd_log_likelihood(params, np.full(t.shape, x), t, np.full(t.shape, T))
        probs.append(float(np.sum(weights * np.exp(ll + (x - 1) * np.log(t) - gammaln(x)))) * T / 2)
    probs_arr = np.array(probs)
    assert probs_arr.sum() == pytest.approx(1.0, abs=1e-8)
    mean = float(np.dot(np.arange(len(probs_arr)), probs_arr))
    assert mean == pytest.approx(float(expected_purchases_new_customer(params, T)), rel=1e-7)


# --------------------------------------------------------------------------------------------
# BG/NBD: closed forms
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [BG_TRUE, BG_A_ABOVE_1, MBG_TRUE, MBG_A_ABOVE_1],
    ids=["bgnbd a<1", "bgnbd a>1", "mbgnbd a<1", "mbgnbd a>1"],
)
def test_expected_purchases_new_customer_matches_monte_carlo(params: BetaGeoParams) -> None:
    rng = np.random.default_rng(11)
    n = 100_000
    for t in (30.0, 180.0, 720.0):
        sim = simulate_bgnbd(params, np.full(n, t), rng)
        mc_mean, mc_se = sim["x"].mean(), sim["x"].std(ddof=1) / math.sqrt(n)
        model = float(expected_purchases_new_customer(params, t))
        assert abs(model - mc_mean) < 4 * mc_se, (
            f"t={t}: model {model:.4f}, simulation {mc_mean:.4f} +- {mc_se:.4f}"
        )


@pytest.mark.parametrize(
    "params",
    [BG_TRUE, BG_A_ABOVE_1, MBG_TRUE, MBG_A_ABOVE_1],
    ids=["bgnbd a<1", "bgnbd a>1", "mbgnbd a<1", "mbgnbd a>1"],
)
def test_expected_purchases_new_customer_matches_series(params: BetaGeoParams) -> None:
    ts = np.array([0.5, 7.0, 30.0, 90.0, 360.0])
    got = expected_purchases_new_customer(params, ts)
    assert got.shape == ts.shape
    want = [new_customer_reference_series(params, float(t)) for t in ts]
    np.testing.assert_allclose(got, want, rtol=1e-9)
    assert float(expected_purchases_new_customer(params, 0.0)) == 0.0


@pytest.mark.parametrize("variant", ["bgnbd", "mbgnbd"])
@pytest.mark.parametrize(
    "params",
    [
        BetaGeoParams(0.5, 10.0, 1.0, 2.0),
        BetaGeoParams(0.5, 10.0, 0.3, 0.4),
        BetaGeoParams(0.3, 5.0, 0.05, 0.05),
    ],
    ids=["a=1", "a+b<1", "tiny a,b"],
)
def test_expected_purchases_new_customer_at_awkward_parameters(params: BetaGeoParams, variant: str) -> None:
    """E[X(t)] = E[(1 - p)^k (1 - (alpha / (alpha + p t))^r) / p] over p ~ Beta(a, b), integrated
    numerically; k = 1 under the MBG/NBD (the customer must survive the first purchase's coin)."""
    params = replace(params, variant=variant)
    k = coins(params, 0)
    for t in (1.0, 30.0, 365.0, 3650.0):

        def integrand(p: float, t: float = t) -> float:
            return (
                params.r * t / params.alpha
                if p == 0
                else (1 - p) ** k * (1 - (params.alpha / (params.alpha + p * t)) ** params.r) / p
            )

        want = beta_integral(integrand, params.a, params.b) / math.exp(
            gammaln(params.a) + gammaln(params.b) - gammaln(params.a + params.b)
        )
        assert float(expected_purchases_new_customer(params, t)) == pytest.approx(want, rel=1e-6)


CASES = [
    (0, 0.0, 200.0),
    (1, 20.0, 200.0),
    (2, 150.0, 200.0),
    (7, 60.0, 365.0),
    (7, 350.0, 365.0),
    (25, 500.0, 540.0),
]


@pytest.mark.parametrize(
    "params",
    [
        BG_TRUE,
        BG_A_ABOVE_1,
        BetaGeoParams(0.5, 10.0, 0.3, 0.4),
        MBG_TRUE,
        MBG_A_ABOVE_1,
        BetaGeoParams(0.5, 10.0, 0.3, 0.4, variant="mbgnbd"),
        BetaGeoParams(0.5, 10.0, 1.0, 2.0, variant="mbgnbd"),
    ],
    ids=str,
)
def test_probability_alive_and_conditional_expectation_match_posterior_integration(
    params: BetaGeoParams,
) -> None:
    x = np.array([c[0] for c in CASES])
    tx = np.array([c[1] for c in CASES])
    T = np.array([c[2] for c in CASES])
    alive = probability_alive(params, x, tx, T)
    for t in (10.0, 90.0, 365.0):
        expected = expected_purchases(params, t, x, tx, T)
        for i, (xi, txi, Ti) in enumerate(CASES):
            ref_alive, ref_expected = posterior_reference(params, t, xi, txi, Ti)
            assert alive[i] == pytest.approx(ref_alive, rel=1e-7)
            assert expected[i] == pytest.approx(ref_expected, rel=1e-6)
    if params.variant == "bgnbd":
        assert alive[0] == 1.0  # no repeat purchase: the BG/NBD cannot have lost the customer
    else:
        assert alive[0] < 1.0  # the MBG/NBD can lose a customer at the first purchase


@pytest.mark.parametrize("params", [BG_TRUE, MBG_TRUE, MBG_A_ABOVE_1], ids=str)
def test_new_customer_is_a_customer_with_no_history(params: BetaGeoParams) -> None:
    """E[X(t)] is E[Y(t) | x = 0, t_x = 0, T = 0]: the unconditional expectation is the conditional one
    just after the first purchase (under the MBG/NBD the first coin is already in P(alive) there)."""
    ts = np.array([1.0, 30.0, 365.0])
    got = expected_purchases(params, ts, np.zeros(3), np.zeros(3), np.zeros(3))
    np.testing.assert_allclose(got, expected_purchases_new_customer(params, ts), rtol=1e-12)


@pytest.mark.parametrize(
    "params",
    [BG_TRUE, BG_A_ABOVE_1, MBG_TRUE, MBG_A_ABOVE_1],
    ids=["bgnbd a<1", "bgnbd a>1", "mbgnbd a<1", "mbgnbd a>1"],
)
def test_conditional_expectation_matches_published_formula_with_series(params: BetaGeoParams) -> None:
    for xi, txi, Ti in CASES:
        for t in (1.0, 30.0, 180.0):
            got = float(expected_purchases(params, t, [xi], [txi], [Ti])[0])
            assert got == pytest.approx(conditional_reference_series(params, t, xi, txi, Ti), rel=1e-8)


@pytest.mark.parametrize("params", [BG_TRUE, MBG_TRUE], ids=["bgnbd", "mbgnbd"])
def test_predictions_are_calibrated_on_simulated_customers(params: BetaGeoParams) -> None:
    """With the true parameters, mean P(alive) matches the share truly alive at T and mean
    E[Y(180)] the purchases the simulator made in (T, T + 180], overall and by frequency band."""
    rng = np.random.default_rng(3)
    sim = simulate_bgnbd(params, rng.uniform(90.0, 540.0, 100_000), rng, future=180.0)
    alive = probability_alive(params, sim["x"], sim["tx"], sim["T"])
    expected = expected_purchases(params, 180.0, sim["x"], sim["tx"], sim["T"])
    bands = {
        "all": sim["x"] >= 0,
        "x=0": sim["x"] == 0,
        "x=1..4": (sim["x"] >= 1) & (sim["x"] <= 4),
        "x>=5": sim["x"] >= 5,
        # P(alive) falls with T for MBG/NBD one-time buyers: check the early and the late ones
        "x=0, T<300": (sim["x"] == 0) & (sim["T"] < 300),
        "x=0, T>=300": (sim["x"] == 0) & (sim["T"] >= 300),
    }
    for band, mask in bands.items():
        n = int(mask.sum())
        truly_alive = sim["alive"][mask].astype(float)
        se = max(truly_alive.std(ddof=1), 1e-3) / math.sqrt(n)
        assert abs(alive[mask].mean() - truly_alive.mean()) < 4 * se, band
        future = sim["future"][mask]
        se = future.std(ddof=1) / math.sqrt(n)
        assert abs(expected[mask].mean() - future.mean()) < 4 * se, band
    one_timers = sim["x"] == 0
    if params.variant == "mbgnbd":
        # a quarter of new customers leave at once, so many one-time buyers are gone
        assert sim["alive"][one_timers].mean() < 0.8
        assert np.all(alive[one_timers] < 1)
    else:
        assert np.all(sim["alive"][one_timers]) and np.all(alive[one_timers] == 1)


def test_probability_alive_behaviour() -> None:
    p = BG_TRUE
    alive = probability_alive(p, [0, 3, 3, 3], [0.0, 100.0, 100.0, 100.0], [50.0, 100.0, 200.0, 400.0])
    assert alive[0] == 1.0
    assert alive[1] == pytest.approx(1 / (1 + p.a / (p.b + 2)))  # just bought: only the drop-out coin
    assert alive[1] > alive[2] > alive[3] > 0


def test_probability_alive_behaviour_mbgnbd() -> None:
    p = MBG_TRUE
    zeros = np.zeros(4)
    one_timers = probability_alive(p, zeros, zeros, [0.0, 30.0, 180.0, 720.0])
    # just acquired: only the first purchase's coin, survived with probability E[1 - p] = b / (a + b)
    assert one_timers[0] == pytest.approx(p.b / (p.a + p.b))
    assert one_timers[1] == pytest.approx(1 / (1 + p.a / p.b * ((p.alpha + 30) / p.alpha) ** p.r))
    assert one_timers[0] > one_timers[1] > one_timers[2] > one_timers[3] > 0
    alive = probability_alive(p, [3, 3], [100.0, 100.0], [100.0, 200.0])
    assert alive[0] == pytest.approx(1 / (1 + p.a / (p.b + 3)))  # four coins survived so far
    assert alive[0] > alive[1]
    # the same numbers under the BG/NBD keep every one-time buyer
    assert np.all(probability_alive(BG_TRUE, zeros, zeros, [0.0, 30.0, 180.0, 720.0]) == 1.0)


# --------------------------------------------------------------------------------------------
# MBG/NBD: fit and model selection
# --------------------------------------------------------------------------------------------


def test_select_beta_geo_picks_mbgnbd_on_mbgnbd_data_and_recovers_it(mbg_data) -> None:
    x, tx, T = mbg_data["x"], mbg_data["tx"], mbg_data["T"]
    fit = select_beta_geo(x, tx, T)
    assert fit.params.variant == "mbgnbd"
    assert fit.converged, fit.message
    assert fit.n == 20_000
    for name, tol in MBG_TOL.items():
        got, true = getattr(fit.params, name), getattr(MBG_TRUE, name)
        assert abs(got / true - 1) < tol, f"{name}: fitted {got:.4f}, true {true}, tolerance {tol:.0%}"

    def total(params: BetaGeoParams) -> float:
        return float(bgnbd_log_likelihood(params, x, tx, T).sum())

    compared = dict(fit.compared)
    assert list(compared) == ["bgnbd", "mbgnbd"]
    assert compared["mbgnbd"] == fit.log_likelihood == pytest.approx(total(fit.params))
    # 40 simulations like this one: the MBG/NBD won by 190 .. 290 log-likelihood units
    assert compared["mbgnbd"] - compared["bgnbd"] > 100
    assert fit.message.startswith("mbgnbd selected by log-likelihood (bgnbd ")
    # the MLE beats the truth, but not by more than sampling noise (chi-square, 4 df)
    assert 0 <= fit.log_likelihood - total(MBG_TRUE) < 15
    for name, tol in MBG_TOL.items():
        for sign in (+1, -1):
            value = getattr(fit.params, name)
            # a stationary point (so the gradient is right) ...
            assert (
                total(replace(fit.params, **{name: value * (1 + sign * 1e-3)})) <= fit.log_likelihood + 1e-6
            )
            # ... and a parameter off by its tolerance is clearly worse
            assert fit.log_likelihood - total(replace(fit.params, **{name: value * (1 + sign * tol)})) > 10
    # fit_bgnbd with the variant, from another start, is the same fit
    other = fit_bgnbd(x, tx, T, variant="mbgnbd", initial=BetaGeoParams(r=0.1, alpha=1.0, a=5.0, b=0.2))
    assert other.converged and other.params.variant == "mbgnbd" and other.compared == ()
    for name in MBG_TOL:
        assert getattr(other.params, name) == pytest.approx(getattr(fit.params, name), rel=1e-3)


def test_select_beta_geo_picks_bgnbd_on_bgnbd_data(bg_data) -> None:
    x, tx, T = bg_data["x"], bg_data["tx"], bg_data["T"]
    fit = select_beta_geo(x, tx, T)
    assert fit.params.variant == "bgnbd"
    assert fit.converged, fit.message
    compared = dict(fit.compared)
    # 40 simulations like this one: the BG/NBD won by 1,140 .. 1,420 log-likelihood units
    assert compared["bgnbd"] - compared["mbgnbd"] > 500
    assert compared["bgnbd"] == fit.log_likelihood
    assert fit.message.startswith("bgnbd selected by log-likelihood")
    plain = fit_bgnbd(x, tx, T)
    assert fit.params == plain.params and fit.log_likelihood == plain.log_likelihood
    # the MBG/NBD candidate's log-likelihood is that of its own parameters
    mbg = fit_bgnbd(x[:2000], tx[:2000], T[:2000], variant="mbgnbd")
    assert mbg.log_likelihood == pytest.approx(
        float(bgnbd_log_likelihood(mbg.params, x[:2000], tx[:2000], T[:2000]).sum())
    )


def test_select_beta_geo_weights_equal_repeated_rows(mbg_data) -> None:
    frame = pd.DataFrame(
        {
            "x": mbg_data["x"][:3000],
            "tx": np.floor(mbg_data["tx"][:3000] / 30),
            "T": np.ceil(mbg_data["T"][:3000] / 30),
        }
    )
    counts = frame.groupby(["x", "tx", "T"]).size().reset_index(name="n")
    full = select_beta_geo(frame["x"], frame["tx"], frame["T"])
    weighted = select_beta_geo(counts["x"], counts["tx"], counts["T"], weights=counts["n"])
    assert weighted.params.variant == full.params.variant
    assert weighted.n == full.n == 3000
    for (v1, ll1), (v2, ll2) in zip(weighted.compared, full.compared, strict=True):
        assert v1 == v2 and ll1 == pytest.approx(ll2, rel=1e-9)


# --------------------------------------------------------------------------------------------
# Gamma-Gamma
# --------------------------------------------------------------------------------------------


def test_gamma_gamma_recovers_simulated_parameters(gg_data) -> None:
    frequency, monetary = gg_data
    fit = fit_gamma_gamma(frequency, monetary)
    assert fit.converged, fit.message
    assert fit.n == 30_000
    for name, tol in GG_TOL.items():
        got, true = getattr(fit.params, name), getattr(GG_TRUE, name)
        assert abs(got / true - 1) < tol, f"{name}: fitted {got:.4f}, true {true}, tolerance {tol:.0%}"
    assert fit.params.population_mean_spend == pytest.approx(GG_TRUE.population_mean_spend, rel=GG_MEAN_TOL)

    def total(params: GammaGammaParams) -> float:
        return float(gamma_gamma_log_likelihood(params, frequency, monetary).sum())

    assert fit.log_likelihood == pytest.approx(total(fit.params))
    assert 0 <= fit.log_likelihood - total(GG_TRUE) < 12
    for name, tol in GG_TOL.items():
        for sign in (+1, -1):
            wrong = replace(fit.params, **{name: getattr(fit.params, name) * (1 + sign * tol)})
            assert fit.log_likelihood - total(wrong) > 10


def test_gamma_gamma_ignores_customers_without_repeat_purchases(gg_data) -> None:
    frequency, monetary = gg_data
    frequency, monetary = frequency[:4000], monetary[:4000]
    base = fit_gamma_gamma(frequency, monetary)
    padded = fit_gamma_gamma(
        np.concatenate([frequency, [0, 0, 0]]), np.concatenate([monetary, [0.0, 5.0, 0.0]])
    )
    assert padded.n == base.n == 4000
    assert padded.params.p == pytest.approx(base.params.p, rel=1e-6)


def test_gamma_gamma_density_integrates_to_one() -> None:
    for x in (1, 3, 12):

        def density(m: float, x: int = x) -> float:
            return math.exp(gamma_gamma_log_likelihood(GG_TRUE, [x], [m])[0])

        value, _ = integrate.quad(density, 0, np.inf, epsabs=1e-12, limit=200)
        assert value == pytest.approx(1.0, abs=1e-8)


def test_expected_average_spend_closed_form_and_shrinkage() -> None:
    p, q, v = GG_TRUE.p, GG_TRUE.q, GG_TRUE.v
    frequency = np.array([0, 1, 2, 10, 100])
    monetary = np.array([0.0, 80.0, 80.0, 80.0, 80.0])
    got = expected_average_spend(GG_TRUE, frequency, monetary)
    population = p * v / (q - 1)  # 30
    assert got[0] == pytest.approx(population)
    assert got[1] == pytest.approx(6 * (15 + 80) / (6 + 4 - 1))
    assert got[2] == pytest.approx(6 * (15 + 160) / (12 + 4 - 1))
    assert got[3] == pytest.approx(6 * (15 + 800) / (60 + 4 - 1))
    assert got[4] == pytest.approx(6 * (15 + 8000) / (600 + 4 - 1))
    # shrinks toward the population mean, less so the more purchases are seen
    assert population < got[1] < got[2] < got[3] < got[4] < 80.0
    assert abs(got[4] - 80) < 1.0


def test_expected_average_spend_is_the_posterior_mean_of_p_over_nu() -> None:
    """Posterior of nu given x purchases averaging m: density prop. to nu^(px+q-1) e^(-nu (v + x m))."""
    p, q, v = GG_TRUE.p, GG_TRUE.q, GG_TRUE.v
    for x, m in ((1, 5.0), (4, 42.0), (20, 18.0)):
        shape, rate = p * x + q, v + x * m
        mode = (shape - 1) / rate

        def kernel(
            nu: float, power: float, shape: float = shape, rate: float = rate, mode: float = mode
        ) -> float:
            # nu^(shape-1+power) e^(-rate nu), divided by its value at the mode to stay in range
            if nu <= 0:
                return 0.0
            return math.exp((shape - 1) * math.log(nu / mode) - rate * (nu - mode) + power * math.log(nu))

        upper = mode * 20 + 50 / rate
        num, _ = integrate.quad(kernel, 0, upper, args=(-1.0,), points=[mode], epsrel=1e-12, limit=200)
        den, _ = integrate.quad(kernel, 0, upper, args=(0.0,), points=[mode], epsrel=1e-12, limit=200)
        assert float(expected_average_spend(GG_TRUE, [x], [m])[0]) == pytest.approx(p * num / den, rel=1e-8)


def test_spend_frequency_correlation(gg_data) -> None:
    frequency = np.array([0, 1, 2, 3, 4])
    monetary = np.array([0.0, 10.0, 12.0, 11.0, 20.0])
    want = np.corrcoef([1, 2, 3, 4], [10.0, 12.0, 11.0, 20.0])[0, 1]
    assert spend_frequency_correlation(frequency, monetary) == pytest.approx(want)
    assert math.isnan(spend_frequency_correlation([0, 2], [0.0, 5.0]))
    # the simulator draws spend independently of frequency
    assert abs(spend_frequency_correlation(*gg_data)) < 0.03


# --------------------------------------------------------------------------------------------
# RFM summary
# --------------------------------------------------------------------------------------------


@pytest.fixture
def orders() -> pd.DataFrame:
    rows = [
        ("c1", "2024-01-01 10:00", 10.0),
        ("c1", "2024-01-01 15:00", 5.0),  # same day: one purchase day of 15
        ("c1", "2024-01-11 09:00", 20.0),
        ("c1", "2024-02-10 09:00", 30.0),
        ("c1", "2024-02-10 22:00", 12.0),  # 42 on Feb 10
        ("c1", "2024-04-01 00:00", 100.0),  # after the cutoff day: ignored
        ("c2", "2024-03-31 23:59:59", 7.0),  # on the cutoff day: counts
        ("c3", "2024-04-02 12:00", 50.0),  # only after the cutoff: no row
        ("c4", "2024-02-29 08:00", 8.0),
        ("c4", "2024-03-01 08:00", 4.0),
    ]
    frame = pd.DataFrame(rows, columns=["customer_id", "ordered_at", "amount"])
    frame["ordered_at"] = pd.to_datetime(frame["ordered_at"], format="ISO8601")
    return frame.sample(frac=1.0, random_state=1)  # order must not matter


def test_rfm_summary_by_hand(orders) -> None:
    rfm = rfm_summary(orders, dt.date(2024, 3, 31))
    assert list(rfm.index) == ["c1", "c2", "c4"]
    assert rfm.index.name == "customer_id"
    c1, c2, c4 = rfm.loc["c1"], rfm.loc["c2"], rfm.loc["c4"]
    # c1: purchase days Jan 1 (15), Jan 11 (20), Feb 10 (42)
    assert c1["frequency"] == 2
    assert c1["recency"] == 40.0  # Jan 1 -> Feb 10
    assert c1["T"] == 90.0  # Jan 1 -> Mar 31, 2024 is a leap year
    assert c1["monetary_value"] == pytest.approx((20 + 42) / 2)
    assert c1["first_purchase"] == pd.Timestamp("2024-01-01")
    assert c1["last_purchase"] == pd.Timestamp("2024-02-10")
    # c2: one purchase on the cutoff day
    assert (c2["frequency"], c2["recency"], c2["T"], c2["monetary_value"]) == (0, 0.0, 0.0, 0.0)
    # c4: Feb 29 and Mar 1
    assert (c4["frequency"], c4["recency"], c4["T"], c4["monetary_value"]) == (1, 1.0, 31.0, 4.0)
    assert rfm["frequency"].dtype == np.int64


def test_rfm_summary_cutoff_forms_and_time_unit(orders) -> None:
    base = rfm_summary(orders, dt.date(2024, 3, 31))
    # a timestamp during the cutoff day still means "up to the end of that day"
    pd.testing.assert_frame_equal(rfm_summary(orders, pd.Timestamp("2024-03-31 08:00")), base)
    weeks = rfm_summary(orders, "2024-03-31", time_unit_days=7.0)
    np.testing.assert_allclose(weeks["recency"], base["recency"] / 7)
    np.testing.assert_allclose(weeks["T"], base["T"] / 7)
    # on Feb 10 only c1 has bought (c4 starts on Feb 29); the Feb 10 orders count
    earlier = rfm_summary(orders, dt.date(2024, 2, 10))
    assert list(earlier.index) == ["c1"]
    c1 = earlier.loc["c1"]
    assert (c1["frequency"], c1["recency"], c1["T"], c1["monetary_value"]) == (2, 40.0, 40.0, 31.0)
    # the day before, Feb 10 is the future
    before = rfm_summary(orders, dt.date(2024, 2, 9)).loc["c1"]
    assert (before["frequency"], before["recency"], before["T"], before["monetary_value"]) == (
        1,
        10.0,
        39.0,
        20.0,
    )


def test_rfm_summary_timezone_aware_and_custom_columns() -> None:
    frame = pd.DataFrame(
        {
            "who": ["a", "a", "a"],
            "at": pd.to_datetime(
                ["2024-03-01T23:30:00", "2024-03-02T00:30:00", "2024-03-05T23:59:00"]
            ).tz_localize("Europe/Amsterdam"),
            "eur": [1.0, 2.0, 3.0],
        }
    )
    rfm = rfm_summary(frame, dt.date(2024, 3, 5), customer_col="who", datetime_col="at", amount_col="eur")
    assert rfm.index.name == "who"
    assert (rfm.loc["a", "frequency"], rfm.loc["a", "recency"], rfm.loc["a", "T"]) == (2, 4.0, 4.0)
    assert rfm.loc["a", "monetary_value"] == pytest.approx(2.5)


def test_rfm_summary_feeds_the_models(orders) -> None:
    rfm = rfm_summary(orders, dt.date(2024, 3, 31))
    alive = probability_alive(BG_TRUE, rfm["frequency"], rfm["recency"], rfm["T"])
    assert alive.shape == (3,)
    spend = expected_average_spend(GG_TRUE, rfm["frequency"], rfm["monetary_value"])
    assert spend[1] == pytest.approx(GG_TRUE.population_mean_spend)


# --------------------------------------------------------------------------------------------
# CLV
# --------------------------------------------------------------------------------------------

CUSTOMERS = {
    "frequency": np.array([0, 1, 5, 20]),
    "recency": np.array([0.0, 30.0, 200.0, 350.0]),
    "T": np.array([100.0, 300.0, 365.0, 360.0]),
    "monetary_value": np.array([0.0, 25.0, 60.0, 40.0]),
}


def test_clv_one_undiscounted_period_is_purchases_times_spend() -> None:
    c = CUSTOMERS
    clv = customer_lifetime_value(BG_TRUE, GG_TRUE, **c, horizon=30.0, period=30.0)
    purchases = expected_purchases(BG_TRUE, 30.0, c["frequency"], c["recency"], c["T"])
    spend = expected_average_spend(GG_TRUE, c["frequency"], c["monetary_value"])
    np.testing.assert_allclose(clv, purchases * spend, rtol=1e-12)
    # undiscounted periods telescope to the whole horizon
    year = customer_lifetime_value(BG_TRUE, GG_TRUE, **c, horizon=365.0)
    np.testing.assert_allclose(
        year, expected_purchases(BG_TRUE, 365.0, c["frequency"], c["recency"], c["T"]) * spend, rtol=1e-10
    )


def test_clv_discounting_by_hand() -> None:
    c = CUSTOMERS
    args = (c["frequency"], c["recency"], c["T"])
    spend = expected_average_spend(GG_TRUE, c["frequency"], c["monetary_value"])
    # 70 days in periods of 30: ends at 30, 60 and 70 days
    e30, e60, e70 = (expected_purchases(BG_TRUE, t, *args) for t in (30.0, 60.0, 70.0))
    want = spend * (
        e30 / 1.1 ** (30 / 365) + (e60 - e30) / 1.1 ** (60 / 365) + (e70 - e60) / 1.1 ** (70 / 365)
    )
    got = customer_lifetime_value(BG_TRUE, GG_TRUE, **c, horizon=70.0, annual_discount_rate=0.1)
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_clv_discounting_lowers_and_horizon_raises() -> None:
    c = CUSTOMERS
    plain = customer_lifetime_value(BG_TRUE, GG_TRUE, **c, horizon=365.0)
    discounted = customer_lifetime_value(BG_TRUE, GG_TRUE, **c, horizon=365.0, annual_discount_rate=0.15)
    longer = customer_lifetime_value(BG_TRUE, GG_TRUE, **c, horizon=730.0)
    assert np.all(plain > 0)
    assert np.all(discounted < plain)
    assert np.all(longer > plain)
    assert np.all(customer_lifetime_value(BG_TRUE, GG_TRUE, **c, horizon=0.0) == 0)


def test_clv_dispatches_on_the_variant() -> None:
    c = CUSTOMERS
    args = (c["frequency"], c["recency"], c["T"])
    spend = expected_average_spend(GG_TRUE, c["frequency"], c["monetary_value"])
    bg = customer_lifetime_value(BG_TRUE, GG_TRUE, **c, horizon=365.0)
    mbg = customer_lifetime_value(MBG_TRUE, GG_TRUE, **c, horizon=365.0)
    np.testing.assert_allclose(mbg, expected_purchases(MBG_TRUE, 365.0, *args) * spend, rtol=1e-10)
    np.testing.assert_allclose(bg, expected_purchases(BG_TRUE, 365.0, *args) * spend, rtol=1e-10)
    assert np.all(np.abs(mbg / bg - 1) > 1e-3)
    # discounted, by hand from the MBG/NBD's expectations
    e30, e60, e70 = (expected_purchases(MBG_TRUE, t, *args) for t in (30.0, 60.0, 70.0))
    want = spend * (
        e30 / 1.1 ** (30 / 365) + (e60 - e30) / 1.1 ** (60 / 365) + (e70 - e60) / 1.1 ** (70 / 365)
    )
    got = customer_lifetime_value(MBG_TRUE, GG_TRUE, **c, horizon=70.0, annual_discount_rate=0.1)
    np.testing.assert_allclose(got, want, rtol=1e-12)


@pytest.mark.parametrize("bg_params", [BG_TRUE, MBG_TRUE], ids=["bgnbd", "mbgnbd"])
def test_clv_time_unit(bg_params: BetaGeoParams) -> None:
    """Data in weeks with time_unit_days=7 is the same customer as data in days."""
    c = CUSTOMERS
    days = customer_lifetime_value(
        bg_params, GG_TRUE, **c, horizon=364.0, period=28.0, annual_discount_rate=0.1
    )
    weekly_params = replace(bg_params, alpha=bg_params.alpha / 7)  # rate per week = 7 x rate per day
    weeks = customer_lifetime_value(
        weekly_params,
        GG_TRUE,
        c["frequency"],
        c["recency"] / 7,
        c["T"] / 7,
        c["monetary_value"],
        horizon=364.0,
        period=28.0,
        annual_discount_rate=0.1,
        time_unit_days=7.0,
    )
    np.testing.assert_allclose(weeks, days, rtol=1e-10)


# --------------------------------------------------------------------------------------------
# input validation
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frequency", "recency", "T", "match"),
    [
        ([-1, 2], [0.0, 1.0], [5.0, 5.0], "frequency must be non-negative"),
        ([1.5, 2], [1.0, 1.0], [5.0, 5.0], "frequency must be whole"),
        ([1, 2], [-1.0, 1.0], [5.0, 5.0], "recency must be non-negative"),
        ([1, 2], [1.0, 1.0], [5.0, -5.0], "T must be non-negative"),
        ([1, 2], [6.0, 1.0], [5.0, 5.0], "recency must not exceed T"),
        ([1, 2], [1.0, 1.0], [5.0], "T has length 1, expected 2"),
        ([1, 2, 3], [1.0, 1.0], [5.0, 5.0, 5.0], "recency has length 2, expected 3"),
        ([0, 2], [3.0, 1.0], [5.0, 5.0], "recency must be 0 where frequency is 0"),
        ([1, 2], [float("nan"), 1.0], [5.0, 5.0], "recency contains NaN"),
        ([[1, 2]], [[1.0, 1.0]], [[5.0, 5.0]], "frequency must be one-dimensional"),
    ],
)
def test_bgnbd_input_errors(frequency, recency, T, match) -> None:
    for call in (
        lambda: fit_bgnbd(frequency, recency, T),
        lambda: probability_alive(BG_TRUE, frequency, recency, T),
        lambda: expected_purchases(BG_TRUE, 10.0, frequency, recency, T),
        lambda: bgnbd_log_likelihood(BG_TRUE, frequency, recency, T),
        lambda: select_beta_geo(frequency, recency, T),
        lambda: probability_alive(MBG_TRUE, frequency, recency, T),
    ):
        with pytest.raises(ValueError, match=match):
            call()


def test_other_input_errors() -> None:
    with pytest.raises(ValueError, match="monetary_value must be positive where frequency > 0"):
        fit_gamma_gamma([1, 2], [10.0, 0.0])
    with pytest.raises(ValueError, match="monetary_value must be non-negative"):
        expected_average_spend(GG_TRUE, [0, 2], [-1.0, 3.0])
    with pytest.raises(ValueError, match="monetary_value has length 1"):
        fit_gamma_gamma([1, 2], [10.0])
    with pytest.raises(ValueError, match="no customers with frequency > 0"):
        fit_gamma_gamma([0, 0], [0.0, 0.0])
    with pytest.raises(ValueError, match="weights must be non-negative"):
        fit_bgnbd([1, 2], [1.0, 2.0], [3.0, 3.0], weights=[1.0, -1.0])
    with pytest.raises(ValueError, match="penalizer"):
        fit_bgnbd([1, 2], [1.0, 2.0], [3.0, 3.0], penalizer=-0.1)
    with pytest.raises(ValueError, match="t must be non-negative"):
        expected_purchases(BG_TRUE, -1.0, [1], [1.0], [2.0])
    with pytest.raises(ValueError, match="t must be non-negative"):
        expected_purchases_new_customer(BG_TRUE, [1.0, -2.0])
    with pytest.raises(ValueError, match=r"BetaGeoParams\.alpha must be a positive"):
        BetaGeoParams(r=1.0, alpha=0.0, a=1.0, b=1.0)
    for variant in ("BGNBD", "pareto_nbd", None, 1):
        with pytest.raises(ValueError, match="variant must be one of"):
            BetaGeoParams(r=1.0, alpha=1.0, a=1.0, b=1.0, variant=variant)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="variant must be one of"):
        fit_bgnbd([1, 2], [1.0, 2.0], [3.0, 3.0], variant="mbg")
    with pytest.raises(ValueError, match="penalizer"):
        select_beta_geo([1, 2], [1.0, 2.0], [3.0, 3.0], penalizer=-0.1)
    with pytest.raises(ValueError, match="no customers to fit"):
        select_beta_geo([1, 2], [1.0, 2.0], [3.0, 3.0], weights=[0.0, 0.0])
    with pytest.raises(ValueError, match=r"GammaGammaParams\.q must be a positive"):
        GammaGammaParams(p=1.0, q=float("nan"), v=1.0)
    with pytest.raises(ValueError, match="expected spend is infinite"):
        expected_average_spend(GammaGammaParams(p=1.0, q=0.5, v=1.0), [0], [0.0])
    c = CUSTOMERS
    with pytest.raises(ValueError, match="period must be positive"):
        customer_lifetime_value(BG_TRUE, GG_TRUE, **c, horizon=30.0, period=0.0)
    with pytest.raises(ValueError, match="horizon must be non-negative"):
        customer_lifetime_value(BG_TRUE, GG_TRUE, **c, horizon=-1.0)
    with pytest.raises(ValueError, match="annual_discount_rate"):
        customer_lifetime_value(BG_TRUE, GG_TRUE, **c, horizon=30.0, annual_discount_rate=-0.1)


def test_rfm_summary_input_errors(orders) -> None:
    with pytest.raises(ValueError, match=r"no column\(s\) \['amount'\]"):
        rfm_summary(orders.drop(columns="amount"), dt.date(2024, 3, 31))
    bad = orders.copy()
    bad.loc[bad.index[0], "amount"] = np.nan
    with pytest.raises(ValueError, match="transactions.amount has missing"):
        rfm_summary(bad, dt.date(2024, 3, 31))
    bad = orders.copy()
    bad.loc[bad.index[0], "customer_id"] = None
    with pytest.raises(ValueError, match="transactions.customer_id has missing"):
        rfm_summary(bad, dt.date(2024, 3, 31))
    with pytest.raises(ValueError, match="time_unit_days"):
        rfm_summary(orders, dt.date(2024, 3, 31), time_unit_days=0)


# --------------------------------------------------------------------------------------------
# warehouse purchases: the rule for zero and negative amounts (models_ml.lifetime_value)
# --------------------------------------------------------------------------------------------

WAREHOUSE_END = dt.date(2025, 12, 31)


@pytest.fixture(scope="module")
def zero_amount_orders() -> duckdb.DuckDBPyConnection:
    """500 customers buying as a BG/NBD process over two years (an orders table like
    intermediate.int_orders_resolved), 10% of the orders with amount 0 (free items), plus customer
    'free' whose orders are all free and 'refunded' with a negative amount on a later day."""
    rng = np.random.default_rng(11)
    rows = []
    for i in range(500):
        rate, leave = rng.gamma(1.0, 1 / 30), rng.beta(1.0, 4.0)
        t = rng.uniform(0, 700)
        while t < 730:
            amount = 0.0 if rng.uniform() < 0.1 else round(float(rng.gamma(2.0, 30.0)) + 1, 2)
            rows.append((f"c{i}", dt.datetime(2024, 1, 1) + dt.timedelta(days=float(t)), amount, True, False))
            if rng.uniform() < leave:
                break
            t += rng.exponential(1 / rate)
    rows += [
        ("free", dt.datetime(2025, 3, 1), 0.0, True, False),
        ("free", dt.datetime(2025, 6, 1), 0.0, True, False),
        ("refunded", dt.datetime(2025, 3, 1), 40.0, True, False),
        ("refunded", dt.datetime(2025, 4, 1), -40.0, True, False),
    ]
    con = duckdb.connect()
    con.execute(
        "create table orders (customer_id varchar, ordered_at timestamp, amount double, is_purchase boolean, "
        "used_coupon boolean)"
    )
    con.executemany("insert into orders values (?, ?, ?, ?, ?)", rows)
    con.execute(
        "create table customers as select distinct customer_id, null::timestamp as signed_up_at from orders"
    )
    con.execute(
        "create table items (customer_id varchar, ordered_at timestamp, is_purchase boolean, category varchar)"
    )
    con.execute(
        "create table events (customer_id varchar, event_type varchar, occurred_at timestamp, session_id varchar)"
    )
    return con


ZERO_SOURCES = FeatureSources(orders="orders", items="items", events="events", customers="customers")


def test_zero_amounts_would_break_gamma_gamma_as_given(zero_amount_orders) -> None:
    """The shape is real: summed as given, some repeat buyers' repeat purchases are worth 0, which the
    Gamma-Gamma model rejects (the CLV asset used to fail on exactly this)."""
    given = zero_amount_orders.execute(
        "select customer_id, ordered_at, amount from orders where amount >= 0"
    ).df()
    rfm = rfm_summary(given, WAREHOUSE_END)
    assert ((rfm["frequency"] > 0) & (rfm["monetary_value"] <= 0)).sum() > 0
    with pytest.raises(ValueError, match="monetary_value must be positive"):
        fit_gamma_gamma(rfm["frequency"], rfm["monetary_value"])


def test_clv_counts_only_orders_with_a_positive_amount(zero_amount_orders) -> None:
    trained = train_clv(zero_amount_orders, sources=ZERO_SOURCES)
    assert trained.gg.q > 1 and trained.customers > 400
    used = transactions(zero_amount_orders, WAREHOUSE_END, ZERO_SOURCES)
    assert (used["amount"] > 0).all() and "free" not in set(used["customer_id"])
    rfm = rfm_summary(used, WAREHOUSE_END)
    assert rfm.loc["refunded", "frequency"] == 0  # the refund day is not a purchase day
    assert (rfm.loc[rfm["frequency"] > 0, "monetary_value"] > 0).all()
    # the held-out check counts the same purchases: positive amounts, customers known before the window
    cutoff = trained.evaluation_cutoff
    by_hand = zero_amount_orders.execute(
        "select count(*) from orders where amount > 0 and ordered_at >= ? and ordered_at < ? "
        "and customer_id in (select customer_id from orders where amount > 0 and ordered_at < ?)",
        [cutoff + dt.timedelta(days=1), cutoff + dt.timedelta(days=91), cutoff + dt.timedelta(days=1)],
    ).fetchone()[0]
    assert trained.metrics["actual_total"] == by_hand


def test_a_customer_with_only_free_orders_gets_no_lifetime_value(zero_amount_orders) -> None:
    trained = train_clv(zero_amount_orders, sources=ZERO_SOURCES)
    model = LoadedModel("clv", "v1", trained.model(), trained.metadata())
    scores, _ = score_customers(zero_amount_orders, WAREHOUSE_END, None, None, model, sources=ZERO_SOURCES)
    scores = scores.set_index("customer_id")
    assert np.isnan(scores.loc["free", "predicted_clv"]) and np.isnan(scores.loc["free", "p_alive"])
    assert scores.loc["refunded", "predicted_clv"] > 0
    assert scores["churn_probability"].isna().all()  # no churn model given: left empty, no error


def test_a_spend_model_without_a_finite_mean_is_not_trained() -> None:
    with pytest.raises(InsufficientData, match=r"q = 0\.9 \(it must exceed 1"):
        _require_finite_spend(GammaGammaParams(p=2.0, q=0.9, v=10.0), repeat_buyers=25)
    _require_finite_spend(GammaGammaParams(p=2.0, q=1.5, v=10.0), repeat_buyers=25)
