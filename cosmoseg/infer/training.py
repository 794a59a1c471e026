"""Training and evaluating the graph networks of :mod:`cosmoseg.infer.models` on a suite's galaxy catalogs.

The data are the files ``galaxies_<i>.h5`` of ``cosmoseg galaxies paint-suite`` (one :class:`GalaxyCatalog` per box,
in the box's cosmology); the targets are the boxes' (Ω_m, σ_8). The split is by simulation (``sim.suites.split_suite``
over the boxes): no box is seen in training and validation both. Training stops early when the validation loss has not
improved for ``patience`` epochs and keeps the best weights. A model file is a checkpoint (``nn.checkpoints``) whose
metadata hold everything needed to use it again: the graph settings, the systematics, the prior box, the training
box size and cosmologies, the split and the metrics.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import torch

from cosmoseg.data import GalaxyCatalog, ParameterEstimate, load_artifact
from cosmoseg.errors import ArtifactError, ValidationError
from cosmoseg.infer.graphs import (
    GraphSpec,
    edge_feature_names,
    galaxy_graph,
    global_feature_names,
    node_feature_names,
    random_subbox,
)
from cosmoseg.infer.models import CosmoGNN
from cosmoseg.infer.systematics import Compose, parse_systematics
from cosmoseg.nn.checkpoints import read_checkpoint, save_checkpoint
from cosmoseg.nn.distributed import all_reduce_sum, get_world_size, is_distributed, rank_share
from cosmoseg.nn.training import Trainer
from cosmoseg.pipeline.params import param

__all__ = [
    "PARAMETERS",
    "TrainSettings",
    "build_graphs",
    "estimate",
    "load_catalogs",
    "load_model",
    "save_model",
    "train_model",
]

PARAMETERS: tuple[str, ...] = ("omega_m", "sigma_8")
"""The inferred parameters, in this order: attributes of the boxes' ``Cosmology``."""

MODEL_FORMAT = "cosmoseg.infer.model"


@dataclasses.dataclass(frozen=True)
class TrainSettings:
    """The network and its training (``cosmoseg infer train``)."""

    head: Literal["moments", "flow"] = param("moments", doc='"moments" (mean and σ) or "flow" (full posterior)')
    hidden: int = param(64, ge=4, doc="width of the hidden layers")
    layers: int = param(2, ge=1, doc="message-passing blocks")
    lr: float = param(1e-3, gt=0, doc="Adam learning rate")
    weight_decay: float = param(1e-5, ge=0, doc="AdamW weight decay")
    batch_size: int = param(16, ge=1, doc="graphs per step")
    max_epochs: int = param(300, ge=1, doc="the most epochs")
    patience: int = param(30, ge=1, doc="epochs without a better validation loss before stopping")
    subbox_fraction: float = param(
        0.0, ge=0, le=1, doc="augmentation: each epoch, a random sub-box of this volume fraction (0 = the whole box)"
    )


# ---- data ------------------------------------------------------------------------------------------------------


def load_catalogs(folder: str | Path, indices: Sequence[int] | None = None) -> dict[int, GalaxyCatalog]:
    """The galaxy catalogs ``galaxies_<i>.h5`` of ``folder`` by box index (all, or ``indices``)."""
    folder = Path(folder)
    files = {int(p.stem.split("_")[-1]): p for p in sorted(folder.glob("galaxies_*.h5"))}
    if not files:
        raise ArtifactError(f"{folder}: no galaxies_<i>.h5 files (make them with `cosmoseg galaxies paint-suite`)")
    if indices is not None:
        missing = sorted(set(indices) - set(files))
        if missing:
            raise ArtifactError(f"{folder}: no galaxy file for box(es) {missing}")
        files = {i: files[i] for i in indices}
    out = {}
    for index, path in files.items():
        catalog = load_artifact(path).get("galaxies")
        if not isinstance(catalog, GalaxyCatalog):
            raise ArtifactError(f"{path}: holds no GalaxyCatalog 'galaxies'")
        out[index] = catalog
    return out


