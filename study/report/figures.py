"""The report's figures, drawn with seaborn from the results table only (never retrains)."""

from __future__ import annotations

import io
from dataclasses import dataclass

import matplotlib
import matplotlib.lines
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from scipy import stats  # noqa: E402
from sklearn.calibration import calibration_curve  # noqa: E402
from sklearn.metrics import roc_curve  # noqa: E402

from study.config import CONTRAST_ARMS, DP_ARMS, SCALING_ARM, STRATEGY_ARMS  # noqa: E402
from study.evaluation import ALL_SITES  # noqa: E402
from study.results import final_results, format_budget  # noqa: E402

MODEL_NAMES = {"lr": "logistic regression", "mlp": "MLP"}
ARM_ORDER = ["centralized", "federated", "federated-fedprox", "federated-fedadam", "federated-fedyogi", "local",
             "centralized-dp", "federated-dp", "federated-client-dp", "centralized-iid", "federated-iid"]
STRATEGY_ARM_NAMES = tuple(STRATEGY_ARMS.values())


@dataclass(frozen=True)
class Figure:
    """A rendered figure with the text that tells a reader how to read it."""

    name: str
    title: str
    caption: str
    png: bytes
    svg: bytes


CURVE_METRICS = {"auc": "test ROC AUC", "accuracy": "test accuracy"}


def t_interval(values: pd.Series) -> tuple[float, float]:
    """Two-sided 95% t interval of the mean, clipped to [0, 1] (every plotted metric lives there)."""
    values = np.asarray(values, dtype=float)
    if len(values) < 2:
        return float(values.mean()), float(values.mean())
    half = stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values))
    return float(max(values.mean() - half, 0.0)), float(min(values.mean() + half, 1.0))


def raw_training_bytes(split: pd.DataFrame, n_features: int) -> float:
    """Bytes of every site's training rows (features and label, float64) for one seed: what pooling moves."""
    train = split[(split["part"] == "train") & (split["seed"] == split["seed"].min())]
    return float(train["rows"].sum() * (n_features + 1) * 8)


def _images(figure: plt.Figure) -> dict[str, bytes]:
    """The figure as PNG (embedded in the report) and SVG (for papers), both free of time stamps."""
    images = {}
    for kind, options in (("png", {"dpi": 110}), ("svg", {"metadata": {"Date": None}})):
        buffer = io.BytesIO()
        with matplotlib.rc_context({"svg.hashsalt": "fedstudy"}):
            figure.savefig(buffer, format=kind, bbox_inches="tight", **options)
        images[kind] = buffer.getvalue()
    plt.close(figure)
    return images


def _labelled(table: pd.DataFrame) -> pd.DataFrame:
    table = table.copy()
    table["model"] = table["model"].map(MODEL_NAMES)
    table["arm label"] = [
        arm if np.isnan(eps) else f"{arm} ε={format_budget(eps)}" for arm, eps in zip(table["arm"], table["epsilon"])
    ]
    return table


def _metric_by_model_grid(models: list[str]) -> tuple[plt.Figure, np.ndarray]:
    """Rows: the curve metrics; columns: the models; each row shares its y axis."""
    return plt.subplots(len(CURVE_METRICS), len(models), figsize=(4.8 * len(models) + 2.2, 3.3 * len(CURVE_METRICS)),
                        squeeze=False, sharey="row", sharex=True)


def _finish_grid(axes: np.ndarray, models: list[str], xlabel: str) -> None:
    for row, label in enumerate(CURVE_METRICS.values()):
        axes[row][0].set_ylabel(f"{label}\n(all sites' test rows)")
        for column, model in enumerate(models):
            axis = axes[row][column]
            axis.set_title(model if row == 0 else "")
            axis.set_xlabel(xlabel if row == len(CURVE_METRICS) - 1 else "")
            if column == len(models) - 1 and row == 0:
                axis.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0))
            elif axis.get_legend():
                axis.get_legend().remove()


