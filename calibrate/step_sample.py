"""One measured engine step: what it computed and how long it took, in the tidy form every
source is turned into and every fit reads.

A sample carries the configuration it was measured on (model and GPU catalog ids, tensor
parallelism, weight format), the work of the step as a ``sim.engine.batch.Batch`` and the measured
wall time. Samples are stored as Parquet, one row per step, the batch's fields as columns.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import pandas as pd

from calibrate.errors import CalibrationError
from sim.engine.batch import Batch

CONFIG_COLUMNS = ["source", "model", "gpu", "tensor_parallel", "weight_dtype", "kind"]
# a measured step's work: the first six Batch terms (host-memory loads and requests riding
# along after they finished are simulator-side details no step log records)
BATCH_COLUMNS = list(Batch._fields[:6])
COLUMNS = [*CONFIG_COLUMNS, *BATCH_COLUMNS, "measured_s"]


class StepSample(NamedTuple):
    source: str  # the dataset or run it came from
    model: str
    gpu: str
    tensor_parallel: int
    weight_dtype: str
    kind: str  # "prefill", "decode" or "mixed"
    batch: Batch
    measured_s: float

    @property
    def config(self) -> tuple[str, str, int, str]:
        return self.model, self.gpu, self.tensor_parallel, self.weight_dtype


def kind_of(batch: Batch) -> str:
    if batch.prefill_tokens and batch.decode_seqs:
        return "mixed"
    return "prefill" if batch.prefill_tokens else "decode"


def samples_frame(samples: list[StepSample]) -> pd.DataFrame:
    rows = [(*s[:6], *s.batch[:6], s.measured_s) for s in samples]
    return pd.DataFrame(rows, columns=COLUMNS)


def samples_from_frame(frame: pd.DataFrame, where: str = "samples") -> list[StepSample]:
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise CalibrationError(
            f"{where}: not a step-sample table, missing columns {missing}; write one with "
            "`servesim calibrate ingest` or `servesim calibrate run`"
        )
    out = []
    for row in frame[COLUMNS].itertuples(index=False):
        batch = Batch(int(row.prefill_tokens), int(row.prefill_seqs),
                      float(row.prefill_attention_pairs), int(row.prefill_kv_tokens),
                      int(row.decode_seqs), int(row.decode_context_tokens))
        out.append(StepSample(row.source, row.model, row.gpu, int(row.tensor_parallel),
                              row.weight_dtype, row.kind, batch, float(row.measured_s)))
    return out


def write_samples(samples: list[StepSample], path: Path) -> None:
    samples_frame(samples).to_parquet(path, index=False)


def read_samples(path: Path) -> list[StepSample]:
    if not Path(path).is_file():
        raise CalibrationError(f"no step-sample file at {path}")
    try:
        frame = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several types for a file that is not Parquet
        raise CalibrationError(f"{path} is not a Parquet file ({exc})") from None
    return samples_from_frame(frame, str(path))