def parameters_of(catalog: GalaxyCatalog) -> torch.Tensor:
    """(P,) float32: the box's true (Ω_m, σ_8)."""
    cosmology = catalog.box.cosmology
    return torch.tensor([float(getattr(cosmology, name)) for name in PARAMETERS], dtype=torch.float32)


def observe(catalog: GalaxyCatalog, systematics: Compose, seed: int, index: int) -> GalaxyCatalog:
    """The catalog as observed: ``systematics`` applied with a generator seeded by (seed, box index)."""
    generator = torch.Generator().manual_seed(int(seed) * 1_000_003 + int(index))
    return systematics(catalog, generator)


def build_graphs(
    catalogs: dict[int, GalaxyCatalog],
    spec: GraphSpec,
    systematics: Compose,
    *,
    seed: int,
    subbox_fraction: float = 0.0,
    generator: torch.Generator | None = None,
) -> list[Any]:
    """One torch-geometric graph per catalog (in the order of ``catalogs``) with its target ``y`` (1, P).

    ``subbox_fraction`` > 0 takes a random sub-box of each (augmentation) with ``generator``.
    """
    graphs = []
    for index, catalog in catalogs.items():
        observed = observe(catalog, systematics, seed, index)
        if subbox_fraction > 0:
            if generator is None:
                raise ValueError("a sub-box augmentation needs a generator")
            observed = random_subbox(observed, subbox_fraction, generator)
        graph = galaxy_graph(observed, spec, target=parameters_of(catalog)[None])
        graph.box_index = torch.tensor([index])
        graphs.append(graph)
    return graphs


def _batches(graphs: list[Any], batch_size: int, generator: torch.Generator, device: torch.device) -> list[Any]:
    """One epoch of ``(graph batch, (y (G, P), graphs of this rank))`` steps, ``batch_size`` graphs each, shuffled
    with ``generator``. Under a process group every rank draws the same order and keeps its share of each global
    batch (`cosmoseg.nn.distributed.rank_share`; the count is 0 for a rank left without a graph)."""
    from torch_geometric.data import Batch

    order = torch.randperm(len(graphs), generator=generator).tolist()
    out = []
    for start in range(0, len(order), batch_size):
        chosen = [graphs[i] for i in order[start : start + batch_size]]
        if len(chosen) < 2 and out:  # a batch of one graph gives the moment loss nothing to average
            continue
        share, count = rank_share(len(chosen))
        batch = Batch.from_data_list(chosen[share]).to(device)
        out.append((batch, (batch.y, count)))
    return out


def _whole(graphs: list[Any], device: torch.device) -> Any:
    """``(graph batch, (y (G, P), graphs of this rank))`` of this rank's share of ``graphs`` (all of them without
    a process group)."""
    from torch_geometric.data import Batch

    share, count = rank_share(len(graphs))
    batch = Batch.from_data_list(graphs[share]).to(device)
    return batch, (batch.y, count)


def sharded_head_loss(model: CosmoGNN, h: torch.Tensor, target: tuple[torch.Tensor, int]) -> torch.Tensor:
    """``model.head_loss`` of a global batch of graphs whose share on this rank gave the embeddings ``h`` (G_r,
    hidden); ``target``: (θ (G_r, P), the number of graphs that are this rank's, 0 for an idle rank).

    Without a process group this is ``model.head_loss(h, θ)``. Under one, the loss of the global batch is not a
    mean of the ranks' losses (the moment loss is Σ_p log Σ_b ..., a log of sums over the batch), so the ranks
    all-reduce their partial sums S_r (detached) and each returns ``N·Σ S_r / S`` (S the global sums, or for the
    flow head N × its summed negative log density / the global graph count): its gradient, averaged over the N ranks
    by DDP, is the gradient of the global loss. The returned value is that global loss on every rank (a detached
    correction), so the logged and validation losses equal one process's over the whole batch."""
    theta, count = target
    world_size = get_world_size()
    if not is_distributed() or world_size == 1:
        return model.head_loss(h, theta)
    active = 1.0 if count > 0 else 0.0
    theta_s = model.standardise(theta)
    if model.head_kind == "moments":
        mean, std = model._standardised_moments(h)
        squared = (theta_s - mean) ** 2
        parts = active * torch.stack([squared.sum(dim=0), ((squared - std**2) ** 2).sum(dim=0)])  # (2, P)
        total = all_reduce_sum(parts.detach())
        exact = torch.log(total).sum()
        surrogate = world_size * (parts / total).sum()
    else:
        nll = -active * model._flow_log_prob(theta_s, h).sum()
        sums = all_reduce_sum(torch.stack([nll.detach(), torch.tensor(float(count), device=nll.device)]))
        exact = sums[0] / sums[1]
        surrogate = world_size * nll / sums[1]
    return surrogate + (exact - surrogate).detach()