def learning_curves(table: pd.DataFrame) -> Figure | None:
    per_round = table[table["round"].notna() & (table["site"] == ALL_SITES) & table["metric"].isin(CURVE_METRICS)]
    if per_round.empty:
        return None
    per_round = _labelled(per_round).assign(round=lambda frame: frame["round"].astype(int))
    reference = _labelled(final_results(table))
    reference = reference[(reference["arm"] == "centralized") & (reference["site"] == ALL_SITES)]
    models = list(per_round["model"].unique())
    figure, axes = _metric_by_model_grid(models)
    for row, metric in enumerate(CURVE_METRICS):
        for column, model in enumerate(models):
            axis = axes[row][column]
            sns.lineplot(data=per_round[(per_round["model"] == model) & (per_round["metric"] == metric)], x="round",
                         y="value", hue="arm label", errorbar=t_interval, marker="o", markersize=3, ax=axis)
            central = reference[(reference["model"] == model) & (reference["metric"] == metric)]["value"]
            if len(central):
                axis.axhline(central.mean(), color="black", linestyle="--", linewidth=1, label="centralized (final)")
    for axis in axes.flat:
        axis.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    _finish_grid(axes, models, "federated round")
    return Figure(
        "learning_curves", "Learning curves of the federated arms",
        "Test ROC AUC (top) and accuracy (bottom) on all sites' test rows after each FedAvg round (line: mean over "
        "seeds; band: 95% confidence interval). The dashed line is centralized training on pooled data with the same "
        "number of passes over each record. A curve that reaches the dashed line means federation lost nothing "
        "against pooling.",
        **_images(figure),
    )


def privacy_utility(table: pd.DataFrame) -> Figure | None:
    final = _labelled(final_results(table))
    final = final[(final["site"] == ALL_SITES) & final["metric"].isin(CURVE_METRICS)]
    finite = final[np.isfinite(final["epsilon"])]
    if finite.empty:
        return None
    models = list(final["model"].unique())
    epsilons = sorted(finite["epsilon"].unique())
    palette = dict(zip(DP_ARMS, sns.color_palette("deep")))
    figure, axes = _metric_by_model_grid(models)
    for row, metric in enumerate(CURVE_METRICS):
        for column, model in enumerate(models):
            axis = axes[row][column]
            chosen = final[(final["model"] == model) & (final["metric"] == metric)]
            sns.lineplot(data=finite[(finite["model"] == model) & (finite["metric"] == metric)], x="epsilon", y="value",
                         hue="arm", palette=palette, errorbar=t_interval, marker="o", ax=axis)
            references = [(arm, chosen["epsilon"].isna(), "black", style, f"{arm} (no DP)")
                          for arm, style in (("centralized", "--"), ("federated", ":"))]
            references += [(arm, np.isinf(chosen["epsilon"]), palette[arm], "-.", f"{arm} ε=∞ (clipping, no noise)")
                           for arm in palette]
            for arm, selected, color, style, label in references:
                values = chosen[selected & (chosen["arm"] == arm)]["value"]
                if len(values):
                    axis.axhline(values.mean(), color=color, linestyle=style, linewidth=1, label=label)
            axis.set_xscale("log")
            axis.set_xlim(min(epsilons) / 1.5, max(epsilons) * 1.5)
            axis.set_xticks(epsilons, [format_budget(e) for e in epsilons])
            axis.minorticks_off()
    _finish_grid(axes, models, "privacy budget ε per site, whole run (log scale)")
    return Figure(
        "privacy_utility", "Privacy-utility trade-off",
        "Final test ROC AUC (top) and accuracy (bottom) against the privacy budget ε (smaller ε = stronger privacy). "
        "Lines are the DP-SGD arms (mean over seeds, 95% CI band); horizontal lines are the same training without DP. "
        "The vertical distance to a horizontal line is the price of that much privacy.",
        **_images(figure),
    )


