"""Horizontal splits of one table into sites: IID, Dirichlet label skew, quantity skew, or the data's own sites."""

from __future__ import annotations

import numpy as np

MIN_SITE_ROWS = 10
_MAX_DIRICHLET_DRAWS = 1000


def partition_rows(labels: np.ndarray, n_sites: int, split: str, alpha: float, seed: int) -> list[np.ndarray]:
    """Row indices of each site. Every site gets at least MIN_SITE_ROWS rows."""
    if len(labels) < n_sites * MIN_SITE_ROWS:
        raise ValueError(f"{len(labels)} rows cannot give {n_sites} sites of {MIN_SITE_ROWS} rows each")
    rng = np.random.default_rng(seed)
    if split == "iid":
        return [np.sort(part) for part in np.array_split(rng.permutation(len(labels)), n_sites)]
    if split == "dirichlet":
        return _dirichlet_label_skew(labels, n_sites, alpha, rng)
    if split == "quantity":
        return _quantity_skew(len(labels), n_sites, alpha, rng)
    raise ValueError(f"unknown split {split!r}")


def _dirichlet_label_skew(labels: np.ndarray, n_sites: int, alpha: float, rng: np.random.Generator) -> list[np.ndarray]:
    """Each class is spread over sites with proportions drawn from Dirichlet(alpha); redrawn until sites are big enough."""
    for _ in range(_MAX_DIRICHLET_DRAWS):
        sites: list[list[int]] = [[] for _ in range(n_sites)]
        for label in np.unique(labels):
            rows = rng.permutation(np.flatnonzero(labels == label))
            shares = rng.dirichlet(np.full(n_sites, alpha))
            cuts = (np.cumsum(shares)[:-1] * len(rows)).astype(int)
            for site, chunk in enumerate(np.split(rows, cuts)):
                sites[site].extend(chunk.tolist())
        if min(len(site) for site in sites) >= MIN_SITE_ROWS:
            return [np.sort(np.asarray(site, dtype=np.int64)) for site in sites]
    raise ValueError(
        f"no Dirichlet(alpha={alpha}) split into {n_sites} sites of at least {MIN_SITE_ROWS} rows was found; "
        "use a larger --alpha or fewer --sites"
    )


def _quantity_skew(n_rows: int, n_sites: int, alpha: float, rng: np.random.Generator) -> list[np.ndarray]:
    """Sites of very different sizes (shares drawn from Dirichlet(alpha)) with the same case mix in expectation;
    every site keeps MIN_SITE_ROWS rows and the rest is shared out by the drawn shares."""
    shares = rng.dirichlet(np.full(n_sites, alpha))
    spare = n_rows - n_sites * MIN_SITE_ROWS
    sizes = MIN_SITE_ROWS + np.floor(shares * spare).astype(int)
    sizes[np.argmax(shares)] += n_rows - sizes.sum()
    cuts = np.cumsum(sizes)[:-1]
    return [np.sort(part) for part in np.split(rng.permutation(n_rows), cuts)]


def natural_sites(site_labels: np.ndarray, names: tuple[str, ...]) -> list[np.ndarray]:
    """Row indices of each site the data names itself, in the order of `names`."""
    return [np.flatnonzero(site_labels == name) for name in names]
