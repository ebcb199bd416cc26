"""The report's jinja2 templates (autoescaped HTML). They live in Python, not in .j2 files, because a Flower App
bundle carries only code and text files (.py, .toml, .md, ...): a deployment's coordinator renders the report from
the bundle."""

REPORT = r"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>fedstudy report {{ metadata.run_id }}</title>
<style>
  body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #1d2330; line-height: 1.45; }
  h1 { font-size: 1.6em; margin-bottom: .2em; }
  h2 { border-bottom: 1px solid #d6dae3; padding-bottom: .2em; margin-top: 2em; }
  .headline { background: #f1f5fb; border-left: 4px solid #3b6fb6; padding: .8em 1.2em; }
  table { border-collapse: collapse; margin: 1em 0; font-size: .92em; }
  th, td { border: 1px solid #d6dae3; padding: .3em .6em; text-align: left; vertical-align: top; }
  th { background: #f5f6f8; }
  td.num { font-variant-numeric: tabular-nums; white-space: nowrap; }
  figure { margin: 1.5em 0; }
  figure img { max-width: 100%; height: auto; border: 1px solid #eceef2; }
  figcaption { font-size: .92em; color: #3d4555; max-width: 60em; }
  code, pre { background: #f5f6f8; padding: .1em .3em; font-size: .9em; }
  pre { padding: .6em; white-space: pre-wrap; word-break: break-all; }
  .note { color: #5a6272; font-size: .92em; }
  @media print { body { max-width: none; } figure { break-inside: avoid; } }
</style>
</head>
<body>
<h1>Federated vs centralized training: what a hospital keeps and what it buys</h1>
<p class="note">Run {{ metadata.run_id }} · {{ metadata.created }} · dataset <strong>{{ config.dataset }}</strong> ·
{{ data.sites }} sites ({{ data.split }}{% if data.split in ("dirichlet", "quantity") %}, α = {{ config.alpha }}{% endif %}) ·
{{ config.seeds | length }} seed(s) · wall time {{ "%.0f" | format(metadata.seconds.total) }} s
{%- if metadata.get("results_reused") %} · {{ metadata.results_reused }} of {{ metadata.results_reused + metadata.results_trained }}
results reused from earlier runs with the same settings{% endif %}</p>
{% set engine = metadata.get("engine") or {"name": "simulation"} %}
{% if engine.name == "deployment" %}<p class="note">{% if engine.get("data_at_sites", true) %}<strong>Run on Flower's
deployment engine</strong>: a SuperLink and {{ engine.supernodes }} SuperNodes, one per hospital, each reading its own
file on its own machine{% else %}<strong>Run as a Flower App</strong> (<code>flwr run</code>) with {{ engine.supernodes }}
sites that took their rows from the bundled dataset (Flower's local simulation, or SuperNodes started without a data
file): a trial of the deployment path with all the data on one machine{% endif %}; {{ engine.rounds }}
round(s). Only federated arms run in a deployment (pooled and local training would need the rows in one place or a
study process at each site). The sites scored every round's global model on their own test rows and sent back the
predicted probabilities and true labels of those test rows, which is all the metrics below are computed from; the
test labels are not protected by differential privacy. No canary audit runs in a deployment.</p>{% endif %}

<section id="headline" class="headline">
  <h2 style="border:0;margin-top:.3em">Headline</h2>
  <p>{% if data.split == "natural" %}The {{ n_rows }} patients of the dataset come from its own {{ data.sites }}
  hospitals ({{ data.site_names | join(", ") }}); we{% else %}We split the {{ n_rows }} patients of the dataset across
  {{ data.sites }} simulated hospitals and{% endif %} {{ compared_arms }}.
  {% if config.seeds | length > 1 %}Numbers are means over {{ config.seeds | length }} seeds (different splits and
  training runs), ± the half-width of the 95% confidence interval.{% else %}Numbers come from a single seed, so they
  carry no confidence interval; rerun with several <code>--seeds</code> for one.{% endif %}</p>
  <ul>{% for sentence in headline %}<li>{{ sentence }}</li>{% endfor %}</ul>
</section>

<section id="comparison">
<h2>Traditional (pooled) training against federated learning, measured</h2>
<p>The usual comparison, with each entry measured in this run rather than asserted. Centralized means pooling all
hospitals' training rows in one place; federated means Flower's FedAvg with the rows staying at the hospitals.</p>
<table>
  <thead><tr><th>aspect</th><th>centralized</th><th>federated</th><th>reading</th></tr></thead>
  <tbody>{% for row in comparison %}<tr><th>{{ row.aspect }}</th><td>{{ row.centralized }}</td><td>{{ row.federated }}</td><td>{{ row.reading }}</td></tr>{% endfor %}</tbody>
</table>
</section>

<section id="data">
<h2>Data</h2>
<p>{{ data.description }} Target: {{ data.target_rule }}.</p>
<p>Sites: {% if data.split == "natural" %}the data's own hospitals ({{ data.site_names | join(", ") }}).{% else %}{{ data.sites }}
simulated hospitals, split {{ {"iid": "uniformly at random (IID)", "dirichlet": "with Dirichlet label skew",
"quantity": "with quantity skew (very unequal sizes, same case mix)"}[data.split] }}{% if data.split != "iid" %}
(α = {{ config.alpha }}){% endif %}.{% endif %} Each hospital's rows are split into training and test rows
({{ "%.0f" | format(100 * config.test_fraction) }}% test) per seed; every arm uses the same split.</p>
{% set plain_columns = data.columns | selectattr("kind", "equalto", "numeric") | rejectattr("missing") | list %}
{% if data.columns and plain_columns | length == data.columns | length %}<p>Features: {{ data.columns | length }} numeric
columns, none with a missing value ({{ data.columns | map(attribute="name") | join(", ") }}).</p>
{% elif data.columns %}<table>
  <thead><tr><th>column</th><th>kind</th><th>missing</th></tr></thead>
  <tbody>{% for column in data.columns %}<tr><td>{{ column.name }}</td><td>{{ column.kind }}</td><td class="num">{{ "%.1f" | format(100 * column.missing) }}%</td></tr>{% endfor %}</tbody>
</table>{% endif %}
<p><strong>Preprocessing</strong>, the same rules for every arm: numeric columns standardized, a missing value
replaced by the mean{% if data.indicators %} with a 0/1 missing-indicator column ({{ data.indicators | join(", ") }}){% endif %};
categorical columns one-hot encoded over the categories the sites hold; constant columns dropped{% if data.dropped %}
({{ data.dropped | join(", ") }}){% endif %}. Non-private arms take every parameter from the sites' training-row
counts, sums, sums of squares and category counts, combined as a federation can ({{ data.model_inputs }} model
inputs); the local arm from its own site's.{% if data.public_schema %} DP arms use {{ data.public_schema }} instead
({{ data.public_inputs }} model inputs).{% else %} This data has no public schema, so the DP arms were not run.{% endif %}</p>
{% if local_fallbacks %}<p><strong>Marked:</strong> {{ local_fallbacks | length }} site(s) could not train a local model
(a single class, or no usable column, in their training rows): {{ local_fallbacks | join(", ") }}. Their local arm
predicts the site's own training prevalence for every patient.</p>{% endif %}
{% if one_class_sites %}<p><strong>Note:</strong> the split left {{ one_class_sites | length }} site(s)
with a single class in their training rows ({{ one_class_sites | join(", ") }}). Trained alone, such a site can only
learn to predict that class; this is the situation in which joining a federation helps most.</p>{% endif %}
</section>

<section id="results">
<h2>Results</h2>
<p>Final models, evaluated on the test rows of all sites together (no test row was used for training or for
scaling). For the local arm each hospital's own model predicts its own test rows.</p>
<table>
  <thead><tr>{% for key in results[0].keys() %}<th>{{ key }}</th>{% endfor %}</tr></thead>
  <tbody>{% for row in results %}<tr>{% for value in row.values() %}<td class="num">{{ value }}</td>{% endfor %}</tr>{% endfor %}</tbody>
</table>
</section>
{% if strategies %}
<section id="strategies">
<h2>Which Flower strategy helps which hospital?</h2>
<p>Test accuracy of each hospital on its own test rows when it trains alone, under each federated strategy
(FedAvg averages the sites' models; FedProx adds a proximal term μ = {{ config.proximal_mu }} that keeps each
site's training near the global model; FedAdam and FedYogi treat the averaged update as a gradient for a server-side
optimizer with learning rate {{ config.server_learning_rate }}), and pooled; mean over seeds.{% if data.split != "natural" %}
With a simulated split, "site k" is a different hospital in each seed.{% endif %}</p>
<table>
  <thead><tr>{% for key in strategies[0].keys() %}<th>{{ key }}</th>{% endfor %}</tr></thead>
  <tbody>{% for row in strategies %}<tr>{% for value in row.values() %}<td class="num">{{ value }}</td>{% endfor %}</tr>{% endfor %}</tbody>
</table>
</section>
{% endif %}

<section id="figures">
{% for figure in figures %}
<h2 id="{{ figure.name }}">{{ figure.title }}</h2>
<figure>
  <img src="data:image/png;base64,{{ figure.data }}" alt="{{ figure.title }}">
  <figcaption>{{ figure.caption }}</figcaption>
</figure>
{% endfor %}
</section>

<section id="privacy">
<h2>What is protected</h2>
<p><strong>How to read ε and δ.</strong> Differential privacy bounds how much any one protected unit (a patient
record, or a whole hospital) can change what training reveals: the probability of any outcome (any model, any
prediction) changes at most by a factor e<sup>ε</sup> between training with and without that unit (about 2.7 for
ε = 1, 20 for ε = 3, 3,000 for ε = 8), except with probability δ. Smaller ε is stronger privacy: ε ≤ 1 is strong;
ε around 8 is weak but still bounds the worst case.</p>
<table>
  <thead><tr>{% for key in protection[0].keys() %}<th>{{ key }}</th>{% endfor %}</tr></thead>
  <tbody>{% for row in protection %}<tr>{% for value in row.values() %}<td>{{ value }}</td>{% endfor %}</tr>{% endfor %}</tbody>
</table>
{% if privacy %}
<p>Every ε was computed by the {{ accountant }} accountant of Opacus from the noise multiplier, sampling rate and
number of noisy steps that training actually used, over the <strong>whole run</strong> (all rounds and local
epochs), at δ = {{ config.delta }}. For federated-dp each hospital's ε comes from its own DP-SGD history; the table
below lists every hospital. The noise multiplier is the standard deviation of the added noise relative to the
clipping norm (of one record's gradient for DP-SGD, of one hospital's update for client-level DP).</p>
<ul>
  {% if "federated-client-dp" in config.arms %}<li><strong>Why client-level DP costs more here.</strong> The server
  clips each hospital's model update per round to norm {{ config.site_clip_norm }} and adds Gaussian noise to the
  average{% if config.get("client_clipping") == "adaptive" %} (Flower's adaptive clipping: the norm follows a quantile of
  the updates, and the noisy count that steers it is charged to the budget){% endif %}. Every hospital takes part in
  every round, so there is no amplification by sampling, and with only {{ data.sites }} hospitals the noise that
  hides a whole hospital is large next to the average of {{ data.sites }} updates. It becomes affordable with
  hundreds of sites.</li>{% endif %}
</ul>
<table>
  <thead><tr>{% for key in privacy[0].keys() %}<th>{{ key }}</th>{% endfor %}</tr></thead>
  <tbody>{% for row in privacy %}<tr>{% for value in row.values() %}<td>{{ value }}</td>{% endfor %}</tr>{% endfor %}</tbody>
</table>
{% endif %}
{% if audit %}
<h3 id="audit">Empirical audit: can an attacker tell which records were trained on?</h3>
<p>{{ canary_sentence }} After training, each arm's final model scores every canary by how well it predicts the
canary's (random) label; an attacker guesses that the best-scored canaries were trained on and the worst-scored were
not. From how many guesses are right we compute a lower bound on ε that holds with 95% confidence (the one-run audit
of Steinke, Nasr and Jagielski, 2023), plus the attack's ROC AUC (0.5 = guessing) and its true-positive rate at a
false-positive rate of at most 1% (with about {{ (config.canaries / 2) | round | int }} held-out canaries the finest
measurable step is {{ "%.0f" | format(200 / config.canaries) }}%, so this is the rate at zero false positives).
Canaries are never part of any test set or utility metric.</p>
<table>
  <thead><tr>{% for key in audit[0].keys() %}<th>{{ key }}</th>{% endfor %}</tr></thead>
  <tbody>{% for row in audit %}<tr>{% for value in row.values() %}<td class="num">{{ value }}</td>{% endfor %}</tr>{% endfor %}</tbody>
</table>
<p><strong>Reading it.</strong> An empirical bound is what one specific attack proves; the claimed ε is what the
accountant guarantees against every attack. The audit can only catch a broken guarantee (a bound above the claim),
never confirm that the claim is tight: a bound of 0 does not mean "no leakage". A bound above 0 for a non-private
arm is leakage measured in this run.</p>
{% endif %}
<p><strong>Caveats, stated conservatively.</strong> Non-private arms (centralized, local, federated) carry <em>no</em>
formal privacy guarantee: federated training keeps raw rows at the sites but the shared model updates can still leak
information about them, and the sites' exact feature statistics go to the server. DP arms scale features with
{{ public_ranges or "public feature ranges" }}, assumed public, so no statistic of the data is released for them;
that fixed scaling alone costs some accuracy ({% if noiseless_budget %}the ε = ∞ rows
measure it: DP-SGD's clipping and scaling without noise{% else %}run with <code>--epsilon inf</code> to measure it:
DP-SGD's clipping and scaling without noise{% endif %}). Opacus's noise is drawn with a standard (not cryptographically secure) random generator,
and floating-point arithmetic is not exact, so the guarantee holds for the mathematical mechanism, not against an
adversary who can predict the generator or exploit floating-point artefacts. Model architecture, hyperparameters,
the number of sites and site sizes are assumed public.
{% if config.delta >= 1 / smallest_site %}<strong>Warning:</strong> δ = {{ config.delta }} is not below 1/n for the
smallest site ({{ smallest_site }} training rows); such a δ permits leaking a whole record with that probability:
use a smaller <code>--delta</code>.{% endif %}</p>
</section>

<section id="method">
<h2>How the arms were trained</h2>
<p>Every arm uses the same sites, the same per-site stratified train/test split of each seed, the same feature scaling
rule (mean and standard deviation from the sites' combined training statistics; the local arm uses its own site's;
DP arms use the public feature ranges instead, so that no statistic of the data escapes the privacy budget), the
same model code and the same training loop (SGD, learning rate {{ config.learning_rate }}, batch {{ config.batch_size }}).
Each training record is seen {{ config.rounds * config.local_epochs }} times in every arm: federated arms run
{{ config.rounds }} FedAvg rounds of {{ config.local_epochs }} local epoch(s) {% if engine.name == "deployment" %}through
a Flower SuperLink (<code>flwr run</code>){% else %}in Flower's simulation engine{% endif %}{% if config.arms | select("in",
["centralized", "local", "centralized-dp", "centralized-iid"]) | list %}; centralized and local arms train for
{{ config.rounds * config.local_epochs }} epochs{% endif %}. DP arms use Opacus DP-SGD
(Poisson sampling, per-example clipping at norm {{ config.max_grad_norm }}).{% if "centralized-iid" in config.arms
or "federated-iid" in config.arms %} The contrast arms (centralized-iid, federated-iid) train the same way on an IID
split of the same patients over the same number of sites, with its own test rows.{% endif %}</p>
</section>

<section id="reproduce">
<h2>Configuration and how to reproduce</h2>
<p>Command:</p>
<pre>{{ metadata.command }}</pre>
<table>
  <tbody>{% for key, value in config.items() %}<tr><th>{{ key }}</th><td>{{ value }}</td></tr>{% endfor %}</tbody>
</table>
<p>Versions: {% for name, version in metadata.versions.items() %}{{ name }} {{ version }}{% if not loop.last %}, {% endif %}{% endfor %}.
Machine: {{ metadata.machine }}.</p>
<p class="note">Results as a long table: <code>results.csv</code>; configuration, versions and the table as JSON:
<code>results.json</code>; figures as PNG in <code>figures/</code>.</p>
</section>
</body>
</html>
"""

RUNS_INDEX = r"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>fedstudy runs</title>
<style>
  body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 1500px; margin: 2em auto; padding: 0 1em; color: #1d2330; }
  table { border-collapse: collapse; font-size: .92em; }
  th, td { border: 1px solid #d6dae3; padding: .3em .6em; text-align: left; }
  td { white-space: nowrap; }
  th { background: #f5f6f8; }
</style>
</head>
<body>
<h1>fedstudy runs</h1>
<p>Every run in this folder, newest first. Test accuracy on all sites' test rows, mean over seeds (± half-width of
the 95% confidence interval). Open a run for its full report.</p>
{% if runs %}
<table>
  <thead><tr>{% for key in runs[0].keys() %}<th>{{ key }}</th>{% endfor %}</tr></thead>
  <tbody>{% for row in runs %}<tr>{% for key, value in row.items() %}<td>{% if key == "run" %}<a href="{{ value }}/index.html">{{ value }}</a>{% else %}{{ value }}{% endif %}</td>{% endfor %}</tr>{% endfor %}</tbody>
</table>
{% else %}<p>No finished runs yet: <code>python -m study.run</code> writes one.</p>{% endif %}
</body>
</html>
"""