def per_site_benefit(table: pd.DataFrame, split: pd.DataFrame) -> Figure | None:
    final = final_results(table)
    final = final[(final["site"] != ALL_SITES) & (final["metric"] == "accuracy") & final["epsilon"].isna()]
    wide = final.pivot_table(index=["model", "seed", "site"], columns="arm", values="value", aggfunc="first")
    joined = [arm for arm in (*STRATEGY_ARM_NAMES, "centralized") if arm in wide]
    if "local" not in wide or not joined:
        return None
    gains = pd.concat(
        [(wide[arm] - wide["local"]).rename("gain").reset_index().assign(comparison=f"{arm} instead of alone")
         for arm in joined],
        ignore_index=True,
    ).dropna(subset=["gain"])
    sizes = split[split["part"] == "train"][["seed", "site", "rows"]]
    gains = gains.merge(sizes, on=["seed", "site"]).assign(
        model=lambda frame: frame["model"].map(MODEL_NAMES), gain=lambda frame: 100 * frame["gain"]
    )
    grid = sns.relplot(data=gains, x="rows", y="gain", hue="comparison", style="comparison", col="model",
                       height=3.6, aspect=1.3, s=60, alpha=0.8)
    for axis in grid.axes.flat:
        axis.axhline(0, color="black", linewidth=1)
        axis.set_xscale("log")
        axis.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    grid.set_axis_labels("training patients at the hospital (log scale)", "accuracy gain over training alone\n(percentage points)")
    grid.set_titles("{col_name}")
    return Figure(
        "per_site", "Is joining worth it for my hospital?",
        "Each point is one hospital in one seed's split: how much its test accuracy (on its own test rows) changes "
        "when it joins the federation, or pools its data, instead of training alone, against its number of training "
        "patients. Points above the line gained; points below lost. Small, skewed hospitals have few test rows, so "
        "single points are noisy: look at the pattern.",
        **_images(grid.figure),
    )


def data_split(split: pd.DataFrame) -> Figure:
    long = split.assign(negatives=split["rows"] - split["positives"]).melt(
        id_vars=["seed", "site", "part"], value_vars=["positives", "negatives"], var_name="label", value_name="count"
    )
    long = long.groupby(["seed", "site", "label"], as_index=False)["count"].sum()
    seeds = sorted(long["seed"].unique())
    figure, axes = plt.subplots(1, len(seeds), figsize=(3.6 * len(seeds), 3.2), squeeze=False, sharey=True)
    for axis, seed in zip(axes[0], seeds):
        pivot = long[long["seed"] == seed].pivot(index="site", columns="label", values="count")[["positives", "negatives"]]
        pivot.plot(kind="bar", stacked=True, ax=axis, color=sns.color_palette("deep")[3:1:-1],
                   rot=0 if len(pivot) <= 6 else 90, legend=axis is axes[0][0])
        axis.set(title=f"seed {seed}", xlabel="", ylabel="patients (train + test)")
    return Figure(
        "data_split", "How the data is split across sites",
        "Patients per site (train and test rows together), split into positive and negative cases, for each seed's "
        "split. Unequal heights and colour mixes are the heterogeneity federated learning has to cope with.",
        **_images(figure),
    )


def all_figures(table: pd.DataFrame, split: pd.DataFrame, predictions: pd.DataFrame, metadata: dict) -> list[Figure]:
    table = table[table["arm"] != SCALING_ARM]  # the scaling sweep is timing only: the comparison table shows it
    sns.set_theme(style="whitegrid", context="notebook")
    candidates = [learning_curves(table), privacy_utility(table), privacy_audit(table), per_site_benefit(table, split),
                  roc_curves(predictions), calibration_curves(predictions),
                  communication(table, raw_training_bytes(split, metadata["n_features"])), data_split(split)]
    return [figure for figure in candidates if figure is not None]


