"""Latency profiles as the Calibration page shows them: which exist, what they hold, and which
configurations have coefficients fitted to their own measurements.

Profiles come from three places: the shipped ones (``sim/catalog/profiles``), YAML files in the
folder named by ``SERVESIM_PROFILE_DIR``, and files uploaded in a session. All are read by
``sim.engine.latency_profile.load_profile``, the parser a scenario uses, so a file accepted here is
a file ``engine.latency_profile: FILE`` accepts.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import pandas as pd

from sim.config.vllm_release import is_gpu
from sim.engine.errors import ScenarioError
from sim.engine.gpu import load_gpu
from sim.engine.latency_profile import (
    MATCH_KEYS, Coefficients, LatencyProfile, list_profiles, load_profile,
)

PROFILE_DIR_ENV = "SERVESIM_PROFILE_DIR"
MAX_PROFILE_BYTES = 200_000  # a profile is a page of YAML; anything bigger is the wrong file
COEFFICIENTS = tuple(f.name for f in dataclasses.fields(Coefficients))
# coefficients added after profiles were first written default to 0, so a profile may omit them
OPTIONAL_COEFFICIENTS = {f.name: f.default for f in dataclasses.fields(Coefficients)
                         if f.default is not dataclasses.MISSING}
REQUIRED_COEFFICIENTS = tuple(c for c in COEFFICIENTS if c not in OPTIONAL_COEFFICIENTS)


def coefficient_names(profile: LatencyProfile) -> tuple[str, ...]:
    """The coefficients of the profile's form (roofline or per-operator), in order."""
    return tuple(f.name for f in dataclasses.fields(profile.coefficient_type))


def optional_coefficients(profile: LatencyProfile) -> dict[str, float]:
    """The coefficients of the profile's form that have a default, with it."""
    return {f.name: f.default for f in dataclasses.fields(profile.coefficient_type)
            if f.default is not dataclasses.MISSING}
MATCH_LABELS = {"model": "model", "gpu": "GPU", "tensor_parallel": "TP",
                "weight_dtype": "weight format", "interconnect": "interconnect"}
PROFILE_FORMAT_HINT = ("a profile is a YAML mapping with `name`, `source`, `coefficients` (all of "
                       + ", ".join(REQUIRED_COEFFICIENTS) + ") and optional `overrides` (each a "
                       "`match` and `coefficients`), like sim/catalog/profiles/roofline.yaml")


@dataclass(frozen=True)
class ProfileChoice:
    """One profile the page can show: a unique label, where it came from, its text and content."""

    label: str
    origin: str  # "shipped", "profile folder" or "uploaded"
    text: str
    profile: LatencyProfile
    ref: str  # what `engine.latency_profile` takes to load it: a shipped name or a file path
    file: str = ""  # the file it was read from, as the user knows it


@dataclass(frozen=True)
class ConfigStatus:
    """How a profile treats one configuration."""

    config: dict  # model, gpu, tensor_parallel, weight_dtype, interconnect
    calibrated: bool  # an override fitted to this model on this GPU applies
    match: dict | None  # the most specific override that applies (None: base only)
    coefficients: Coefficients
    base_is_default: bool  # the base equals the shipped default roofline


def profile_path(text: str, folder: Path) -> Path:
    """Where a profile's text is kept in ``folder``: a file named by its content hash, so
    ``load_profile`` (cached on the path) never returns an older upload's profile for a new
    one, and a scenario or replay can name the profile by this path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{hashlib.sha256(text.encode()).hexdigest()[:20]}.yaml"
    if not path.exists():
        path.write_text(text)
    return path


def profile_from_text(text: str, where: str, folder: Path) -> LatencyProfile:
    """Parse and check a profile's YAML; raises ScenarioError naming the problem and the fix."""
    path = profile_path(text, folder)
    try:
        profile = load_profile(str(path))
    except ScenarioError as exc:  # the parser names the problem; add what a profile looks like
        raise ScenarioError(f"{str(exc).replace(str(path), where)}. Expected: "
                            f"{PROFILE_FORMAT_HINT}") from None
    except (AttributeError, TypeError, ValueError) as exc:  # shapes the parser does not expect
        raise ScenarioError(f"{where}: not a latency profile ({exc}); expected: "
                            f"{PROFILE_FORMAT_HINT}") from None
    check_profile(profile, where)
    return profile