# ---- training --------------------------------------------------------------------------------------------------


def train_model(
    train: dict[int, GalaxyCatalog],
    validation: dict[int, GalaxyCatalog],
    spec: GraphSpec,
    systematics: Compose,
    settings: TrainSettings,
    *,
    prior: tuple[list[float], list[float]],
    seed: int = 0,
    device: torch.device | str = "cpu",
    log: Callable[[str], None] = lambda message: None,
) -> tuple[CosmoGNN, dict[str, Any]]:
    """Fit a :class:`CosmoGNN` on the ``train`` boxes with early stopping on the ``validation`` boxes.

    prior: (low, high) of the parameters, the standardisation box of the network.
    Returns the model with its best weights (lowest validation loss) and a history: epochs run, best epoch, the
    loss curves, seconds per epoch.

    Under ``torchrun`` (a process group, `cosmoseg.nn.distributed.init_from_env`) the N ranks train data-parallel:
    every rank draws the same epochs, takes its consecutive share of each global batch of ``settings.batch_size``
    graphs (any size: the shares differ by at most one graph) and of the validation graphs, and the losses are
    combined exactly (:func:`sharded_head_loss`), so the weights, losses and the early stopping are those of one
    process, to float rounding. Each rank returns the same model; the caller writes it on rank 0.
    """
    if len(train) < 2 or not validation:
        raise ValidationError(f"training needs >= 2 training boxes and >= 1 validation box, got {len(train)}, "
                              f"{len(validation)}")  # fmt: skip
    device = torch.device(device)
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    fixed_train = build_graphs(train, spec, systematics, seed=seed)
    val_graphs = build_graphs(validation, spec, systematics, seed=seed)
    sample = fixed_train[0]
    model = CosmoGNN(
        sample.x.shape[1],
        sample.edge_attr.shape[1],
        sample.u.shape[1],
        prior[0],
        prior[1],
        hidden=settings.hidden,
        layers=settings.layers,
        head=settings.head,
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    loss = functools.partial(sharded_head_loss, model)
    trainer = Trainer(model, loss, optimizer, device=device, grad_clip=5.0, generator=generator)
    val_batch = _whole(val_graphs, device)
    best, best_epoch, best_state = math.inf, -1, copy.deepcopy(model.state_dict())
    history: dict[str, Any] = {"train_loss": [], "validation_loss": []}
    started = time.perf_counter()
    epoch = 0
    for epoch in range(1, settings.max_epochs + 1):
        graphs = fixed_train
        if settings.subbox_fraction > 0:
            graphs = build_graphs(
                train, spec, systematics, seed=seed, subbox_fraction=settings.subbox_fraction, generator=generator
            )
        batches = _batches(graphs, settings.batch_size, generator, device)
        losses = trainer.train_steps(batches, len(batches))
        val_loss = trainer.evaluate([val_batch])
        history["train_loss"].append(sum(losses) / len(losses))
        history["validation_loss"].append(val_loss)
        if val_loss < best:
            best, best_epoch, best_state = val_loss, epoch, copy.deepcopy(model.state_dict())
        if epoch % 10 == 0 or epoch == 1:
            log(f"epoch {epoch}: train {history['train_loss'][-1]:.4f}, validation {val_loss:.4f} (best {best:.4f})")
        if epoch - best_epoch >= settings.patience:
            break
    model.load_state_dict(best_state)
    model.eval()
    seconds = time.perf_counter() - started
    history |= {"epochs": epoch, "best_epoch": best_epoch, "seconds_per_epoch": seconds / max(epoch, 1)}
    log(f"stopped after {epoch} epochs; best validation loss {best:.4f} at epoch {best_epoch}")
    return model, history


# ---- use -------------------------------------------------------------------------------------------------------


@torch.no_grad()
def estimate(
    model: CosmoGNN,
    graphs: list[Any],
    *,
    n_samples: int = 1000,
    generator: torch.Generator | None = None,
    with_truth: bool = True,
    chunk: int = 64,
) -> ParameterEstimate:
    """The posterior of every graph: mean and σ, and (flow head) ``n_samples`` samples each; the truth from ``y``.

    Returns a :class:`ParameterEstimate` with mean/std (B, P), samples (B, S, P) for the flow head, truth (B, P).
    """
    from torch_geometric.data import Batch

    model.eval()
    device = next(model.parameters()).device
    generator = generator if generator is not None else torch.Generator(device=device).manual_seed(0)
    means, stds, samples = [], [], []
    for start in range(0, len(graphs), chunk):
        batch = Batch.from_data_list(graphs[start : start + chunk]).to(device)
        if model.head_kind == "moments":
            mean, std = model.moments(batch)
        else:
            drawn = model.sample(batch, n_samples, generator)
            samples.append(drawn.cpu())
            mean, std = drawn.mean(dim=1), drawn.std(dim=1)
        means.append(mean.cpu())
        stds.append(std.cpu())
    truth = torch.cat([g.y for g in graphs]).to(torch.float32) if with_truth else None
    return ParameterEstimate(
        names=PARAMETERS,
        mean=torch.cat(means),
        std=torch.cat(stds),
        samples=torch.cat(samples) if samples else None,
        truth=truth,
    )


def save_model(path: str | Path, model: CosmoGNN, metadata: dict[str, Any]) -> Path:
    """Write the model and its metadata (a checkpoint, loadable with ``weights_only=True``)."""
    meta = {
        "format": MODEL_FORMAT,
        "parameters": list(PARAMETERS),
        **metadata,
    }
    return save_checkpoint(path, model=model, step=int(metadata.get("epochs", 0)), metadata=meta)


def model_from_metadata(meta: dict[str, Any]) -> CosmoGNN:
    spec = graph_spec_of(meta)
    settings = meta["settings"]
    return CosmoGNN(
        len(node_feature_names(spec)),
        len(edge_feature_names(spec)),
        len(global_feature_names(spec)),
        list(meta["prior_low"]),
        list(meta["prior_high"]),
        hidden=int(settings["hidden"]),
        layers=int(settings["layers"]),
        head=settings["head"],
    )


def graph_spec_of(meta: dict[str, Any]) -> GraphSpec:
    graph = dict(meta["graph"])
    graph["properties"] = tuple(graph.get("properties", ()))
    return GraphSpec(**graph)


def load_model(path: str | Path, device: torch.device | str = "cpu") -> tuple[CosmoGNN, dict[str, Any]]:
    """A model file of :func:`save_model`: the network (eval mode, on ``device``) and its metadata."""
    payload = read_checkpoint(path)
    meta = dict(payload.get("metadata", {}))
    if meta.get("format") != MODEL_FORMAT:
        raise ArtifactError(f"{path}: not a cosmoseg inference model (format {meta.get('format')!r})")
    model = model_from_metadata(meta)
    try:
        model.load_state_dict(payload["model"])
    except RuntimeError as err:
        raise ArtifactError(f"{path}: the weights do not fit the network its metadata describe: {err}") from err
    return model.to(device).eval(), meta


def check_catalog_for_model(catalog: GalaxyCatalog, meta: dict[str, Any], where: str) -> None:
    """Refuse a catalog the model cannot speak for: another box size (the graph's scale is the training box's)."""
    trained = float(meta["box_length"])
    length = float(catalog.box.length)
    if not math.isclose(length, trained, rel_tol=1e-3):
        raise ValidationError(
            f"{where}: the catalog's box is {length:g} Mpc/h but the model was trained on {trained:g} Mpc/h boxes; "
            "it cannot infer from another box size (train a model on boxes of this size)"
        )


def systematics_of(meta: dict[str, Any]) -> Compose:
    return parse_systematics(meta.get("systematics", ""))