def privacy_audit(table: pd.DataFrame) -> Figure | None:
    """Claimed epsilon (accountant) against the canary audit's empirical lower bound, per arm and budget."""
    final = _labelled(final_results(table))
    final = final[final["site"] == ALL_SITES]
    bounds = final[final["metric"] == "audit_epsilon_lower_bound"]
    if bounds.empty:
        return None
    claimed = final[final["metric"] == "epsilon"].groupby(["model", "arm label"])["value"].max()
    finite_claims = claimed[np.isfinite(claimed)]
    right_edge = 1.15 * max([*finite_claims, *bounds["value"], 1.0])
    order = [label for arm in ARM_ORDER for label in _sorted_labels(bounds, arm)]
    color = sns.color_palette("deep")[0]
    height = 0.42 * len(order) + 1.6
    grid = sns.catplot(data=bounds, x="value", y="arm label", col="model", order=order, kind="strip", jitter=False,
                       color=color, size=7, alpha=0.8, height=height, aspect=min(1.2, 5.5 / height))
    for axis, model in zip(grid.axes.flat, grid.col_names):
        for position, label in enumerate(order):
            value = claimed.get((model, label), np.inf)
            if np.isfinite(value):
                axis.plot([value], [position], marker="|", markersize=16, markeredgewidth=2.5, color="black")
            else:
                axis.annotate("no guarantee (ε = ∞)", (right_edge, position), ha="right", va="center", fontsize=8,
                              color="dimgray")
        axis.set_xlim(0, right_edge)
    grid.set_axis_labels("ε (whole run)", "")
    grid.set_titles("{col_name}")
    handles = [matplotlib.lines.Line2D([], [], color=color, marker="o", linestyle="", label="audit: ε lower bound, per seed"),
               matplotlib.lines.Line2D([], [], color="black", marker="|", markersize=12, markeredgewidth=2.5,
                                       linestyle="", label="accountant: claimed ε")]
    grid.figure.legend(handles=handles, loc="lower center", ncol=2, bbox_to_anchor=(0.5, -0.04), frameon=False)
    return Figure(
        "privacy_audit", "Claimed privacy against what an attack could show",
        "Dots: for each seed, the 95%-confidence lower bound on ε from the canary audit (how much privacy loss an "
        "attacker who scores the canaries by the final model's loss can prove). Black bars: the ε the accountant "
        "claims. A dot right of its bar would mean the DP guarantee is broken; dots far left of the bars mean the "
        "attack is weaker than the worst case the accountant covers (the usual outcome: accounting is a worst-case "
        "bound, this is one attack with a few dozen canaries). Non-private arms claim nothing; a dot above 0 there "
        "is measured leakage.",
        **_images(grid.figure),
    )


def _sorted_labels(frame: pd.DataFrame, arm: str) -> list[str]:
    chosen = frame[frame["arm"] == arm].sort_values("epsilon")
    return list(dict.fromkeys(chosen["arm label"]))


def _curve_arms(predictions: pd.DataFrame) -> pd.DataFrame:
    """The arms shown in ROC and calibration plots: every non-private arm, and each DP arm at its smallest budget."""
    smallest = predictions.groupby("arm")["epsilon"].transform("min")
    chosen = predictions[predictions["epsilon"].isna() | (predictions["epsilon"] == smallest)]
    chosen = chosen[~chosen["arm"].isin(CONTRAST_ARMS)]
    return _labelled(chosen)