def check_profile(profile: LatencyProfile, where: str) -> None:
    """What ``load_profile`` leaves to the first scenario that uses the profile: complete base
    coefficients, values in range, match values of the right type."""
    optional = optional_coefficients(profile)
    required = [c for c in coefficient_names(profile) if c not in optional]
    missing = [c for c in required if c not in profile.coefficients]
    if missing:
        raise ScenarioError(f"{where}: `coefficients` lacks {missing}; the base needs all of "
                            f"{required} (overrides then change only some)")
    contexts = [("coefficients", {})] + [(f"overrides[{i}]", match)
                                         for i, (match, _) in enumerate(profile.overrides)]
    for part, match in contexts:
        for key, value in match.items():
            wanted = int if key == "tensor_parallel" else str
            if not isinstance(value, wanted) or isinstance(value, bool):
                raise ScenarioError(f"{where}: {part}.match.{key} is {value!r}; give a "
                                    f"{'whole number' if wanted is int else 'catalog id'}")
        try:
            profile.resolve(**match)
        except ScenarioError as exc:
            raise ScenarioError(f"{where}: {part}: {exc}") from None
        except TypeError:
            raise ScenarioError(f"{where}: {part}: every coefficient must be a number") from None


def read_profile_upload(name: str, data: bytes, folder: Path) -> LatencyProfile:
    """The profile in an uploaded file; raises ScenarioError when it is not one."""
    if len(data) > MAX_PROFILE_BYTES:
        raise ScenarioError(f"{name}: the file is {len(data) / 1e3:,.0f} kB; {PROFILE_FORMAT_HINT} "
                            "(a few kB): check that you picked the right file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ScenarioError(f"{name}: the file is not UTF-8 text; {PROFILE_FORMAT_HINT}") from None
    return profile_from_text(text, name, folder)


def uploaded_choice(name: str, data: bytes, folder: Path) -> ProfileChoice:
    profile = read_profile_upload(name, data, folder)
    text = data.decode("utf-8")
    return ProfileChoice(f"{profile.name} (uploaded {name})", "uploaded", text, profile,
                         str(profile_path(text, folder)), name)


def shipped_profiles() -> list[ProfileChoice]:
    out = []
    for name in list_profiles():
        text = (resources.files("sim") / "catalog" / "profiles" / f"{name}.yaml").read_text()
        out.append(ProfileChoice(f"{name} (shipped)", "shipped", text, load_profile(name), name,
                                 f"sim/catalog/profiles/{name}.yaml"))
    return out


def folder_profiles(folder: Path | None, work: Path) -> tuple[list[ProfileChoice], list[str]]:
    """The profiles in ``folder`` (``SERVESIM_PROFILE_DIR``) and the problems of bad files."""
    if folder is None:
        return [], []
    if not folder.is_dir():
        return [], [f"{PROFILE_DIR_ENV}={folder} is not a folder: point it at a folder of "
                    "profile YAML files, or unset it"]
    choices, problems = [], []
    for path in sorted(folder.glob("*.yaml")):
        try:  # read through a copy, so an edited file is read again (see profile_path)
            text = path.read_text()
            profile = profile_from_text(text, str(path), work)
        except (ScenarioError, UnicodeDecodeError, OSError) as exc:
            problems.append(str(exc))
            continue
        choices.append(ProfileChoice(f"{path.stem} (profile folder)", "profile folder", text,
                                     profile, str(profile_path(text, work)), str(path)))
    return choices, problems


def profile_folder() -> Path | None:
    value = os.environ.get(PROFILE_DIR_ENV, "").strip()
    return Path(value) if value else None


def is_calibrated_for(profile: LatencyProfile, **config: object) -> bool:
    """The rule a run's summary uses (``calibrated_for_this_configuration`` in sim.runner.run): an
    override naming this GPU and model applies. An override matching only an interconnect or a
    weight format is a correction of the roofline, not a fit to this configuration."""
    match = profile.most_specific_match(**config)
    return bool(match and {"gpu", "model"} <= match.keys())


def configuration_status(profile: LatencyProfile, model: str, gpu: str, tensor_parallel: int,
                         weight_dtype: str) -> ConfigStatus:
    config = dict(model=model, gpu=gpu, tensor_parallel=tensor_parallel,
                  weight_dtype=weight_dtype, interconnect=load_gpu(gpu).interconnect)
    default = load_profile("roofline").coefficients
    return ConfigStatus(
        config=config,
        calibrated=is_calibrated_for(profile, **config),
        match=profile.most_specific_match(**config),
        coefficients=profile.resolve(**config),
        base_is_default=all(profile.coefficients.get(k, OPTIONAL_COEFFICIENTS.get(k)) == v
                            for k, v in default.items()),
    )


def auto_profile_name(model: str, gpu: str, tensor_parallel: int, weight_dtype: str) -> str:
    """The shipped profile ``engine.latency_profile: auto`` picks for this configuration, by
    the rule of ``sim.config.deployment._profile``: ``calibrated`` where its most specific override
    is fitted to this model on this GPU, else ``trained`` on a GPU and the hand-set ``roofline`` on
    a CPU."""
    device = load_gpu(gpu)
    calibrated = is_calibrated_for(load_profile("calibrated"), model=model, gpu=gpu,
                                   tensor_parallel=tensor_parallel, weight_dtype=weight_dtype,
                                   interconnect=device.interconnect)
    if calibrated:
        return "calibrated"
    return "trained" if is_gpu(device) else "roofline"


def coefficient_table(profile: LatencyProfile) -> pd.DataFrame:
    """The base coefficients and each override, one row each.

    Match cells read "any" where the override does not constrain that key; coefficient cells are
    empty (None) where an override keeps the base value.
    """
    names, optional = coefficient_names(profile), optional_coefficients(profile)
    rows = [{"applies to": "base: every configuration without an override",
             **{label: "any" for label in MATCH_LABELS.values()},
             **{c: profile.coefficients.get(c, optional.get(c)) for c in names}}]
    for i, (match, coeffs) in enumerate(profile.overrides):
        fitted = is_calibrated_for_match(match)
        rows.append({"applies to": f"override {i + 1}" + (" (calibration)" if fitted else ""),
                     **{label: str(match.get(key, "any")) for key, label in MATCH_LABELS.items()},
                     **{c: coeffs.get(c) for c in names}})
    return pd.DataFrame(rows)


def is_calibrated_for_match(match: dict) -> bool:
    return {"gpu", "model"} <= match.keys()


def calibrated_configurations(profile: LatencyProfile) -> pd.DataFrame:
    """The configurations the profile has its own calibration for, and what was fitted."""
    rows = [{"model": m["model"], "GPU": m["gpu"], "TP": str(m.get("tensor_parallel", "any")),
             "weight format": str(m.get("weight_dtype", "any")),
             "coefficients fitted": ", ".join(sorted(coeffs))}
            for m, coeffs in profile.overrides if is_calibrated_for_match(m)]
    return pd.DataFrame(rows, columns=["model", "GPU", "TP", "weight format",
                                       "coefficients fitted"])


def coverage_matrix(profile: LatencyProfile, models: list[str], gpus: list[str]) -> pd.DataFrame:
    """Models by GPUs: the TP and weight formats calibrated for each pair, "–" where every
    configuration of that pair falls back to the base coefficients."""
    cells: dict[tuple[str, str], list[str]] = {}
    for match, _ in profile.overrides:
        if is_calibrated_for_match(match):
            tp, dtype = match.get("tensor_parallel", "any"), match.get("weight_dtype", "any format")
            cells.setdefault((match["model"], match["gpu"]), []).append(f"TP {tp} {dtype}")
    models = models + sorted({m for m, _ in cells} - set(models))
    gpus = gpus + sorted({g for _, g in cells} - set(gpus))
    return pd.DataFrame([[", ".join(cells.get((m, g), [])) or "–" for g in gpus] for m in models],
                        index=pd.Index(models, name="model"), columns=gpus)


def resolved_table(status: ConfigStatus, profile: LatencyProfile) -> pd.DataFrame:
    """Each coefficient for one configuration and whether the base or an override set it."""
    overridden = set()
    for match, coeffs in profile.overrides:
        if all(status.config.get(k) == v for k, v in match.items()):
            overridden |= set(coeffs)
    return pd.DataFrame([{"coefficient": c, "value": getattr(status.coefficients, c),
                          "from": "override" if c in overridden else "base"}
                         for c in coefficient_names(profile)])


def describe_match(match: dict | None) -> str:
    if not match:
        return "no override"
    return ", ".join(f"{MATCH_LABELS[k]} {match[k]}" for k in MATCH_KEYS if k in match)