def roc_curves(predictions: pd.DataFrame) -> Figure | None:
    if predictions.empty:
        return None
    chosen = _curve_arms(predictions)
    models = list(chosen["model"].unique())
    figure, axes = plt.subplots(1, len(models), figsize=(4.6 * len(models) + 2.4, 4.2), squeeze=False, sharey=True)
    for axis, model in zip(axes[0], models):
        for label in _ordered_labels(chosen):
            rows = chosen[(chosen["model"] == model) & (chosen["arm label"] == label)]
            if rows["label"].nunique() == 2 and rows["probability"].notna().all():
                false_positives, true_positives, _ = roc_curve(rows["label"], rows["probability"])
                axis.plot(false_positives, true_positives, label=label, linewidth=1.4)
        axis.plot([0, 1], [0, 1], color="gray", linestyle=":", linewidth=1)
        axis.set(title=model, xlabel="false-positive rate (negatives called positive)", aspect="equal")
    axes[0][0].set_ylabel("true-positive rate (positives found)")
    axes[0][-1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    return Figure(
        "roc", "ROC curves of the final models",
        "Each line is one arm's final models, with the test rows of all sites and all seeds pooled: how many positive "
        "cases it finds (up) for how many false alarms (right) as the decision threshold moves. Closer to the top-left "
        "corner is better; the dotted diagonal is guessing. DP arms are shown at their smallest (most private) budget.",
        **_images(figure),
    )


def calibration_curves(predictions: pd.DataFrame) -> Figure | None:
    if predictions.empty:
        return None
    chosen = _curve_arms(predictions)
    models = list(chosen["model"].unique())
    figure, axes = plt.subplots(1, len(models), figsize=(4.6 * len(models) + 2.4, 4.2), squeeze=False, sharey=True)
    for axis, model in zip(axes[0], models):
        for label in _ordered_labels(chosen):
            rows = chosen[(chosen["model"] == model) & (chosen["arm label"] == label)]
            if rows["label"].nunique() == 2 and rows["probability"].notna().all():
                observed, predicted = calibration_curve(rows["label"], rows["probability"], n_bins=8, strategy="quantile")
                axis.plot(predicted, observed, marker="o", markersize=3, label=label, linewidth=1.2)
        axis.plot([0, 1], [0, 1], color="gray", linestyle=":", linewidth=1)
        axis.set(title=model, xlabel="predicted probability of the positive class", xlim=(0, 1), ylim=(0, 1), aspect="equal")
    axes[0][0].set_ylabel("observed share positive")
    axes[0][-1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    return Figure(
        "calibration", "Calibration: can the predicted risk be taken at face value?",
        "Test rows of all sites and seeds, grouped into eight bins of equal size by predicted probability: each point "
        "is a bin's average prediction (right) against the share of its patients who really were positive (up). On "
        "the dotted diagonal, a predicted 30% means 30%. Below the diagonal the model overstates the risk; above, it "
        "understates it.",
        **_images(figure),
    )


def communication(table: pd.DataFrame, raw_bytes: float) -> Figure | None:
    """Cumulative parameter bytes of the federated arm per round, against the raw data pooling would move."""
    traffic = table[(table["arm"] == "federated") & table["metric"].isin(["bytes_sent", "bytes_received"])]
    if traffic.empty:
        return None
    per_round = traffic.groupby(["model", "seed", "round"], as_index=False)["value"].sum()
    per_round = per_round.sort_values("round").assign(
        cumulative=lambda frame: frame.groupby(["model", "seed"])["value"].cumsum() / 1e3,
        model=lambda frame: frame["model"].map(MODEL_NAMES),
    )
    figure, axis = plt.subplots(figsize=(6.4, 3.8))
    sns.lineplot(data=per_round, x="round", y="cumulative", hue="model", marker="o", errorbar=None, ax=axis)
    axis.axhline(raw_bytes / 1e3, color="black", linestyle="--", linewidth=1.2,
                 label="raw training data, pooled once")
    axis.set_yscale("log")
    axis.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    axis.set(xlabel="FedAvg round", ylabel="kilobytes moved (log scale)")
    axis.legend(fontsize=8)
    return Figure(
        "communication", "Communication: model updates against pooling the data",
        "Bytes of serialized model parameters the federation moves, summed over all rounds so far (global model to "
        "every site, and every site's model back), measured from the messages of the run (message headers excluded), against the bytes of all training rows sent once "
        "to a central pool (dashed). Logistic regression stays far below pooling; the MLP's larger model crosses it "
        "after a few rounds on a dataset this small. Larger datasets push the dashed line up; more rounds or larger "
        "models push the curves up.",
        **_images(figure),
    )


def _ordered_labels(frame: pd.DataFrame) -> list[str]:
    return [label for arm in ARM_ORDER for label in _sorted_labels(frame, arm)]
